"""Aircher's ``knowledge`` database (``db/knowledge/knowledge.db``): Aircher storage spec."""

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
    }
)
