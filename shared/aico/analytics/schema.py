"""What aico records for analytics in the core database (``db/core/aico.db``), schema "analytics".

Nothing recorded which segments and facts went into a context, or how long assembling it
took, so these tables do (``record_context``, called by ``MemoryManager.assemble_context``):

- ``analytics_context_events``: one row per assembled context: the user, when, how long
  it took (ms), how many working turns, memories and facts it holds, its token estimate.
  No query text, no content.
- ``analytics_context_items``: one row per segment or fact in that context, with its rank
  and score. Each references its segment or fact with ``ON DELETE CASCADE``, and the event
  references ``users``: forgetting a user, a conversation or one fact removes its rows in
  the same statement that removes the record, so nothing else has to be told.

Ids only: segment and fact ids are opaque, the user id is already in every table of this
file. The SQL is frozen literal text (an applied version's checksum must not move).
"""

from __future__ import annotations

from aico.data.schema import SchemaVersion, register_schema

__all__ = ["ANALYTICS_SCHEMA"]

ANALYTICS_SCHEMA = register_schema(
    "analytics",
    "core",
    priority=50,
    plugin=True,
    versions={
        1: SchemaVersion(
            version=1,
            name="context retrievals",
            description="which segments and facts each assembled context held, and its latency",
            sql_statements=[
                """
                CREATE TABLE analytics_context_events (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    user_id TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
                    at REAL NOT NULL,
                    latency_ms REAL NOT NULL CHECK (latency_ms >= 0),
                    working INTEGER NOT NULL DEFAULT 0 CHECK (working >= 0),
                    memories INTEGER NOT NULL DEFAULT 0 CHECK (memories >= 0),
                    facts INTEGER NOT NULL DEFAULT 0 CHECK (facts >= 0),
                    tokens INTEGER NOT NULL DEFAULT 0 CHECK (tokens >= 0)
                )
                """,
                """CREATE INDEX idx_analytics_context_events_user
                   ON analytics_context_events(user_id, at)""",
                """
                CREATE TABLE analytics_context_items (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    event_id INTEGER NOT NULL
                        REFERENCES analytics_context_events(id) ON DELETE CASCADE,
                    segment_id TEXT
                        REFERENCES semantic_segments(segment_id) ON DELETE CASCADE,
                    fact_id TEXT REFERENCES facts(fact_id) ON DELETE CASCADE,
                    rank INTEGER NOT NULL CHECK (rank >= 0),
                    score REAL,
                    CHECK ((segment_id IS NULL) != (fact_id IS NULL))
                )
                """,
                """CREATE INDEX idx_analytics_context_items_event
                   ON analytics_context_items(event_id)""",
                """CREATE INDEX idx_analytics_context_items_segment
                   ON analytics_context_items(segment_id) WHERE segment_id IS NOT NULL""",
                """CREATE INDEX idx_analytics_context_items_fact
                   ON analytics_context_items(fact_id) WHERE fact_id IS NOT NULL""",
            ],
            rollback_statements=[
                "DROP TABLE analytics_context_items",
                "DROP TABLE analytics_context_events",
            ],
        ),
    },
)
