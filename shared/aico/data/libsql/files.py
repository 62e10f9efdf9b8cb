"""The files of one database before SQLite sees them: what exists, what may be written.

Checked up front because SQLite's own answers are poor: an empty or half-page file, a
plaintext one, or a directory it may not write come back as vague driver errors (or, for a
read-only directory, as a write failing later), never naming which file is at fault.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from aico.errors import DatabaseCorrupted, InvalidInput

__all__ = [
    "companions",
    "inspect_existing_file",
    "leftovers_of_missing",
    "make_private_dirs",
    "unwritable_part",
]

_PLAINTEXT_MAGIC = b"SQLite format 3\x00"
_COMPANIONS = ("-wal", "-shm", "-journal", ".lock", ".seal")


def companions(path: Path) -> list[Path]:
    """The files SQLite and aico keep beside a database (WAL, wal-index, journal, sidecars)."""
    return [path.with_name(path.name + suffix) for suffix in _COMPANIONS]


def make_private_dirs(directory: Path) -> None:
    """Create missing directories 0700 (``mkdir(parents=True)`` would not for ancestors)."""
    missing: list[Path] = []
    current = directory
    while not current.exists():
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=0o700)


def unwritable_part(path: Path) -> Path | None:
    """The first file or directory a writable open of ``path`` would fail to write, if any.

    The directory must be writable (SQLite creates ``-wal`` and ``-shm`` there; for a new
    database, the nearest existing ancestor); so must every file of the database that
    exists. Root passes everywhere except on a read-only mount.
    """
    directory = path.parent
    while not directory.exists() and directory != directory.parent:
        directory = directory.parent
    if not os.access(directory, os.W_OK):
        return directory
    for file in (path, *companions(path)):
        if file.exists() and not os.access(file, os.W_OK):
            return file
    return None


def inspect_existing_file(path: Path) -> bool:
    """Refuse files that cannot be an intact encrypted database; True if one exists.

    Runs under the open lock, so a file another opener is still creating is not seen
    half-written. Messages say what is wrong, not which file (the connection adds that).
    """
    try:
        info = path.stat()
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(info.st_mode):
        raise InvalidInput(f"database path {path} is not a regular file")
    if info.st_size == 0:
        raise DatabaseCorrupted("the file is empty (0 bytes): truncated or never written")
    with open(path, "rb") as fh:
        head = fh.read(len(_PLAINTEXT_MAGIC))
    if head == _PLAINTEXT_MAGIC:
        raise DatabaseCorrupted("it is a plaintext SQLite file, refusing to open it")
    if info.st_size % 512:
        raise DatabaseCorrupted("the file is truncated: not a whole number of pages")
    return True


def leftovers_of_missing(path: Path) -> list[Path]:
    """For a database file that does not exist: what it left behind, if it ever existed.

    A ``-wal`` or ``-journal`` with content, or a seal, belongs to a database that was
    deleted or moved away; opening the path anyway would start an empty database (and
    SQLite would replay the orphaned WAL into it), silently dropping everything it held.
    A sidecar ``.lock`` alone proves nothing: it is only a lock and a record.
    """
    found = []
    for suffix in ("-wal", "-journal"):
        part = path.with_name(path.name + suffix)
        with contextlib.suppress(FileNotFoundError):
            if part.stat().st_size > 0:
                found.append(part)
    seal = path.with_name(path.name + ".seal")
    if seal.exists():
        found.append(seal)
    return found
