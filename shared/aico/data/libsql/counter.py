"""The commit counter in the database header, read and bumped with straight driver calls.

``PRAGMA user_version`` holds the counter and ``PRAGMA application_id`` the file's random id
(both signed 32-bit header fields): header fields need no table, so no schema listing ever
shows them, and a rekey or VACUUM carries them along with page 1. The bump runs inside the
outermost transaction, just before COMMIT, on every commit: no busy wait can happen there
(``BEGIN IMMEDIATE`` holds the write lock) and nothing is bound, so the connection's
statement machinery is skipped. The caller translates driver errors.
"""

from __future__ import annotations

import secrets
from typing import Any

from aico.data.libsql.sidecar import CommitRecord, next_counter

__all__ = ["bump", "read_record"]

_MOD = 1 << 32


def read_record(conn: Any) -> CommitRecord:
    """The database's id and counter as its last commit left them (id 0: never counted)."""
    return CommitRecord(
        _unsigned(_field(conn, "application_id")), _unsigned(_field(conn, "user_version"))
    )


def bump(conn: Any, file_id: int) -> CommitRecord:
    """Write the next counter (and a random id into a never-counted file); return both.

    ``file_id`` is the id this connection already knows (0: read it from the header).
    """
    file_id = file_id or _unsigned(_field(conn, "application_id"))
    if not file_id:
        file_id = 1 + secrets.randbelow(0x7FFFFFFE)  # positive, as the signed field holds it
        conn.execute(f"PRAGMA application_id = {file_id}").close()
    counter = next_counter(_unsigned(_field(conn, "user_version")))
    conn.execute(f"PRAGMA user_version = {_signed(counter)}").close()
    return CommitRecord(file_id, counter)


def _field(conn: Any, name: str) -> Any:
    cursor = conn.execute(f"PRAGMA {name}")
    try:
        row = cursor.fetchone()
    finally:
        cursor.close()
    return None if row is None else row[0]


def _unsigned(value: Any) -> int:
    """A 32-bit header field as SQLite returns it (signed) -> 0 .. 2**32 - 1."""
    return int(value or 0) % _MOD


def _signed(value: int) -> int:
    """The inverse of ``_unsigned``: what ``PRAGMA user_version = ...`` accepts."""
    return value - _MOD if value >= _MOD // 2 else value
