"""Aircher's ``file_index`` database (``db/knowledge/file_index.db``): Aircher storage spec."""

from __future__ import annotations

from aico.data.schema import SchemaVersion, register_schema

__all__ = ["FILE_INDEX_SCHEMA"]

FILE_INDEX_SCHEMA = register_schema("file_index", "file_index", priority=0)(
    {
        1: SchemaVersion(
            version=1,
            name="file index tables",
            description="files, relationships, changes, access patterns, relevance, snippets",
            sql_statements=[
                """
                CREATE TABLE files (
                    id TEXT PRIMARY KEY,
                    path TEXT UNIQUE NOT NULL,
                    name TEXT NOT NULL,
                    extension TEXT,
                    size_bytes INTEGER,
                    permissions TEXT,
                    created_at TIMESTAMP,
                    modified_at TIMESTAMP,
                    accessed_at TIMESTAMP,
                    content_hash TEXT,
                    git_status TEXT,
                    is_binary BOOLEAN DEFAULT FALSE,
                    language TEXT,
                    encoding TEXT,
                    line_count INTEGER
                )
                """,
                """
                CREATE TABLE file_relationships (
                    id TEXT PRIMARY KEY,
                    source_file_id TEXT REFERENCES files(id) ON DELETE CASCADE,
                    target_file_id TEXT REFERENCES files(id) ON DELETE CASCADE,
                    relationship_type TEXT NOT NULL CHECK (relationship_type IN
                        ('imports', 'requires', 'includes', 'references', 'tests', 'documents')),
                    strength REAL DEFAULT 1.0,
                    discovered_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
                    last_verified TIMESTAMP,
                    metadata JSON,
                    UNIQUE(source_file_id, target_file_id, relationship_type)
                )
                """,
                """
                CREATE TABLE file_changes (
                    id TEXT PRIMARY KEY,
                    file_id TEXT REFERENCES files(id) ON DELETE CASCADE,
                    change_type TEXT NOT NULL CHECK (change_type IN
                        ('created', 'modified', 'deleted', 'renamed', 'moved')),
                    old_path TEXT,
                    new_path TEXT,
                    old_hash TEXT,
                    new_hash TEXT,
                    changed_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
                    change_size INTEGER,
                    git_commit TEXT
                )
                """,
                """
                CREATE TABLE file_access_patterns (
                    id TEXT PRIMARY KEY,
                    file_id TEXT REFERENCES files(id) ON DELETE CASCADE,
                    access_type TEXT NOT NULL CHECK (access_type IN
                        ('read', 'write', 'execute', 'context_inclusion')),
                    accessed_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
                    accessor TEXT,
                    context_id TEXT,
                    duration_ms INTEGER,
                    success BOOLEAN DEFAULT TRUE
                )
                """,
                """
                CREATE TABLE file_relevance_scores (
                    id TEXT PRIMARY KEY,
                    file_id TEXT REFERENCES files(id) ON DELETE CASCADE,
                    context_type TEXT NOT NULL,
                    base_score REAL DEFAULT 0.0,
                    frequency_score REAL DEFAULT 0.0,
                    recency_score REAL DEFAULT 0.0,
                    dependency_score REAL DEFAULT 0.0,
                    success_correlation REAL DEFAULT 0.0,
                    final_score REAL DEFAULT 0.0,
                    calculated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
                    expires_at TIMESTAMP,
                    metadata JSON
                )
                """,
                """
                CREATE TABLE file_snippets (
                    id TEXT PRIMARY KEY,
                    file_id TEXT REFERENCES files(id) ON DELETE CASCADE,
                    snippet_type TEXT NOT NULL CHECK (snippet_type IN
                        ('header', 'function', 'class', 'important', 'summary')),
                    content TEXT,
                    line_start INTEGER,
                    line_end INTEGER,
                    relevance_score REAL DEFAULT 0.0,
                    last_updated TIMESTAMP DEFAULT CURRENT_TIMESTAMP
                )
                """,
                "CREATE INDEX idx_relationships_target ON file_relationships(target_file_id)",
                "CREATE INDEX idx_changes_file ON file_changes(file_id, changed_at)",
                "CREATE INDEX idx_access_file ON file_access_patterns(file_id, accessed_at)",
                "CREATE INDEX idx_relevance_scores_file ON file_relevance_scores(file_id)",
                "CREATE INDEX idx_snippets_file ON file_snippets(file_id)",
            ],
            rollback_statements=[
                "DROP TABLE file_snippets",
                "DROP TABLE file_relevance_scores",
                "DROP TABLE file_access_patterns",
                "DROP TABLE file_changes",
                "DROP TABLE file_relationships",
                "DROP TABLE files",
            ],
        ),
        2: SchemaVersion(
            version=2,
            name="files belong to a user; stat cache",
            description=(
                "files gain user_id, root_path, rel_path, a stat cache (size, mtime_ns, "
                "ctime_ns, inode, device), chunk_count, indexed_at and deleted_at; a path is "
                "unique per user and root instead of globally. The tables are rebuilt (SQLite "
                "cannot drop a UNIQUE constraint) children first, so no ON DELETE CASCADE "
                "fires: each table is copied into a new one and the new ones renamed."
            ),
            sql_statements=[
                """
                CREATE TABLE files_v2 (
                    id TEXT PRIMARY KEY,
                    user_id TEXT,
                    root_path TEXT,
                    rel_path TEXT,
                    path TEXT NOT NULL,
                    name TEXT NOT NULL,
                    extension TEXT,
                    size_bytes INTEGER,
                    permissions TEXT,
                    created_at TIMESTAMP,
                    modified_at TIMESTAMP,
                    accessed_at TIMESTAMP,
                    content_hash TEXT,
                    git_status TEXT,
                    is_binary BOOLEAN DEFAULT FALSE,
                    language TEXT,
                    encoding TEXT,
                    line_count INTEGER,
                    stat_size INTEGER,
                    stat_mtime_ns INTEGER,
                    stat_ctime_ns INTEGER,
                    stat_inode INTEGER,
                    stat_device INTEGER,
                    chunk_count INTEGER DEFAULT 0,
                    indexed_at TIMESTAMP,
                    deleted_at TIMESTAMP,
                    UNIQUE(user_id, root_path, path)
                )
                """,
                """
                INSERT INTO files_v2 (id, path, name, extension, size_bytes, permissions,
                    created_at, modified_at, accessed_at, content_hash, git_status, is_binary,
                    language, encoding, line_count)
                SELECT id, path, name, extension, size_bytes, permissions, created_at,
                    modified_at, accessed_at, content_hash, git_status, is_binary, language,
                    encoding, line_count FROM files
                """,
                """
                CREATE TABLE file_relationships_v2 (
                    id TEXT PRIMARY KEY,
                    source_file_id TEXT REFERENCES files_v2(id) ON DELETE CASCADE,
                    target_file_id TEXT REFERENCES files_v2(id) ON DELETE CASCADE,
                    relationship_type TEXT NOT NULL CHECK (relationship_type IN
                        ('imports', 'requires', 'includes', 'references', 'tests', 'documents')),
                    strength REAL DEFAULT 1.0,
                    discovered_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
                    last_verified TIMESTAMP,
                    metadata JSON,
                    UNIQUE(source_file_id, target_file_id, relationship_type)
                )
                """,
                "INSERT INTO file_relationships_v2 SELECT * FROM file_relationships",
                """
                CREATE TABLE file_changes_v2 (
                    id TEXT PRIMARY KEY,
                    file_id TEXT REFERENCES files_v2(id) ON DELETE CASCADE,
                    change_type TEXT NOT NULL CHECK (change_type IN
                        ('created', 'modified', 'deleted', 'renamed', 'moved')),
                    old_path TEXT,
                    new_path TEXT,
                    old_hash TEXT,
                    new_hash TEXT,
                    changed_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
                    change_size INTEGER,
                    git_commit TEXT
                )
                """,
                "INSERT INTO file_changes_v2 SELECT * FROM file_changes",
                """
                CREATE TABLE file_access_patterns_v2 (
                    id TEXT PRIMARY KEY,
                    file_id TEXT REFERENCES files_v2(id) ON DELETE CASCADE,
                    access_type TEXT NOT NULL CHECK (access_type IN
                        ('read', 'write', 'execute', 'context_inclusion')),
                    accessed_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
                    accessor TEXT,
                    context_id TEXT,
                    duration_ms INTEGER,
                    success BOOLEAN DEFAULT TRUE
                )
                """,
                "INSERT INTO file_access_patterns_v2 SELECT * FROM file_access_patterns",
                """
                CREATE TABLE file_relevance_scores_v2 (
                    id TEXT PRIMARY KEY,
                    file_id TEXT REFERENCES files_v2(id) ON DELETE CASCADE,
                    context_type TEXT NOT NULL,
                    base_score REAL DEFAULT 0.0,
                    frequency_score REAL DEFAULT 0.0,
                    recency_score REAL DEFAULT 0.0,
                    dependency_score REAL DEFAULT 0.0,
                    success_correlation REAL DEFAULT 0.0,
                    final_score REAL DEFAULT 0.0,
                    calculated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
                    expires_at TIMESTAMP,
                    metadata JSON
                )
                """,
                "INSERT INTO file_relevance_scores_v2 SELECT * FROM file_relevance_scores",
                """
                CREATE TABLE file_snippets_v2 (
                    id TEXT PRIMARY KEY,
                    file_id TEXT REFERENCES files_v2(id) ON DELETE CASCADE,
                    snippet_type TEXT NOT NULL CHECK (snippet_type IN
                        ('header', 'function', 'class', 'important', 'summary')),
                    content TEXT,
                    line_start INTEGER,
                    line_end INTEGER,
                    relevance_score REAL DEFAULT 0.0,
                    last_updated TIMESTAMP DEFAULT CURRENT_TIMESTAMP
                )
                """,
                "INSERT INTO file_snippets_v2 SELECT * FROM file_snippets",
                "DROP TABLE file_snippets",
                "DROP TABLE file_relevance_scores",
                "DROP TABLE file_access_patterns",
                "DROP TABLE file_changes",
                "DROP TABLE file_relationships",
                "DROP TABLE files",
                "ALTER TABLE files_v2 RENAME TO files",
                "ALTER TABLE file_relationships_v2 RENAME TO file_relationships",
                "ALTER TABLE file_changes_v2 RENAME TO file_changes",
                "ALTER TABLE file_access_patterns_v2 RENAME TO file_access_patterns",
                "ALTER TABLE file_relevance_scores_v2 RENAME TO file_relevance_scores",
                "ALTER TABLE file_snippets_v2 RENAME TO file_snippets",
                "CREATE INDEX idx_files_user_hash ON files(user_id, content_hash)",
                "CREATE INDEX idx_relationships_target ON file_relationships(target_file_id)",
                "CREATE INDEX idx_changes_file ON file_changes(file_id, changed_at)",
                "CREATE INDEX idx_access_file ON file_access_patterns(file_id, accessed_at)",
                "CREATE INDEX idx_relevance_scores_file ON file_relevance_scores(file_id)",
                "CREATE INDEX idx_snippets_file ON file_snippets(file_id)",
            ],
        ),
    }
)
