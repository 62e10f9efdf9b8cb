"""The sessions database (``db/core/sessions.db``): the storage spec's tables, then retired.

Version 1 is the specification's layout. Its ``sessions`` table duplicated
``session_metadata`` and ``session_cache`` duplicated working memory's sealed values; both
stayed empty. A session's log-side state has to commit in the same transaction as its
messages, so it lives in the conversations database beside them, and the cache lives in LMDB
where it expires. Version 2 therefore drops the two duplicates (refusing if either ever got
a row); ``user_preferences`` stays as the spec defines it and is cleared by ``forget``.
"""

from __future__ import annotations

from aico.data.schema import SchemaVersion, register_schema
from aico.data.schemas.memory import retire_table

__all__ = ["SESSIONS_SCHEMA"]

SESSIONS_SCHEMA = register_schema("sessions", "sessions", priority=0)(
    {
        1: SchemaVersion(
            version=1,
            name="session tables",
            description="sessions, session_cache, user_preferences",
            sql_statements=[
                """
                CREATE TABLE sessions (
                    id TEXT PRIMARY KEY,
                    user_id TEXT,
                    started_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
                    last_activity TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
                    status TEXT DEFAULT 'active'
                        CHECK (status IN ('active', 'inactive', 'expired')),
                    project_path TEXT,
                    working_directory TEXT,
                    environment_variables JSON,
                    preferences JSON
                )
                """,
                """
                CREATE TABLE session_cache (
                    id TEXT PRIMARY KEY,
                    session_id TEXT REFERENCES sessions(id) ON DELETE CASCADE,
                    cache_key TEXT NOT NULL,
                    cache_value JSON,
                    expires_at TIMESTAMP,
                    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
                    UNIQUE(session_id, cache_key)
                )
                """,
                """
                CREATE TABLE user_preferences (
                    id TEXT PRIMARY KEY,
                    user_id TEXT,
                    preference_key TEXT NOT NULL,
                    preference_value JSON,
                    updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
                    UNIQUE(user_id, preference_key)
                )
                """,
                "CREATE INDEX idx_sessions_user_activity ON sessions(user_id, last_activity)",
                "CREATE INDEX idx_session_cache_expires ON session_cache(expires_at)",
            ],
            rollback_statements=[
                "DROP TABLE user_preferences",
                "DROP TABLE session_cache",
                "DROP TABLE sessions",
            ],
        ),
        2: SchemaVersion(
            version=2,
            name="retire duplicate session tables",
            description="sessions and session_cache duplicated session_metadata and LMDB",
            sql_statements=[*retire_table("session_cache"), *retire_table("sessions")],
            rollback_statements=[
                """
                CREATE TABLE sessions (
                    id TEXT PRIMARY KEY,
                    user_id TEXT,
                    started_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
                    last_activity TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
                    status TEXT DEFAULT 'active'
                        CHECK (status IN ('active', 'inactive', 'expired')),
                    project_path TEXT,
                    working_directory TEXT,
                    environment_variables JSON,
                    preferences JSON
                )
                """,
                """
                CREATE TABLE session_cache (
                    id TEXT PRIMARY KEY,
                    session_id TEXT REFERENCES sessions(id) ON DELETE CASCADE,
                    cache_key TEXT NOT NULL,
                    cache_value JSON,
                    expires_at TIMESTAMP,
                    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
                    UNIQUE(session_id, cache_key)
                )
                """,
                "CREATE INDEX idx_sessions_user_activity ON sessions(user_id, last_activity)",
                "CREATE INDEX idx_session_cache_expires ON session_cache(expires_at)",
            ],
        ),
    }
)
