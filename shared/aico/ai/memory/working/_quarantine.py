"""Move a damaged working-memory environment aside, so a fresh one can take its place.

Why: working memory is a cache of the message log. A damaged environment is not repaired in
place (LMDB has no repair); the coordinator moves it aside, opens a fresh one and rebuilds it
from the log. The damaged copy is kept, not deleted, for a post-mortem: its values stay
sealed, so it holds no plaintext. Nothing removes old copies automatically.
"""

from __future__ import annotations

import errno
import os
from datetime import UTC, datetime
from pathlib import Path

from aico.ai.memory.working import _env
from aico.ai.memory.working._closeseal import LOCK_BASE
from aico.data.libsql.sidecar import OpenLock
from aico.errors import DatabaseBusy, NotFound, ReadOnly, StoreBusy, WorkingMemoryError
from aico.security._atomic import fsync_dir

__all__ = ["quarantine_working"]


def _target(directory: Path) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    candidate = directory.with_name(f"{directory.name}.damaged-{stamp}")
    n = 1
    while candidate.exists():
        n += 1
        candidate = directory.with_name(f"{directory.name}.damaged-{stamp}-{n}")
    return candidate


def quarantine_working(path: str | os.PathLike[str]) -> Path:
    """Rename the environment at ``path`` to ``<name>.damaged-<UTC time>``; return the new path.

    One atomic rename, made durable by fsyncing the parent directory; afterwards ``path``
    does not exist and the next open creates a fresh environment there. Refused while any
    store, in this process (``WorkingMemoryError``) or another (``StoreBusy``), has it open:
    that store would go on writing to the moved copy.
    """
    directory = Path(path)
    if not directory.is_dir():
        raise NotFound(f"there is no working memory at {directory}")
    if _env.is_open(directory):
        raise WorkingMemoryError(
            f"working memory at {directory} is open in this process; close its stores first"
        )
    try:
        lock = OpenLock(directory / LOCK_BASE)
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
            raise ReadOnly(f"cannot move working memory at {directory}: {exc.strerror}") from None
        raise WorkingMemoryError(
            f"cannot move working memory at {directory}: {exc.strerror}"
        ) from None
    try:
        try:
            alone = lock.acquire(0.0)
        except DatabaseBusy:
            alone = False
        if not alone:
            raise StoreBusy(f"working memory at {directory} is open in another process")
        target = _target(directory)
        try:
            os.rename(directory, target)
            fsync_dir(directory.parent)
        except OSError as exc:
            raise WorkingMemoryError(
                f"cannot move working memory at {directory} aside: {exc.strerror}"
            ) from None
    finally:
        lock.close()
    return target
