"""``session_metadata`` (libSQL, database ``core``) kept in step with the LMDB session records.

Every statement that pushes LMDB state into a row is an idempotent, monotonic UPSERT
(``MAX`` of counts and times): two processes racing, or ``reconcile`` repeating a write
that already happened, can never move a row backwards or count a message twice. The LMDB
session record carries the absolute message count (continued from the row when the record
is created), which is what makes this possible without a read-modify-write in libSQL.

Times are REAL unix seconds in libSQL and integer microseconds in LMDB; doubles hold µs
timestamps of this era exactly enough for ``round(seconds * 1e6)`` to return the integer.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from aico.ai.memory.working._codec import SessionRecord

__all__ = [
    "MetadataConnection",
    "active_rows",
    "delete_rows",
    "is_behind",
    "mark_ended",
    "mark_expired",
    "owner_and_count",
    "push_session",
    "row_of",
    "rows_of_user",
]

_COLUMNS = "session_id, last_activity_at, message_count, working_memory_expires_at, status"

_UPSERT = """
INSERT INTO session_metadata (
    session_id, user_id, conversation_id, started_at, last_activity_at, message_count,
    working_memory_expires_at, status, updated_at
) VALUES (?, ?, ?, ?, ?, ?, ?, 'active', ?)
ON CONFLICT(session_id) DO UPDATE SET
    conversation_id = COALESCE(excluded.conversation_id, session_metadata.conversation_id),
    status = CASE WHEN excluded.last_activity_at > session_metadata.last_activity_at
                  THEN 'active' ELSE session_metadata.status END,
    last_activity_at = MAX(session_metadata.last_activity_at, excluded.last_activity_at),
    message_count = MAX(session_metadata.message_count, excluded.message_count),
    working_memory_expires_at = MAX(
        COALESCE(session_metadata.working_memory_expires_at, 0),
        excluded.working_memory_expires_at),
    updated_at = excluded.updated_at
"""


class MetadataConnection(Protocol):
    """What the store needs from ``aico.data.libsql.EncryptedLibSQLConnection``."""

    def execute(self, sql: str, params: Any = ...) -> Any: ...
    def execute_many(self, sql: str, seq_of_params: Iterable[Any]) -> int: ...
    def fetch_one(self, sql: str, params: Any = ...) -> dict[str, Any] | None: ...
    def fetch_all(self, sql: str, params: Any = ...) -> list[dict[str, Any]]: ...


def _s(us: int) -> float:
    return us / 1_000_000


def _us(seconds: float | None) -> int:
    return 0 if seconds is None else round(seconds * 1_000_000)


def push_session(
    conn: MetadataConnection, record: SessionRecord, expires_us: int, now_us: int
) -> None:
    """Bring the row up to (at least) the LMDB record's state; creates it if missing."""
    conn.execute(
        _UPSERT,
        (
            record.session_id,
            record.user_id,
            record.conversation_id,
            _s(record.started_us),
            _s(record.last_us),
            record.message_count,
            _s(expires_us),
            _s(now_us),
        ),
    )


def is_behind(row: dict[str, Any], record: SessionRecord, expires_us: int) -> bool:
    """True if the row misses writes the LMDB record has (a crash between the two stores)."""
    return (
        int(row["message_count"]) < record.message_count
        or _us(row["last_activity_at"]) < record.last_us
        or _us(row["working_memory_expires_at"]) < expires_us
    )


def owner_and_count(conn: MetadataConnection, session_id: str) -> tuple[str | None, int]:
    """The row's user and message count (a new LMDB record continues that count)."""
    row = conn.fetch_one(
        "SELECT user_id, message_count FROM session_metadata WHERE session_id = ?", (session_id,)
    )
    if row is None:
        return None, 0
    return str(row["user_id"]), int(row["message_count"])


def row_of(conn: MetadataConnection, session_id: str) -> dict[str, Any] | None:
    return conn.fetch_one(
        f"SELECT {_COLUMNS} FROM session_metadata WHERE session_id = ?", (session_id,)
    )


def active_rows(conn: MetadataConnection) -> dict[str, dict[str, Any]]:
    rows = conn.fetch_all(f"SELECT {_COLUMNS} FROM session_metadata WHERE status = 'active'")
    return {str(r["session_id"]): r for r in rows}


def rows_of_user(conn: MetadataConnection, user_id: str) -> list[str]:
    rows = conn.fetch_all("SELECT session_id FROM session_metadata WHERE user_id = ?", (user_id,))
    return [str(r["session_id"]) for r in rows]


def mark_expired(conn: MetadataConnection, sessions: Sequence[tuple[str, int]], now_us: int) -> int:
    """Mark active rows expired; ``(session_id, last_us)``: newer activity is left alone."""
    if not sessions:
        return 0
    return conn.execute_many(
        "UPDATE session_metadata SET status = 'expired', updated_at = ? "
        "WHERE session_id = ? AND status = 'active' AND last_activity_at <= ?",
        [(_s(now_us), sid, _s(last_us)) for sid, last_us in sessions],
    )


def mark_ended(conn: MetadataConnection, session_id: str, now_us: int) -> bool:
    result = conn.execute(
        "UPDATE session_metadata SET status = 'ended', updated_at = ? WHERE session_id = ?",
        (_s(now_us), session_id),
    )
    return bool(result.rowcount)


def delete_rows(conn: MetadataConnection, session_ids: Sequence[str]) -> int:
    if not session_ids:
        return 0
    return conn.execute_many(
        "DELETE FROM session_metadata WHERE session_id = ?", [(s,) for s in session_ids]
    )
