"""The one seam where libSQL driver exceptions become ``aico.errors``.

libsql-experimental raises plain ``ValueError`` for every SQLite failure and, on a garbled
TEXT value, ``pyo3_runtime.PanicException`` (a ``BaseException``). Callers must never see
either. The driver message is kept for diagnosis but redacted first: SQLite echoes query
text after ``near`` and FTS5 echoes the user's search terms, so quoted literals and those
tails are removed. The original exception is dropped (``from None``) because its message
and traceback would carry the unredacted text.

Lack of space is told apart from other failures so a caller can act on it
(``StorageFull``): SQLite says "database or disk is full" when a write meets ``ENOSPC``,
but a file-size limit (``EFBIG``, ``ulimit -f``) or a quota reached mid-write comes back as
a plain "disk I/O error"; given the database's path, that one is ``StorageFull`` when the
database's file system is (nearly) out of space or the process's ``RLIMIT_FSIZE`` is
reached by the database or its WAL, and ``QueryError`` otherwise.
"""

from __future__ import annotations

import errno
import os
import re
import resource
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aico.errors import (
    AicoError,
    ConstraintViolation,
    DatabaseBusy,
    DatabaseCorrupted,
    QueryError,
    ReadOnly,
    StorageError,
    StorageFull,
)

__all__ = [
    "classify",
    "is_no_space",
    "no_space_left",
    "redact_driver_message",
    "storage_full",
    "translate_errors",
]

_MAX_MESSAGE = 160
_QUOTED = re.compile(r"'(?:[^']|'')*'?|\"(?:[^\"]|\"\")*\"?|`[^`]*`?|\[[^\]]*\]?")
_NEAR = re.compile(r"\bnear\b.*?(?=: syntax error$|$)", re.DOTALL)
# Messages whose tail can come from an FTS5 MATCH string (user text), not from our SQL.
_TAIL_FROM_INPUT = re.compile(
    r"(no such column|unknown special query|no such fts5 column|expected integer, got)\s*:?.*$",
    re.DOTALL,
)
_CORRUPT = ("file is not a database", "malformed", "corrupt")
_BUSY = ("locked", "busy")
_FULL = "database or disk is full"
_IO_ERROR = "disk i/o error"
_NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})
# Below this, a "disk I/O error" on a write is taken for a full disk (SQLite writes a page
# or a WAL frame at a time; a file system this close to full fails them).
_LOW_SPACE_BYTES = 1 << 20
_PAGE_SLACK = 65536 + 24


def redact_driver_message(message: str) -> str:
    """Strip anything that may be user content from a driver message."""
    text = _QUOTED.sub("?", message)
    text = _NEAR.sub("near <redacted>", text)
    text = _TAIL_FROM_INPUT.sub(lambda m: f"{m.group(1)}: <redacted>", text)
    text = " ".join(text.split())
    if len(text) > _MAX_MESSAGE:
        text = text[:_MAX_MESSAGE] + "..."
    return text


def no_space_left(path: Path) -> bool:
    """True if ``path``'s file system is (nearly) full or ``RLIMIT_FSIZE`` stops its growth.

    ``path`` is a database; its ``-wal`` and ``-journal`` count too, since either may be the
    file that could not grow.
    """
    try:
        fs = os.statvfs(path.parent)
        if fs.f_bavail * fs.f_frsize < _LOW_SPACE_BYTES:
            return True
    except OSError:
        pass
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    if soft == resource.RLIM_INFINITY:
        return False
    for suffix in ("", "-wal", "-journal"):
        try:
            size = path.with_name(path.name + suffix).stat().st_size
        except OSError:
            continue
        if size + _PAGE_SLACK > soft:
            return True
    return False


def is_no_space(exc: OSError) -> bool:
    """``ENOSPC``, ``EFBIG`` (file-size limit) or ``EDQUOT`` (quota)."""
    return exc.errno in _NO_SPACE_ERRNOS


def storage_full(where: str, outcome: str = "the write failed and did not commit") -> StorageFull:
    """``StorageFull`` saying where, what became of the write, and what to do."""
    return StorageFull(
        f"{where}: no space left (the disk is full or a file-size limit was reached); "
        f"{outcome}, nothing committed before it is lost: free space and retry"
    )


def classify(exc: BaseException, path: Path | None = None) -> StorageError | None:
    """Return the ``aico`` error for a driver exception, or None if it must propagate.

    ``path`` (the database) lets a "disk I/O error" be recognised as lack of space.
    """
    if type(exc).__name__ == "PanicException":
        # The driver panics when a TEXT value is not UTF-8: garbled ciphertext.
        return DatabaseCorrupted("database corrupted: a stored value could not be decoded")
    if isinstance(exc, AicoError) or not isinstance(exc, Exception):
        # Ours already, or KeyboardInterrupt / SystemExit / GeneratorExit: never swallow.
        return None
    raw = str(exc)
    lowered = raw.lower()
    text = redact_driver_message(raw)
    if _FULL in lowered or (_IO_ERROR in lowered and path is not None and no_space_left(path)):
        return storage_full("database" if path is None else f"database {path}")
    if any(word in lowered for word in _CORRUPT):
        return DatabaseCorrupted(f"database corrupted: {text}")
    if any(word in lowered for word in _BUSY):
        return DatabaseBusy(f"database is busy: {text}")
    if "constraint failed" in lowered:
        return ConstraintViolation(f"constraint violated: {text}")
    if "readonly database" in lowered:
        return ReadOnly(f"database is read-only here: {text}")
    return QueryError(f"query failed: {text}")


@contextmanager
def translate_errors(path: Path | None = None) -> Iterator[None]:
    """Re-raise driver exceptions raised inside the block as ``aico.errors`` (``from None``).

    ``path`` is the database the block works on (see ``classify``).
    """
    try:
        yield
    except BaseException as exc:
        translated = classify(exc, path)
        if translated is None:
            raise
        raise translated from None
