"""The conversations database (``db/core/conversations.db``): the one message log.

Version 1 is the storage specification's four tables as written. Version 2 puts them in
real use as the companion's message log, the source of truth every other store is derived
from, and adds what the coordinator needs *in the same file*, so that storing a message is
one transaction (the message row, its session row and the derived-work row together):

- ``messages``/``conversations`` gain their owner (``user_id``) and the session; a message
  is claimed by exactly one consolidation (``compaction_id``), then marked consolidated.
- ``session_metadata`` (moved here from the core database): the log-side state of each
  session (owner, counts, activity, working-memory expiry, status). Derived from the log in
  the same transaction, so it can never disagree with it.
- ``working_outbox``: messages committed to the log but not yet appended to working memory
  (LMDB); replayed on open and by maintenance, so working memory is repaired *from* the log.
- ``compaction_history`` rows are written at every consolidation: ``pending`` when the
  messages are claimed, ``done`` once their segments are committed in the core database.
- ``forget_ledger``: each forget (grain and ids only); ``pending`` until every derived store
  has dropped the data, then its ids are replaced by keyed hashes.
- ``message_attachments.content``: the attachment bytes, encrypted at rest with the file.

Timestamps written by aico are REAL unix seconds (the spec's TIMESTAMP columns have NUMERIC
affinity and keep them exactly).
"""

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
        2: SchemaVersion(
            version=2,
            name="message log",
            description="owners, sessions, consolidation claims, working outbox, forget ledger",
            sql_statements=[
                "ALTER TABLE conversations ADD COLUMN user_id TEXT",
                "CREATE INDEX idx_conversations_user ON conversations(user_id, updated_at)",
                "ALTER TABLE messages ADD COLUMN user_id TEXT",
                "ALTER TABLE messages ADD COLUMN session_id TEXT",
                "ALTER TABLE messages ADD COLUMN compaction_id TEXT",
                "ALTER TABLE messages ADD COLUMN consolidated_at REAL",
                # A user's messages are found through their sessions (session_metadata is
                # indexed by user): one index fewer to write per message.
                "CREATE INDEX idx_messages_session ON messages(session_id, timestamp)",
                """CREATE INDEX idx_messages_unclaimed
                   ON messages(session_id) WHERE compaction_id IS NULL""",
                # Partial: a new message (no claim yet) costs this index nothing.
                """CREATE INDEX idx_messages_compaction
                   ON messages(compaction_id) WHERE compaction_id IS NOT NULL""",
                # The spec's role index serves no query of the log and costs every insert.
                "DROP INDEX idx_messages_role",
                "ALTER TABLE message_attachments ADD COLUMN content BLOB",
                "ALTER TABLE compaction_history ADD COLUMN user_id TEXT",
                "ALTER TABLE compaction_history ADD COLUMN session_id TEXT",
                """ALTER TABLE compaction_history ADD COLUMN status TEXT NOT NULL
                   DEFAULT 'done' CHECK (status IN ('pending', 'done'))""",
                """CREATE INDEX idx_compaction_pending
                   ON compaction_history(status) WHERE status = 'pending'""",
                "CREATE INDEX idx_compaction_user ON compaction_history(user_id)",
                """
                CREATE TABLE session_metadata (
                    session_id TEXT PRIMARY KEY,
                    user_id TEXT NOT NULL,
                    conversation_id TEXT,
                    started_at REAL NOT NULL,
                    last_activity_at REAL NOT NULL,
                    message_count INTEGER NOT NULL DEFAULT 0 CHECK (message_count >= 0),
                    working_memory_expires_at REAL,
                    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN
                        ('active', 'expired', 'ended', 'consolidated')),
                    summary TEXT CHECK (summary IS NULL OR length(summary) <= 2000),
                    updated_at REAL NOT NULL
                )
                """,
                """CREATE INDEX idx_session_metadata_user
                   ON session_metadata(user_id, last_activity_at)""",
                """CREATE INDEX idx_session_metadata_expiry
                   ON session_metadata(status, working_memory_expires_at)""",
                """
                CREATE TABLE working_outbox (
                    message_id TEXT PRIMARY KEY,
                    session_id TEXT NOT NULL,
                    created_at REAL NOT NULL,
                    queued_at REAL NOT NULL DEFAULT (unixepoch('subsec'))
                ) WITHOUT ROWID
                """,
                # Every new message is queued for working memory in its own statement.
                """
                CREATE TRIGGER messages_after_insert_working AFTER INSERT ON messages BEGIN
                    INSERT INTO working_outbox (message_id, session_id, created_at)
                        VALUES (new.id, new.session_id, new.timestamp);
                END
                """,
                """
                CREATE TABLE forget_ledger (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    grain TEXT NOT NULL CHECK (grain IN ('user', 'conversation', 'message')),
                    user_id TEXT NOT NULL,
                    conversation_id TEXT,
                    message_id TEXT,
                    session_ids TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(session_ids)),
                    requested_at REAL NOT NULL,
                    completed_at REAL
                )
                """,
                """CREATE INDEX idx_forget_ledger_pending
                   ON forget_ledger(id) WHERE completed_at IS NULL""",
            ],
            rollback_statements=[
                "DROP TABLE forget_ledger",
                "DROP TRIGGER messages_after_insert_working",
                "DROP TABLE working_outbox",
                "DROP TABLE session_metadata",
                "DROP INDEX idx_compaction_user",
                "DROP INDEX idx_compaction_pending",
                "ALTER TABLE compaction_history DROP COLUMN status",
                "ALTER TABLE compaction_history DROP COLUMN session_id",
                "ALTER TABLE compaction_history DROP COLUMN user_id",
                "ALTER TABLE message_attachments DROP COLUMN content",
                "DROP INDEX idx_messages_compaction",
                "CREATE INDEX idx_messages_role ON messages(role)",
                "DROP INDEX idx_messages_unclaimed",
                "DROP INDEX idx_messages_session",
                "ALTER TABLE messages DROP COLUMN consolidated_at",
                "ALTER TABLE messages DROP COLUMN compaction_id",
                "ALTER TABLE messages DROP COLUMN session_id",
                "ALTER TABLE messages DROP COLUMN user_id",
                "DROP INDEX idx_conversations_user",
                "ALTER TABLE conversations DROP COLUMN user_id",
            ],
        ),
    }
)
