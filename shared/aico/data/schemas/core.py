"""AICO's core schema (database ``core``, file ``db/core/aico.db``).

Timestamps are REAL unix seconds: TTLs, ranges and ordering are arithmetic, not parsing.
Every user-owned row references ``users`` with ``ON DELETE CASCADE`` so forgetting a user
is one delete that cannot leave orphans.

Version 3 adds ``api_tokens``, the companion backend's bearer tokens: only a keyed hash of
each token is kept (``aico.data.repositories.tokens``); a user's tokens go with the user.
"""

from __future__ import annotations

from aico.data.schema import SchemaVersion, register_schema
from aico.data.schemas.memory import retire_table

__all__ = ["CORE_SCHEMA"]

_NOW = "(unixepoch('subsec'))"

CORE_SCHEMA = register_schema("core", "core", priority=0)(
    {
        1: SchemaVersion(
            version=1,
            name="core tables",
            description="users, logs, facts (memory album), feedback events, tasks, sessions",
            sql_statements=[
                f"""
                CREATE TABLE users (
                    user_id TEXT PRIMARY KEY CHECK (length(user_id) BETWEEN 1 AND 128),
                    display_name TEXT NOT NULL CHECK (length(display_name) BETWEEN 1 AND 200),
                    nickname TEXT CHECK (nickname IS NULL OR length(nickname) <= 100),
                    user_type TEXT NOT NULL DEFAULT 'person'
                        CHECK (user_type IN ('person', 'admin', 'guest')),
                    preferences TEXT NOT NULL DEFAULT '{{}}'
                        CHECK (json_valid(preferences) AND json_type(preferences) = 'object'),
                    is_active INTEGER NOT NULL DEFAULT 1 CHECK (is_active IN (0, 1)),
                    created_at REAL NOT NULL DEFAULT {_NOW},
                    updated_at REAL NOT NULL DEFAULT {_NOW}
                )
                """,
                f"""
                CREATE TABLE logs (
                    id INTEGER PRIMARY KEY,
                    timestamp REAL NOT NULL DEFAULT {_NOW},
                    level TEXT NOT NULL
                        CHECK (level IN ('DEBUG', 'INFO', 'WARNING', 'ERROR', 'CRITICAL')),
                    subsystem TEXT NOT NULL DEFAULT 'aico',
                    module TEXT,
                    message TEXT NOT NULL,
                    user_id TEXT,
                    extra TEXT CHECK (extra IS NULL OR json_valid(extra))
                )
                """,
                "CREATE INDEX idx_logs_timestamp ON logs(timestamp)",
                "CREATE INDEX idx_logs_level_timestamp ON logs(level, timestamp)",
                f"""
                CREATE TABLE facts (
                    fact_id TEXT PRIMARY KEY,
                    user_id TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
                    content TEXT NOT NULL CHECK (length(content) BETWEEN 1 AND 10000),
                    category TEXT NOT NULL DEFAULT 'general',
                    confidence REAL NOT NULL DEFAULT 1.0
                        CHECK (confidence >= 0.0 AND confidence <= 1.0),
                    is_favorite INTEGER NOT NULL DEFAULT 0 CHECK (is_favorite IN (0, 1)),
                    source_message_id TEXT,
                    conversation_id TEXT,
                    revisit_count INTEGER NOT NULL DEFAULT 0 CHECK (revisit_count >= 0),
                    last_revisited_at REAL,
                    metadata TEXT NOT NULL DEFAULT '{{}}' CHECK (json_valid(metadata)),
                    created_at REAL NOT NULL DEFAULT {_NOW},
                    updated_at REAL NOT NULL DEFAULT {_NOW}
                )
                """,
                "CREATE INDEX idx_facts_user_created ON facts(user_id, created_at)",
                "CREATE INDEX idx_facts_user_category ON facts(user_id, category)",
                f"""
                CREATE TABLE feedback_events (
                    event_id TEXT PRIMARY KEY,
                    user_id TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
                    event_type TEXT NOT NULL CHECK (event_type IN
                        ('thumbs_up', 'thumbs_down', 'rating', 'correction', 'comment')),
                    rating INTEGER CHECK (rating IS NULL OR rating BETWEEN 1 AND 5),
                    comment TEXT,
                    message_id TEXT,
                    conversation_id TEXT,
                    metadata TEXT NOT NULL DEFAULT '{{}}' CHECK (json_valid(metadata)),
                    created_at REAL NOT NULL DEFAULT {_NOW},
                    CHECK (event_type != 'rating' OR rating IS NOT NULL)
                )
                """,
                "CREATE INDEX idx_feedback_user_created ON feedback_events(user_id, created_at)",
                f"""
                CREATE TABLE tasks (
                    task_id TEXT PRIMARY KEY,
                    task_type TEXT NOT NULL,
                    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN
                        ('pending', 'running', 'completed', 'failed', 'cancelled')),
                    schedule TEXT,
                    payload TEXT NOT NULL DEFAULT '{{}}' CHECK (json_valid(payload)),
                    attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
                    last_error TEXT,
                    next_run_at REAL,
                    last_run_at REAL,
                    created_at REAL NOT NULL DEFAULT {_NOW},
                    updated_at REAL NOT NULL DEFAULT {_NOW}
                )
                """,
                "CREATE INDEX idx_tasks_status_next ON tasks(status, next_run_at)",
                f"""
                CREATE TABLE session_metadata (
                    session_id TEXT PRIMARY KEY,
                    user_id TEXT NOT NULL,
                    conversation_id TEXT,
                    started_at REAL NOT NULL DEFAULT {_NOW},
                    last_activity_at REAL NOT NULL DEFAULT {_NOW},
                    message_count INTEGER NOT NULL DEFAULT 0 CHECK (message_count >= 0),
                    working_memory_expires_at REAL,
                    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN
                        ('active', 'expired', 'ended', 'consolidated')),
                    summary TEXT CHECK (summary IS NULL OR length(summary) <= 2000),
                    updated_at REAL NOT NULL DEFAULT {_NOW}
                )
                """,
                """CREATE INDEX idx_session_metadata_user
                   ON session_metadata(user_id, last_activity_at)""",
                """CREATE INDEX idx_session_metadata_expiry
                   ON session_metadata(status, working_memory_expires_at)""",
            ],
            rollback_statements=[
                "DROP TABLE session_metadata",
                "DROP TABLE tasks",
                "DROP TABLE feedback_events",
                "DROP TABLE facts",
                "DROP TABLE logs",
                "DROP TABLE users",
            ],
        ),
        2: SchemaVersion(
            version=2,
            name="retire core session rows",
            description="session_metadata moved to the conversations database, beside the log",
            sql_statements=retire_table("session_metadata"),
            rollback_statements=[
                f"""
                CREATE TABLE session_metadata (
                    session_id TEXT PRIMARY KEY,
                    user_id TEXT NOT NULL,
                    conversation_id TEXT,
                    started_at REAL NOT NULL DEFAULT {_NOW},
                    last_activity_at REAL NOT NULL DEFAULT {_NOW},
                    message_count INTEGER NOT NULL DEFAULT 0 CHECK (message_count >= 0),
                    working_memory_expires_at REAL,
                    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN
                        ('active', 'expired', 'ended', 'consolidated')),
                    summary TEXT CHECK (summary IS NULL OR length(summary) <= 2000),
                    updated_at REAL NOT NULL DEFAULT {_NOW}
                )
                """,
                """CREATE INDEX idx_session_metadata_user
                   ON session_metadata(user_id, last_activity_at)""",
                """CREATE INDEX idx_session_metadata_expiry
                   ON session_metadata(status, working_memory_expires_at)""",
            ],
        ),
        3: SchemaVersion(
            version=3,
            name="api tokens",
            description="bearer tokens of the companion backend, kept as keyed hashes",
            sql_statements=[
                """
                CREATE TABLE api_tokens (
                    token_id TEXT PRIMARY KEY CHECK (length(token_id) BETWEEN 1 AND 64),
                    token_hash BLOB NOT NULL CHECK (length(token_hash) = 32),
                    scope TEXT NOT NULL CHECK (scope IN ('user', 'admin')),
                    user_id TEXT REFERENCES users(user_id) ON DELETE CASCADE,
                    label TEXT CHECK (label IS NULL OR length(label) <= 200),
                    key_id TEXT NOT NULL,
                    created_at REAL NOT NULL,
                    last_used_at REAL,
                    revoked_at REAL,
                    CHECK ((scope = 'admin') = (user_id IS NULL))
                )
                """,
                "CREATE INDEX idx_api_tokens_user ON api_tokens(user_id)",
                # One live admin token at a time.
                """CREATE UNIQUE INDEX idx_api_tokens_one_admin ON api_tokens(scope)
                   WHERE scope = 'admin' AND revoked_at IS NULL""",
            ],
            rollback_statements=["DROP TABLE api_tokens"],
        ),
    }
)
