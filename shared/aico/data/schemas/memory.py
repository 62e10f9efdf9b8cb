"""The legacy message log of the core database, retired in version 2.

Version 1 kept every message in ``memory_messages`` next to the segments. The message log
now lives in the conversations database (``aico.data.schemas.conversations`` version 2);
version 2 here drops the old table once its rows have moved (``aico.ai.memory.upgrade``
copies them and empties it; the drop refuses while a row is left).
"""

from __future__ import annotations

from aico.data.schema import SchemaVersion, register_schema

__all__ = ["MEMORY_SCHEMA", "retire_table"]

def retire_table(table: str) -> list[str]:
    """Drop a legacy table, refusing (the migration rolls back) while it still holds rows.

    The rows move to the conversations database first (``aico.ai.memory.upgrade``); a NOT
    NULL violation on a temporary guard table is how plain SQL refuses.
    """
    return [
        "CREATE TEMP TABLE _aico_legacy_guard (rows_not_moved_yet INTEGER NOT NULL)",
        f"INSERT INTO _aico_legacy_guard SELECT NULL WHERE EXISTS (SELECT 1 FROM {table})",
        "DROP TABLE _aico_legacy_guard",
        f"DROP TABLE {table}",
    ]

MEMORY_SCHEMA = register_schema("memory", "core", priority=30)(
    {
        1: SchemaVersion(
            version=1,
            name="message log",
            description="memory_messages: every stored message, the source of consolidation",
            sql_statements=[
                """
                CREATE TABLE memory_messages (
                    message_id TEXT PRIMARY KEY,
                    user_id TEXT NOT NULL,
                    session_id TEXT NOT NULL,
                    conversation_id TEXT,
                    role TEXT NOT NULL CHECK (role IN ('user', 'assistant', 'system', 'tool')),
                    content TEXT NOT NULL,
                    created_at REAL NOT NULL,
                    consolidated_at REAL
                )
                """,
                """CREATE INDEX idx_memory_messages_session
                   ON memory_messages(session_id, created_at)""",
                "CREATE INDEX idx_memory_messages_user ON memory_messages(user_id, created_at)",
                """CREATE INDEX idx_memory_messages_pending
                   ON memory_messages(session_id) WHERE consolidated_at IS NULL""",
            ],
            rollback_statements=["DROP TABLE memory_messages"],
        ),
        2: SchemaVersion(
            version=2,
            name="retire the core message log",
            description="memory_messages moved to the conversations database",
            sql_statements=retire_table("memory_messages"),
            rollback_statements=[
                """
                CREATE TABLE memory_messages (
                    message_id TEXT PRIMARY KEY,
                    user_id TEXT NOT NULL,
                    session_id TEXT NOT NULL,
                    conversation_id TEXT,
                    role TEXT NOT NULL CHECK (role IN ('user', 'assistant', 'system', 'tool')),
                    content TEXT NOT NULL,
                    created_at REAL NOT NULL,
                    consolidated_at REAL
                )
                """,
                """CREATE INDEX idx_memory_messages_session
                   ON memory_messages(session_id, created_at)""",
                "CREATE INDEX idx_memory_messages_user ON memory_messages(user_id, created_at)",
                """CREATE INDEX idx_memory_messages_pending
                   ON memory_messages(session_id) WHERE consolidated_at IS NULL""",
            ],
        ),
    }
)
