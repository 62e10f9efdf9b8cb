"""A core database refused only because its FTS5 indexes are damaged: tell, and rebuild them.

Why this exists: SQLite's ``quick_check`` and ``integrity_check`` include FTS5's own check
(SQLite >= 3.44), so after an unclean close a damaged FTS5 index makes
``EncryptedLibSQLConnection`` refuse the whole core database as damaged, exactly as it
refuses broken pages. But the FTS5 index is derived from ``semantic_segments``: it can be
dropped and refilled without losing anything. So doctor looks closer, on a read-only
connection of its own: if *every* problem ``integrity_check`` reports is the FTS5
table's, the repair rebuilds the index with a connection that skips the open checks, and
the next ordinary open (unsealed, so ``quick_check`` again) finds the file sound.

The rebuild keeps the protocol of every aico opener: the file's open lock held
exclusively (nobody else has it open, in any process), the connection's pragmas
(``temp_store = MEMORY`` above all: the cipher does not encrypt temporary files), and one
transaction whose commit bumps the commit counter and its record, so a later loss of the
WAL is still noticed. Driver errors come out through ``translate_errors``.
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import Any, Final

import libsql_experimental as libsql

from aico.ai.memory.semantic.fts import DEFAULT_FTS_TOKENIZER, fts_create_statement
from aico.ai.memory.semantic.schema import (
    FTS_FILL_SQL,
    FTS_FULL_FILL_SQL,
    FTS_FULL_SECURE_DELETE_SQL,
    FTS_FULL_TABLE,
    FTS_SECURE_DELETE_SQL,
    FTS_TABLE,
)
from aico.data.libsql import SQLiteSettings, counter
from aico.data.libsql.errors import translate_errors
from aico.data.libsql.sidecar import OpenLock
from aico.errors import AicoError, DatabaseBusy, DatabaseCorrupted, StoreBusy

__all__ = ["fts_only_damage", "rescue_fts"]

_FTS_MARK: Final = "fts5"
_BUSY_SLICE_MS: Final = 20


def _rows(conn: Any, sql: str) -> list[Any]:
    cursor = conn.execute(sql)
    try:
        return [row[0] for row in cursor.fetchall() or ()]
    finally:
        cursor.close()


def fts_only_damage(path: Path, key: bytes) -> int | None:
    """How many problems ``integrity_check`` reports when all are the FTS5 index's.

    None when the file is sound, has any other problem, or cannot be read at all. Reads
    with ``mode=ro``: nothing is written, not even a recovered WAL.
    """
    target = f"file:{urllib.parse.quote(str(path), safe='/')}?mode=ro"
    try:
        with translate_errors(path):
            conn = libsql.connect(target, isolation_level=None, encryption_key=key.hex())
            try:
                _rows(conn, "PRAGMA temp_store = MEMORY")
                lines = [str(line) for line in _rows(conn, "PRAGMA integrity_check")]
            finally:
                conn.close()
    except AicoError:
        return None
    if lines == ["ok"] or not lines:
        return None
    if all(_FTS_MARK in line.lower() for line in lines):
        return len(lines)
    return None


def rescue_fts(path: Path, key: bytes, settings: SQLiteSettings) -> int:
    """Rebuild the FTS5 index of the core database at ``path`` (module docstring); rows.

    ``StoreBusy`` while anything else has the file open; ``DatabaseCorrupted`` if the
    file is still not sound afterwards (then the damage was not only the index's).
    """
    lock = OpenLock(path)
    try:
        try:
            first = lock.acquire(0.0)
        except DatabaseBusy:
            first = False
        if not first:
            raise StoreBusy(f"database {path} is open elsewhere; close it to rebuild its index")
        with translate_errors(path):
            conn = libsql.connect(str(path), isolation_level=None, encryption_key=key.hex())
            try:
                rows = _rebuild(conn, settings, lock)
                problems = _rows(conn, "PRAGMA quick_check")
            finally:
                conn.close()
        if problems != ["ok"]:
            raise DatabaseCorrupted(
                f"database {path} is still damaged after its FTS5 index was rebuilt",
                path=path,
                store="core",
            )
        return rows
    finally:
        lock.close()


def _rebuild(conn: Any, settings: SQLiteSettings, lock: OpenLock) -> int:
    for pragma in settings.pragma_statements(
        writer=True, new_db=False, readonly=False, busy_slice_ms=_BUSY_SLICE_MS
    ):
        _rows(conn, pragma)
    stored = _rows(conn, "SELECT value FROM semantic_settings WHERE key = 'fts_tokenizer'")
    tokenizer = str(stored[0]) if stored else DEFAULT_FTS_TOKENIZER
    names = set(_rows(conn, "SELECT name FROM sqlite_master WHERE type = 'table'"))
    tables = [(FTS_TABLE, FTS_SECURE_DELETE_SQL, FTS_FILL_SQL)]
    if FTS_FULL_TABLE in names:  # schema version 3 (as ``models.rebuild_fts`` decides)
        tables.append((FTS_FULL_TABLE, FTS_FULL_SECURE_DELETE_SQL, FTS_FULL_FILL_SQL))
    conn.execute("BEGIN IMMEDIATE").close()
    try:
        for table, secure_delete, fill in tables:
            conn.execute(f"DROP TABLE IF EXISTS {table}").close()
            conn.execute(fts_create_statement(table, tokenizer)).close()
            conn.execute(secure_delete).close()
            conn.execute(fill).close()
        record = counter.bump(conn, 0)
        conn.execute("COMMIT").close()
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK").close()
        raise
    lock.advance_commit(record)
    return int(_rows(conn, f"SELECT count(*) FROM {FTS_TABLE}_docsize")[0])
