"""The companion's message log (database ``core``), written by the MemoryManager.

It lives in the core file next to ``session_metadata`` and the semantic segments so that
storing a message and consolidating a session into segments are single transactions.
``consolidated_at`` marks messages already turned into long-term segments.
"""

from __future__ import annotations

from aico.data.schema import SchemaVersion, register_schema

__all__ = ["MEMORY_SCHEMA"]

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
    }
)
