"""Prove a key on a scratch copy of page 1 before SQLite may recover a database with it.

Why: the cipher cannot tell a wrong key until page 1 is read, and by then SQLite may
already have rolled back a hot journal or will checkpoint a leftover WAL when the
connection closes. Both copy pages through the codec: with a wrong key they decrypt to
garbage and re-encrypt it into the database, destroying it (measured: an unclean WAL
opened once with a wrong key, or a rekey killed midway and opened first with the new key,
no longer opens with any key). So when recovery is pending, the page 1 image that recovery
would start from (the journal's copy if a hot journal exists, else the database's) is
written to a private sparse scratch file and opened there first.
"""

from __future__ import annotations

import contextlib
import struct
import tempfile
from pathlib import Path

import libsql_experimental as libsql

from aico.data.libsql.errors import translate_errors
from aico.errors import AicoError, DatabaseCorrupted

__all__ = ["key_fits_pending_recovery"]

_JOURNAL_MAGIC = bytes.fromhex("d9d505f920a163d7")
_DEFAULT_PAGE = 4096  # aico never changes page_size; the cipher needs it known anyway
_MAX_RECORDS_SCANNED = 64


def key_fits_pending_recovery(db_path: Path, hex_key: str) -> bool:
    """False if SQLite would recover ``db_path`` with a key that does not fit it.

    True when nothing is pending (no hot journal, no WAL content): then a wrong key is
    caught by the normal check before anything is written.
    """
    image = _page_one_image(db_path)
    if image is None:
        return True
    data, min_size = image
    with tempfile.TemporaryDirectory(dir=db_path.parent, prefix=".keycheck-") as tmp:
        scratch = Path(tmp) / "page1.db"
        scratch.write_bytes(data)
        # The header's page count must not exceed the file size, or SQLite calls the file
        # malformed even with the right key; a sparse tail costs no disk.
        with open(scratch, "r+b") as fh:
            fh.truncate(max(min_size, len(data)) * 2)
        with translate_errors():
            conn = libsql.connect(str(scratch), isolation_level=None, encryption_key=hex_key)
        try:
            with translate_errors():
                conn.execute("PRAGMA schema_version").fetchall()
            return True
        except DatabaseCorrupted:
            return False
        finally:
            with contextlib.suppress(AicoError), translate_errors():
                conn.close()


def _page_one_image(db_path: Path) -> tuple[bytes, int] | None:
    """Page 1 as recovery would see it, and a file size large enough for its header."""
    db_size = _size(db_path)
    journal = db_path.with_name(db_path.name + "-journal")
    wal = db_path.with_name(db_path.name + "-wal")
    from_journal = _journal_page_one(journal)
    if from_journal is not None:
        data, journal_db_bytes = from_journal
        return data, max(db_size, journal_db_bytes)
    if (_size(wal) > 0 or _size(journal) > 0) and db_size >= _DEFAULT_PAGE:
        with open(db_path, "rb") as fh:
            return fh.read(_DEFAULT_PAGE), db_size
    return None


def _journal_page_one(journal: Path) -> tuple[bytes, int] | None:
    """The original page 1 saved in a rollback journal (its first record, in practice)."""
    try:
        fh = open(journal, "rb")  # noqa: SIM115 - closed below, several reads
    except FileNotFoundError:
        return None
    with fh:
        header = fh.read(28)
        if len(header) < 28 or header[:8] != _JOURNAL_MAGIC:
            return None  # absent, zeroed or truncated: not a hot journal
        _, _, db_pages, sector, page_size = struct.unpack(">IIIII", header[8:28])
        if not (_power_of_two(page_size, 512, 65536) and _power_of_two(sector, 32, 65536)):
            return None
        record = 4 + page_size + 4
        for index in range(_MAX_RECORDS_SCANNED):
            fh.seek(sector + index * record)
            raw = fh.read(4 + page_size)
            if len(raw) < 4 + page_size:
                return None
            if struct.unpack(">I", raw[:4])[0] == 1:
                return raw[4:], db_pages * page_size
    return None


def _power_of_two(value: int, low: int, high: int) -> bool:
    return low <= value <= high and value & (value - 1) == 0


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
