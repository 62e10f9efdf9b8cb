"""Data migration: the message log moves from the core database to the conversations one.

Code up to ff8ca57 kept messages in ``core.memory_messages`` and session rows in
``core.session_metadata``. The schema migrations cannot move rows between two encrypted
files (each has its own key), so this step does, between the conversations database's
version 2 and the core versions that drop the old tables (which refuse while a row is left):

1. copy every legacy message and session row into the conversations database
   (``INSERT OR IGNORE``: a replay after a crash copies nothing twice) and rebuild which
   messages each legacy segment was made from (same user and session, inside the segment's
   time range), so forgetting one old message still finds its segments;
2. delete the copied rows from the core database.

A crash between 1 and 2 repeats both, harmlessly. Each moved message is queued in the
working outbox like a new one (the insert trigger): the first repair drops those past their
TTL and appends any live one the old working memory lacks.
"""

from __future__ import annotations

import logging
from typing import Any

from aico.data.repositories._base import chunks
from aico.data.schema import MigrationStep
from aico.data.store import DataStore

__all__ = ["LEGACY_COMPACTION_ID", "move_legacy_log", "needs_move", "upgrade_store"]

log = logging.getLogger(__name__)

#: ``compaction_id`` of legacy messages already consolidated (their segments exist).
LEGACY_COMPACTION_ID = "legacy"
_BATCH = 1000


def upgrade_store(store: DataStore) -> list[tuple[str, MigrationStep]]:
    """Migrate every database to head, moving the legacy message log on the way.

    Order matters: the conversations database and the semantic schema first (the log's new
    home and the segment-source table), then the move, then the rest, whose core versions
    drop the old tables (they refuse while a legacy row is left). Returns the steps applied.
    ``MemoryManager.open`` and ``aico db migrate`` both upgrade through here.
    """
    steps = store.migrate(database="conversations")
    steps += store.migrate(schema="semantic")
    core = store.connection("core")
    if needs_move(core):
        move_legacy_log(core, store.connection("conversations"))
    return steps + store.migrate()


def _has_table(conn: Any, name: str) -> bool:
    return (
        conn.fetch_value("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,))
        is not None
    )


def needs_move(core: Any) -> bool:
    """True if the core database still holds legacy log rows (read-only)."""
    for table in ("memory_messages", "session_metadata"):
        if _has_table(core, table) and core.fetch_value(f"SELECT 1 FROM {table} LIMIT 1"):
            return True
    return False


def move_legacy_log(core: Any, conversations: Any) -> int:
    """Move legacy rows into the conversations database; returns messages moved."""
    if not needs_move(core):
        return 0
    moved = 0
    if _has_table(core, "session_metadata"):
        rows = core.fetch_all("SELECT * FROM session_metadata")
        with conversations.transaction():
            for r in rows:
                conversations.execute(
                    "INSERT OR IGNORE INTO session_metadata (session_id, user_id, "
                    "conversation_id, started_at, last_activity_at, message_count, "
                    "working_memory_expires_at, status, summary, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        r["session_id"],
                        r["user_id"],
                        r["conversation_id"],
                        r["started_at"],
                        r["last_activity_at"],
                        r["message_count"],
                        r["working_memory_expires_at"],
                        r["status"],
                        r["summary"],
                        r["updated_at"],
                    ),
                )
    if _has_table(core, "memory_messages"):
        last = ""
        while True:
            rows = core.fetch_all(
                "SELECT * FROM memory_messages WHERE message_id > ? ORDER BY message_id LIMIT ?",
                (last, _BATCH),
            )
            if not rows:
                break
            last = rows[-1]["message_id"]
            with conversations.transaction():
                for r in rows:
                    if r["conversation_id"] is not None:
                        conversations.execute(
                            "INSERT OR IGNORE INTO conversations (id, user_id, created_at, "
                            "updated_at, provider) VALUES (?, ?, ?, ?, 'aico')",
                            (r["conversation_id"], r["user_id"], r["created_at"], r["created_at"]),
                        )
                    done = r["consolidated_at"] is not None
                    moved += max(
                        conversations.execute(
                            "INSERT OR IGNORE INTO messages (id, user_id, session_id, "
                            "conversation_id, role, content, timestamp, metadata, "
                            "compaction_id, consolidated_at) "
                            "VALUES (?, ?, ?, ?, ?, ?, ?, '{}', ?, ?)",
                            (
                                r["message_id"],
                                r["user_id"],
                                r["session_id"],
                                r["conversation_id"],
                                r["role"],
                                r["content"],
                                r["created_at"],
                                LEGACY_COMPACTION_ID if done else None,
                                r["consolidated_at"],
                            ),
                        ).rowcount,
                        0,
                    )
                    # A session row for messages whose row was lost (old crashes).
                    conversations.execute(
                        "INSERT OR IGNORE INTO session_metadata (session_id, user_id, "
                        "started_at, last_activity_at, message_count, status, updated_at) "
                        "VALUES (?, ?, ?, ?, 0, 'ended', ?)",
                        (
                            r["session_id"],
                            r["user_id"],
                            r["created_at"],
                            r["created_at"],
                            r["created_at"],
                        ),
                    )
            _map_segments(core, rows)
        # The log is the truth for counts now.
        with conversations.transaction():
            conversations.execute(
                "UPDATE session_metadata SET message_count = "
                "(SELECT count(*) FROM messages m WHERE m.session_id = session_metadata.session_id)"
            )
    with core.transaction():
        if _has_table(core, "memory_messages"):
            core.execute("DELETE FROM memory_messages")
        if _has_table(core, "session_metadata"):
            core.execute("DELETE FROM session_metadata")
    log.info("upgrade: moved %d legacy messages to the conversations database", moved)
    return moved


def _map_segments(core: Any, rows: list[dict[str, Any]]) -> None:
    """Legacy segments did not record their messages: match on user, session and time."""
    if not _has_table(core, "semantic_segment_messages"):
        return
    consolidated = [r for r in rows if r["consolidated_at"] is not None]
    with core.transaction():
        for chunk in chunks(consolidated, 200):
            for r in chunk:
                core.execute(
                    "INSERT OR IGNORE INTO semantic_segment_messages (message_id, segment_rowid) "
                    "SELECT ?, id FROM semantic_segments WHERE user_id = ? AND session_id = ? "
                    "AND start_ts <= ? AND end_ts >= ?",
                    (
                        r["message_id"],
                        r["user_id"],
                        r["session_id"],
                        r["created_at"],
                        r["created_at"],
                    ),
                )
