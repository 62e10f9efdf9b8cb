"""Aircher's ``knowledge`` database (``db/knowledge/knowledge.db``): Aircher storage spec.

Version 1 is the specification's tables as written (frozen: applied versions never change).
Version 2 makes the tables aico's repositories write (``aico.data.repositories.knowledge``)
belong to an aico user, so ``Knowledge.purge_user`` can forget everything of one user:

- a ``user_id`` column (and an index leading with it) on every table but
  ``embedding_metadata`` and ``search_indexes``, which the file index owns;
- ``documentation_files`` rebuilt with ``UNIQUE (user_id, file_path)`` instead of a unique
  ``file_path``: two users may document the same path, and a duplicate refused for one
  user cannot reveal that another user recorded it;
- ``project_decisions.superseded_by`` (the decision that replaced this one) and
  ``status_changed_at``, for supersede / revert and a decision's history;
- the measured conversation metrics (``message_count``, ``turn_count``,
  ``duration_seconds``) and one row per (user, conversation) in
  ``conversation_effectiveness``.

Rows written under version 1 (none by aico) keep ``user_id`` NULL: they belong to no user.
"""

from __future__ import annotations

from aico.data.schema import SchemaVersion, register_schema

__all__ = ["KNOWLEDGE_SCHEMA"]

_UNIT = "CHECK ({col} IS NULL OR ({col} >= 0.0 AND {col} <= 1.0))"

KNOWLEDGE_SCHEMA = register_schema("knowledge", "knowledge", priority=0)(
    {
        1: SchemaVersion(
            version=1,
            name="knowledge tables",
            description="project analysis, learning/context feedback, embedding metadata",
            sql_statements=[
                f"""
                CREATE TABLE project_components (
                    id TEXT PRIMARY KEY,
                    component TEXT NOT NULL,
                    type TEXT NOT NULL,
                    description TEXT,
                    confidence REAL {_UNIT.format(col="confidence")},
                    evidence JSON,
                    metadata JSON,
                    last_updated TIMESTAMP DEFAULT CURRENT_TIMESTAMP
                )
                """,
                """
                CREATE TABLE documentation_files (
                    id TEXT PRIMARY KEY,
                    file_path TEXT UNIQUE NOT NULL,
                    doc_type TEXT,
                    title TEXT,
                    purpose TEXT,
                    sections JSON,
                    cross_refs JSON,
                    last_analyzed TIMESTAMP,
                    content_hash TEXT
                )
                """,
                """
                CREATE TABLE project_decisions (
                    id TEXT PRIMARY KEY,
                    decision_type TEXT NOT NULL,
                    title TEXT NOT NULL,
                    description TEXT,
                    rationale TEXT,
                    alternatives_considered JSON,
                    impact_assessment TEXT,
                    made_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
                    status TEXT DEFAULT 'active'
                        CHECK (status IN ('active', 'superseded', 'reverted')),
                    tags JSON
                )
                """,
                """
                CREATE TABLE success_patterns (
                    id TEXT PRIMARY KEY,
                    pattern_type TEXT NOT NULL,
                    description TEXT,
                    context JSON,
                    success_indicators JSON,
                    failure_indicators JSON,
                    confidence_score REAL,
                    usage_count INTEGER DEFAULT 0,
                    last_successful TIMESTAMP,
                    effectiveness_rating REAL
                )
                """,
                f"""
                CREATE TABLE conversation_effectiveness (
                    id TEXT PRIMARY KEY,
                    conversation_id TEXT,
                    task_type TEXT,
                    success_score REAL {_UNIT.format(col="success_score")},
                    completion_time_minutes INTEGER,
                    tokens_used INTEGER,
                    cost REAL,
                    user_satisfaction INTEGER
                        CHECK (user_satisfaction >= 1 AND user_satisfaction <= 5),
                    key_factors JSON,
                    lessons_learned TEXT,
                    recorded_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
                )
                """,
                f"""
                CREATE TABLE context_relevance_feedback (
                    id TEXT PRIMARY KEY,
                    file_path TEXT NOT NULL,
                    conversation_id TEXT,
                    relevance_score REAL {_UNIT.format(col="relevance_score")},
                    actual_usefulness REAL {_UNIT.format(col="actual_usefulness")},
                    context_type TEXT,
                    feedback_source TEXT DEFAULT 'implicit',
                    recorded_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
                )
                """,
                """
                CREATE TABLE embedding_metadata (
                    id TEXT PRIMARY KEY,
                    file_path TEXT NOT NULL,
                    chunk_index INTEGER,
                    embedding_model TEXT NOT NULL,
                    dimension INTEGER NOT NULL,
                    content_hash TEXT,
                    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
                    content_preview TEXT
                )
                """,
                """
                CREATE TABLE search_indexes (
                    id TEXT PRIMARY KEY,
                    index_type TEXT NOT NULL CHECK (index_type IN ('faiss', 'annoy', 'exact')),
                    index_path TEXT,
                    embedding_model TEXT,
                    dimension INTEGER,
                    item_count INTEGER DEFAULT 0,
                    last_rebuilt TIMESTAMP,
                    config JSON
                )
                """,
                "CREATE INDEX idx_components_type ON project_components(type)",
                "CREATE INDEX idx_decisions_status ON project_decisions(status, made_at)",
                "CREATE INDEX idx_patterns_type ON success_patterns(pattern_type)",
                """CREATE INDEX idx_effectiveness_conversation
                   ON conversation_effectiveness(conversation_id)""",
                "CREATE INDEX idx_relevance_file ON context_relevance_feedback(file_path)",
                "CREATE INDEX idx_embedding_file ON embedding_metadata(file_path, chunk_index)",
            ],
            rollback_statements=[
                "DROP TABLE search_indexes",
                "DROP TABLE embedding_metadata",
                "DROP TABLE context_relevance_feedback",
                "DROP TABLE conversation_effectiveness",
                "DROP TABLE success_patterns",
                "DROP TABLE project_decisions",
                "DROP TABLE documentation_files",
                "DROP TABLE project_components",
            ],
        ),
        2: SchemaVersion(
            version=2,
            name="knowledge owners",
            description="user_id on the user-derived tables, decision links, measured metrics",
            sql_statements=[
                "ALTER TABLE project_components ADD COLUMN user_id TEXT",
                "ALTER TABLE project_decisions ADD COLUMN user_id TEXT",
                "ALTER TABLE project_decisions ADD COLUMN superseded_by TEXT",
                "ALTER TABLE project_decisions ADD COLUMN status_changed_at TIMESTAMP",
                "ALTER TABLE success_patterns ADD COLUMN user_id TEXT",
                "ALTER TABLE conversation_effectiveness ADD COLUMN user_id TEXT",
                """ALTER TABLE conversation_effectiveness ADD COLUMN message_count INTEGER
                   CHECK (message_count IS NULL OR message_count >= 0)""",
                """ALTER TABLE conversation_effectiveness ADD COLUMN turn_count INTEGER
                   CHECK (turn_count IS NULL OR turn_count >= 0)""",
                """ALTER TABLE conversation_effectiveness ADD COLUMN duration_seconds REAL
                   CHECK (duration_seconds IS NULL OR duration_seconds >= 0.0)""",
                "ALTER TABLE context_relevance_feedback ADD COLUMN user_id TEXT",
                """
                CREATE TABLE documentation_files_v2 (
                    id TEXT PRIMARY KEY,
                    user_id TEXT,
                    file_path TEXT NOT NULL,
                    doc_type TEXT,
                    title TEXT,
                    purpose TEXT,
                    sections JSON,
                    cross_refs JSON,
                    last_analyzed TIMESTAMP,
                    content_hash TEXT,
                    UNIQUE (user_id, file_path)
                )
                """,
                """
                INSERT INTO documentation_files_v2 (id, user_id, file_path, doc_type, title,
                    purpose, sections, cross_refs, last_analyzed, content_hash)
                SELECT id, NULL, file_path, doc_type, title, purpose, sections, cross_refs,
                    last_analyzed, content_hash FROM documentation_files
                """,
                "DROP TABLE documentation_files",
                "ALTER TABLE documentation_files_v2 RENAME TO documentation_files",
                "CREATE INDEX idx_components_user ON project_components(user_id, type)",
                "CREATE INDEX idx_decisions_user ON project_decisions(user_id, status, made_at)",
                "CREATE INDEX idx_decisions_superseded_by ON project_decisions(superseded_by)",
                "CREATE INDEX idx_patterns_user ON success_patterns(user_id, pattern_type)",
                """CREATE UNIQUE INDEX idx_effectiveness_user_conversation
                   ON conversation_effectiveness(user_id, conversation_id)""",
                """CREATE INDEX idx_relevance_user
                   ON context_relevance_feedback(user_id, context_type, file_path)""",
            ],
            rollback_statements=[
                "DROP INDEX idx_relevance_user",
                "DROP INDEX idx_effectiveness_user_conversation",
                "DROP INDEX idx_patterns_user",
                "DROP INDEX idx_decisions_superseded_by",
                "DROP INDEX idx_decisions_user",
                "DROP INDEX idx_components_user",
                # Fails (and the database stays at version 2) if two users documented the
                # same path: version 1 allows a path once.
                """
                CREATE TABLE documentation_files_v1 (
                    id TEXT PRIMARY KEY,
                    file_path TEXT UNIQUE NOT NULL,
                    doc_type TEXT,
                    title TEXT,
                    purpose TEXT,
                    sections JSON,
                    cross_refs JSON,
                    last_analyzed TIMESTAMP,
                    content_hash TEXT
                )
                """,
                """
                INSERT INTO documentation_files_v1 (id, file_path, doc_type, title, purpose,
                    sections, cross_refs, last_analyzed, content_hash)
                SELECT id, file_path, doc_type, title, purpose, sections, cross_refs,
                    last_analyzed, content_hash FROM documentation_files
                """,
                "DROP TABLE documentation_files",
                "ALTER TABLE documentation_files_v1 RENAME TO documentation_files",
                "ALTER TABLE context_relevance_feedback DROP COLUMN user_id",
                "ALTER TABLE conversation_effectiveness DROP COLUMN duration_seconds",
                "ALTER TABLE conversation_effectiveness DROP COLUMN turn_count",
                "ALTER TABLE conversation_effectiveness DROP COLUMN message_count",
                "ALTER TABLE conversation_effectiveness DROP COLUMN user_id",
                "ALTER TABLE success_patterns DROP COLUMN user_id",
                "ALTER TABLE project_decisions DROP COLUMN status_changed_at",
                "ALTER TABLE project_decisions DROP COLUMN superseded_by",
                "ALTER TABLE project_decisions DROP COLUMN user_id",
                "ALTER TABLE project_components DROP COLUMN user_id",
            ],
        ),
    }
)
