"""Aircher's ``conversations`` database (``db/core/conversations.db``): Aircher storage spec."""

from __future__ import annotations

from aico.data.schema import SchemaVersion, register_schema

__all__ = ["CONVERSATIONS_SCHEMA"]

CONVERSATIONS_SCHEMA = register_schema("conversations", "conversations", priority=0)(
    {
        1: SchemaVersion(
            version=1,
            name="conversation tables",
            description="conversations, messages, message_attachments, compaction_history",
            sql_statements=[
                """
                CREATE TABLE conversations (
                    id TEXT PRIMARY KEY,
                    title TEXT,
                    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
                    updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
                    provider TEXT NOT NULL,
                    model TEXT,
                    total_tokens INTEGER DEFAULT 0,
                    total_cost REAL DEFAULT 0.0,
                    status TEXT DEFAULT 'active',
                    metadata JSON
                )
                """,
                """
                CREATE TABLE messages (
                    id TEXT PRIMARY KEY,
                    conversation_id TEXT REFERENCES conversations(id) ON DELETE CASCADE,
                    role TEXT NOT NULL CHECK (role IN ('user', 'assistant', 'system', 'tool')),
                    content TEXT,
                    tokens INTEGER,
                    cost REAL DEFAULT 0.0,
                    timestamp TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
                    tool_calls JSON,
                    tool_results JSON,
                    metadata JSON
                )
                """,
                """
                CREATE TABLE message_attachments (
                    id TEXT PRIMARY KEY,
                    message_id TEXT REFERENCES messages(id) ON DELETE CASCADE,
                    type TEXT NOT NULL CHECK (type IN ('file', 'image', 'code', 'diff')),
                    path TEXT,
                    content_hash TEXT,
                    size_bytes INTEGER,
                    metadata JSON
                )
                """,
                """
                CREATE TABLE compaction_history (
                    id TEXT PRIMARY KEY,
                    conversation_id TEXT REFERENCES conversations(id) ON DELETE CASCADE,
                    trigger_type TEXT NOT NULL,
                    original_message_count INTEGER,
                    compacted_message_count INTEGER,
                    tokens_saved INTEGER,
                    performed_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
                    summary TEXT,
                    preserved_messages JSON
                )
                """,
                "CREATE INDEX idx_conversations_updated_at ON conversations(updated_at)",
                "CREATE INDEX idx_conversations_provider ON conversations(provider)",
                """CREATE INDEX idx_messages_conversation_timestamp
                   ON messages(conversation_id, timestamp)""",
                "CREATE INDEX idx_messages_role ON messages(role)",
                "CREATE INDEX idx_attachments_message ON message_attachments(message_id)",
                "CREATE INDEX idx_compaction_conversation ON compaction_history(conversation_id)",
            ],
            rollback_statements=[
                "DROP TABLE compaction_history",
                "DROP TABLE message_attachments",
                "DROP TABLE messages",
                "DROP TABLE conversations",
            ],
        ),
    }
)
