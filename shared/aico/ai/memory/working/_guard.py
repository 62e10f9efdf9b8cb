"""Who opens first and who closes last, and what each checks: one ``OpenGuard`` per process.

Every process with the environment open holds ``flock(LOCK_SH)`` on ``aico.lock`` in the
working directory, through libSQL's ``OpenLock`` (LMDB's own ``lock.mdb`` is left to LMDB:
its fcntl locks and reader table are not ours to touch). An opener that gets ``LOCK_EX``
knows no other opener exists in any process; the others wait while it checks.

Opening, before ``lmdb.open`` in this process:

1. take the lock (``LOCK_EX``: first; else ``LOCK_SH`` once the first one is done);
2. every opener checks the file against its map (``_check``): no SIGBUS from a short file;
3. the first one verifies the seal (``_closeseal``) if there is one and removes it; if there
   is none but there is a file, it was closed uncleanly: a child walks it (``_walk``), and
   ``unclean`` tells the store to authenticate every record as well;
4. once LMDB is open and the store has proved its key, the first opener downgrades.

Closing: release ``LOCK_SH`` and try ``LOCK_EX``; who gets it is last and seals, unless the
environment showed damage while open.

Read-only openers check like the others but never remove or write a seal, and hold no lock
while open: a seal left in place makes a joining writer retry for ``LOCK_EX`` (see
``OpenLock.acquire``), which must not wait for a reader. They open the lock file read-only
(``flock`` needs no write access) and never create it; where it does not exist, or cannot
be opened, nobody is using this protocol and the read-only opener checks as the first. The
sidecar's commit and session records are libSQL's; working memory uses only its open set.
"""

from __future__ import annotations

import errno
import logging
from pathlib import Path
from typing import Final

from aico.ai.memory.working._check import DATA_FILE, MapInfo, check_map
from aico.ai.memory.working._closeseal import LOCK_BASE, remove_seal, verify_seal, write_seal
from aico.ai.memory.working._walk import walk, walk_timeout_s
from aico.data.libsql.sidecar import OpenLock, lock_path
from aico.errors import DatabaseBusy, NotFound, ReadOnly, WorkingMemoryError

__all__ = ["OpenGuard"]

log = logging.getLogger(__name__)

_CANNOT_WRITE: Final = (errno.EACCES, errno.EROFS, errno.EPERM)


class OpenGuard:
    """This process's place among the openers of one environment (see the module doc)."""

    def __init__(self, directory: Path, *, read_only: bool) -> None:
        self.directory = directory
        self.read_only = read_only
        self.first = False
        self.unclean = False
        self.map: MapInfo | None = None
        self._lock: OpenLock | None = None

    def enter(self, seal_key: bytes) -> None:
        """Steps 1-3: join the openers and check the files. Nothing is mapped yet."""
        self._lock = self._open_lock()
        try:
            self.first = True if self._lock is None else self._acquire(self._lock)
            self.map = check_map(self.directory, retries=0 if self.first else 2)
            if self.first:
                # Also with no file: a seal says there was one, and it no longer matches.
                sealed = verify_seal(self.directory, seal_key)
                if self.map is not None and not sealed:
                    walk(self.directory, self.map.file_bytes)
                    self.unclean = True
                if sealed and not self.read_only:
                    remove_seal(self.directory)  # from here on the file may change
            if self.read_only and self.map is None:
                raise NotFound(f"there is no working memory at {self.directory}")
        except OSError as exc:
            self.close()
            if exc.errno in _CANNOT_WRITE and not self.read_only:
                raise ReadOnly(
                    f"working memory at {self.directory} cannot be written "
                    f"({exc.strerror}); open it with read_only=True"
                ) from None
            raise WorkingMemoryError(
                f"cannot open working memory at {self.directory}: {exc.strerror}"
            ) from None
        except BaseException:
            self.close()
            raise

    def opened(self) -> None:
        """Step 4: LMDB is open and the store proved its key; let the others in."""
        if self._lock is None:
            return
        if self.read_only:
            self.close()
        elif self.first:
            self._lock.downgrade()

    def release(self) -> bool:
        """Leave the openers; True if this was the last writer (``LOCK_EX`` is then held)."""
        if self._lock is None or self.read_only:
            return False
        return self._lock.release_and_try_last()

    def seal(self, seal_key: bytes) -> None:
        """Seal the closed environment; a failure leaves it unsealed (walked on next open)."""
        try:
            write_seal(self.directory, seal_key)
        except OSError as exc:
            log.warning(
                "working memory at %s was not sealed (%s); the next open checks it in full",
                self.directory,
                exc.strerror,
            )

    def close(self) -> None:
        """Drop the lock descriptor. Never unlocks first: after a fork the descriptor's lock
        belongs to the parent as well, and only closing the child's copy leaves it alone."""
        lock, self._lock = self._lock, None
        if lock is not None:
            lock.close()

    # -- helpers ---------------------------------------------------------------------

    def _open_lock(self) -> OpenLock | None:
        base = self.directory / LOCK_BASE
        try:
            if not self.read_only:
                return OpenLock(base)
            if not lock_path(base).exists():
                return None
            return OpenLock(base, writable=False)
        except OSError as exc:
            if self.read_only:
                return None  # cannot even read the lock file: nobody can write here either
            if exc.errno in _CANNOT_WRITE:
                raise ReadOnly(
                    f"working memory at {self.directory} cannot be written "
                    f"({exc.strerror}); open it with read_only=True"
                ) from None
            raise WorkingMemoryError(
                f"cannot open working memory at {self.directory}: {exc.strerror}"
            ) from None

    def _acquire(self, lock: OpenLock) -> bool:
        try:
            size = (self.directory / DATA_FILE).stat().st_size
        except OSError:
            size = 0
        try:
            # A waiter outlasts the longest check the first opener may be running.
            return lock.acquire(walk_timeout_s(size) + 30.0)
        except DatabaseBusy:
            raise DatabaseBusy(
                f"working memory at {self.directory} stayed busy: another process is still "
                "checking or closing it"
            ) from None
