"""Semantic memory's tables in the core database (``db/core/aico.db``), registered as "semantic".

- ``semantic_segments``: the source of truth for every segment: text, owner, conversation,
  session, roles, time range, the vector as a float32 blob and the fingerprint of the model
  that made it (NULL until the outbox has embedded it; a per-row fingerprint is what makes
  ``reembed`` resumable). ``chroma_id`` is a random opaque id, the only id Chroma ever sees.
  Segments reference ``users`` with ``ON DELETE CASCADE`` like every user-owned row.
- ``semantic_fts``: FTS5 over each segment's search text (``body``) plus ``tags`` tokens for
  its user, conversation and roles, so those filters run inside the MATCH instead of a join
  per matching row (``tags`` has bm25 weight 0), **contentless with
  contentless_delete=1** and maintained by triggers. Why not external content: the text is
  already stored once in ``semantic_segments`` either way, but an external-content index
  must be told the *exact* old text on every delete or it silently corrupts, while a
  contentless one deletes by rowid. What we give up (``snippet``/``highlight`` and the
  ``rebuild`` command) we do not use; re-tokenizing repopulates from the segments table.
  ``secure-delete`` is on so a forgotten segment's tokens are removed from the index pages
  instead of being masked by a delete marker.
- ``semantic_outbox``: work for Chroma. The insert trigger queues "index", the delete trigger
  queues "delete" (so a cascade from ``users`` also reaches Chroma) and drops a pending
  "index" of the same segment. Rows are deleted when done; replaying is idempotent.
- ``semantic_segment_messages`` (version 2): which log messages each segment was made from,
  so forgetting one message finds every segment that repeats its words.
- ``semantic_model``: the one embedding model the stored vectors belong to, plus the target of
  a re-embedding in progress. ``semantic_settings``: the FTS tokenizer the index was built with.
- ``semantic_fts_full`` (version 3): a second FTS5 table, same shape, over the whole text of
  each segment whose ``semantic_fts`` text leaves words out (``fts_text`` set: by default the
  assistant's words of an exchange). BM25 over the user's words keeps its own statistics
  (the assistant's long answers do not dilute them) while what the other party said is
  searchable too; search fuses the two (``fusion``). Maintained by triggers of its own, so
  the version-1 triggers stay as they were; the migration indexes every existing segment
  from its libSQL text, and rolling back drops the table and its triggers.
- ``source`` / ``source_ref`` (version 4): where a segment came from: a conversation (the
  default; ``source_ref`` NULL) or a file of the file index (``source_ref`` is the
  ``file_index.db`` ``files.id``, stable across renames, never the path). Search filters on
  it in libSQL like the time range, so the FTS5 tables and their triggers stay as they were.
- ``lang`` / ``fts_lex`` / ``full_lex`` (version 5): the detected language of a segment and
  the text BM25 indexes for it when that is not the segment's own words (Snowball stems of a
  German segment, the character bigrams of a Japanese one: ``language``). The writer fills
  them at insert (libSQL cannot call Python from a trigger); NULL means "index the text
  itself", which is every English segment and every segment stored before version 5, so
  English rows are indexed exactly as before. The FTS triggers are recreated to index
  ``coalesce(fts_lex, fts_text, text)`` and ``coalesce(full_lex, text)``; a new trigger
  re-indexes a row whose analysis is filled in later (``analyze_segments``).
- ``semantic_fts_instances`` / ``semantic_fts_terms`` and the same two for
  ``semantic_fts_full`` (version 6): ``fts5vocab`` tables, views over each FTS5 index that
  store nothing. The in-memory BM25 (``postings``) reads FTS5's own postings, per term,
  through them, so its scores are FTS5's.
"""

from __future__ import annotations

from aico.ai.memory.semantic.fts import DEFAULT_FTS_TOKENIZER, fts_create_statement, tags_sql
from aico.data.schema import SchemaVersion, register_schema

__all__ = ["SEMANTIC_SCHEMA"]

_NOW = "(unixepoch('subsec'))"
FTS_TABLE = "semantic_fts"

# Shared with the store, which recreates the FTS table when the tokenizer changes.
_TAGS_NEW = tags_sql("new.")
FTS_FILL_SQL = (
    f"INSERT INTO {FTS_TABLE}(rowid, body, tags) "
    f"SELECT id, coalesce(fts_text, text), {tags_sql()} FROM semantic_segments"
)
FTS_SECURE_DELETE_SQL = f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rank) VALUES ('secure-delete', 1)"

#: The same fills from version 5 on: the analysis of a segment when there is one.
FTS_FILL_LEX_SQL = (
    f"INSERT INTO {FTS_TABLE}(rowid, body, tags) "
    f"SELECT id, coalesce(fts_lex, fts_text, text), {tags_sql()} FROM semantic_segments"
)

#: The BM25 table over every party's words (version 3), and how the tokenizer rebuild fills it.
FTS_FULL_TABLE = "semantic_fts_full"
FTS_FULL_FILL_SQL = (
    f"INSERT INTO {FTS_FULL_TABLE}(rowid, body, tags) "
    f"SELECT id, text, {tags_sql()} FROM semantic_segments WHERE fts_text IS NOT NULL"
)
FTS_FULL_FILL_LEX_SQL = (
    f"INSERT INTO {FTS_FULL_TABLE}(rowid, body, tags) SELECT id, coalesce(full_lex, text), "
    f"{tags_sql()} FROM semantic_segments WHERE fts_text IS NOT NULL"
)
FTS_FULL_SECURE_DELETE_SQL = (
    f"INSERT INTO {FTS_FULL_TABLE}({FTS_FULL_TABLE}, rank) VALUES ('secure-delete', 1)"
)
#: Every FTS5 table of the store: what optimize and the tokenizer rebuild go over.
FTS_TABLES = (FTS_TABLE, FTS_FULL_TABLE)

SEMANTIC_SCHEMA = register_schema("semantic", "core", priority=20)(
    {
        1: SchemaVersion(
            version=1,
            name="semantic segments",
            description="segments + vectors, contentless FTS5, outbox, model registry",
            sql_statements=[
                f"""
                CREATE TABLE semantic_segments (
                    id INTEGER PRIMARY KEY,
                    segment_id TEXT NOT NULL UNIQUE
                        CHECK (length(segment_id) BETWEEN 1 AND 128),
                    user_id TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
                    conversation_id TEXT CHECK (conversation_id IS NULL
                        OR length(conversation_id) BETWEEN 1 AND 128),
                    session_id TEXT CHECK (session_id IS NULL
                        OR length(session_id) BETWEEN 1 AND 128),
                    roles TEXT NOT NULL DEFAULT '',
                    start_ts REAL NOT NULL,
                    end_ts REAL NOT NULL CHECK (end_ts >= start_ts),
                    text TEXT NOT NULL CHECK (length(text) >= 1),
                    fts_text TEXT,
                    embed_text TEXT,
                    chroma_id TEXT NOT NULL UNIQUE,
                    vector BLOB,
                    vector_fingerprint TEXT,
                    created_at REAL NOT NULL DEFAULT {_NOW},
                    CHECK ((vector IS NULL) = (vector_fingerprint IS NULL))
                )
                """,
                # (user_id) alone keeps rowid order within a user: the exact vector scan
                # pages through a user by id without sorting.
                "CREATE INDEX idx_semantic_segments_user ON semantic_segments(user_id)",
                """CREATE INDEX idx_semantic_segments_user_time
                   ON semantic_segments(user_id, start_ts)""",
                """CREATE INDEX idx_semantic_segments_user_conversation
                   ON semantic_segments(user_id, conversation_id)""",
                fts_create_statement(FTS_TABLE, DEFAULT_FTS_TOKENIZER),
                FTS_SECURE_DELETE_SQL,
                f"""
                CREATE TABLE semantic_outbox (
                    id INTEGER PRIMARY KEY,
                    op TEXT NOT NULL CHECK (op IN ('index', 'delete')),
                    segment_rowid INTEGER,
                    chroma_id TEXT NOT NULL,
                    attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
                    last_error TEXT,
                    created_at REAL NOT NULL DEFAULT {_NOW},
                    CHECK ((op = 'index') = (segment_rowid IS NOT NULL))
                )
                """,
                """CREATE INDEX idx_semantic_outbox_segment
                   ON semantic_outbox(segment_rowid)""",
                f"""
                CREATE TRIGGER semantic_segments_after_insert
                AFTER INSERT ON semantic_segments BEGIN
                    INSERT INTO {FTS_TABLE}(rowid, body, tags)
                        VALUES (new.id, coalesce(new.fts_text, new.text), {_TAGS_NEW});
                    INSERT INTO semantic_outbox(op, segment_rowid, chroma_id)
                        VALUES ('index', new.id, new.chroma_id);
                END
                """,
                f"""
                CREATE TRIGGER semantic_segments_after_delete
                AFTER DELETE ON semantic_segments BEGIN
                    DELETE FROM {FTS_TABLE} WHERE rowid = old.id;
                    DELETE FROM semantic_outbox WHERE op = 'index' AND segment_rowid = old.id;
                    INSERT INTO semantic_outbox(op, segment_rowid, chroma_id)
                        VALUES ('delete', NULL, old.chroma_id);
                END
                """,
                f"""
                CREATE TRIGGER semantic_segments_after_text_update
                AFTER UPDATE OF text, fts_text, embed_text ON semantic_segments BEGIN
                    DELETE FROM {FTS_TABLE} WHERE rowid = old.id;
                    INSERT INTO {FTS_TABLE}(rowid, body, tags)
                        VALUES (new.id, coalesce(new.fts_text, new.text), {_TAGS_NEW});
                    UPDATE semantic_segments SET vector = NULL, vector_fingerprint = NULL
                        WHERE id = new.id;
                    INSERT INTO semantic_outbox(op, segment_rowid, chroma_id)
                        VALUES ('index', new.id, new.chroma_id);
                END
                """,
                f"""
                CREATE TRIGGER semantic_segments_after_tags_update
                AFTER UPDATE OF user_id, conversation_id, roles ON semantic_segments BEGIN
                    DELETE FROM {FTS_TABLE} WHERE rowid = old.id;
                    INSERT INTO {FTS_TABLE}(rowid, body, tags)
                        VALUES (new.id, coalesce(new.fts_text, new.text), {_TAGS_NEW});
                END
                """,
                # A new owner means another Chroma collection: remove, then index again.
                """
                CREATE TRIGGER semantic_segments_after_owner_update
                AFTER UPDATE OF user_id ON semantic_segments
                WHEN old.user_id IS NOT new.user_id BEGIN
                    INSERT INTO semantic_outbox(op, segment_rowid, chroma_id)
                        VALUES ('delete', NULL, old.chroma_id);
                    INSERT INTO semantic_outbox(op, segment_rowid, chroma_id)
                        VALUES ('index', new.id, new.chroma_id);
                END
                """,
                f"""
                CREATE TABLE semantic_model (
                    id INTEGER PRIMARY KEY CHECK (id = 1),
                    name TEXT NOT NULL,
                    dimension INTEGER NOT NULL CHECK (dimension > 0),
                    fingerprint TEXT NOT NULL,
                    target_name TEXT,
                    target_dimension INTEGER CHECK (target_dimension IS NULL
                        OR target_dimension > 0),
                    target_fingerprint TEXT,
                    updated_at REAL NOT NULL DEFAULT {_NOW}
                )
                """,
                """
                CREATE TABLE semantic_settings (
                    key TEXT PRIMARY KEY,
                    value TEXT NOT NULL
                )
                """,
                f"""INSERT INTO semantic_settings(key, value)
                    VALUES ('fts_tokenizer', '{DEFAULT_FTS_TOKENIZER}')""",
            ],
            rollback_statements=[
                "DROP TRIGGER semantic_segments_after_owner_update",
                "DROP TRIGGER semantic_segments_after_tags_update",
                "DROP TRIGGER semantic_segments_after_text_update",
                "DROP TRIGGER semantic_segments_after_delete",
                "DROP TRIGGER semantic_segments_after_insert",
                "DROP TABLE semantic_settings",
                "DROP TABLE semantic_model",
                "DROP TABLE semantic_outbox",
                f"DROP TABLE {FTS_TABLE}",
                "DROP TABLE semantic_segments",
            ],
        ),
        2: SchemaVersion(
            version=2,
            name="segment sources",
            description="semantic_segment_messages: the log messages behind each segment",
            sql_statements=[
                """
                CREATE TABLE semantic_segment_messages (
                    message_id TEXT NOT NULL,
                    segment_rowid INTEGER NOT NULL
                        REFERENCES semantic_segments(id) ON DELETE CASCADE,
                    PRIMARY KEY (message_id, segment_rowid)
                ) WITHOUT ROWID
                """,
                """CREATE INDEX idx_semantic_segment_messages_segment
                   ON semantic_segment_messages(segment_rowid)""",
                # Segments still waiting for a vector: what repair and verify look for,
                # without reading every segment's blob (the index is empty when all is well).
                """CREATE INDEX idx_semantic_segments_unembedded
                   ON semantic_segments(id) WHERE vector IS NULL""",
            ],
            rollback_statements=[
                "DROP INDEX idx_semantic_segments_unembedded",
                "DROP TABLE semantic_segment_messages",
            ],
        ),
        # Frozen literals: an applied version's SQL must never change with live code.
        3: SchemaVersion(
            version=3,
            name="full-text BM25",
            description="semantic_fts_full: BM25 over every party's words, own statistics",
            sql_statements=[
                """CREATE VIRTUAL TABLE semantic_fts_full USING fts5(body, tags, content='',
                   contentless_delete=1, tokenize='porter unicode61 remove_diacritics 2')""",
                """INSERT INTO semantic_fts_full(semantic_fts_full, rank)
                   VALUES ('secure-delete', 1)""",
                """INSERT INTO semantic_fts_full(rowid, body, tags)
                   SELECT id, text, 'u' || hex(user_id) || '0'
                       || CASE WHEN conversation_id IS NULL THEN ''
                          ELSE ' c' || hex(conversation_id) || '0' END
                       || CASE WHEN roles = '' THEN ''
                          ELSE ' r' || replace(hex(roles), '2C', '0 r') || '0' END
                   FROM semantic_segments WHERE fts_text IS NOT NULL""",
                """
                CREATE TRIGGER semantic_segments_full_after_insert
                AFTER INSERT ON semantic_segments WHEN new.fts_text IS NOT NULL BEGIN
                    INSERT INTO semantic_fts_full(rowid, body, tags)
                        VALUES (new.id, new.text, 'u' || hex(new.user_id) || '0'
                            || CASE WHEN new.conversation_id IS NULL THEN ''
                               ELSE ' c' || hex(new.conversation_id) || '0' END
                            || CASE WHEN new.roles = '' THEN ''
                               ELSE ' r' || replace(hex(new.roles), '2C', '0 r') || '0' END);
                END
                """,
                """
                CREATE TRIGGER semantic_segments_full_after_delete
                AFTER DELETE ON semantic_segments WHEN old.fts_text IS NOT NULL BEGIN
                    DELETE FROM semantic_fts_full WHERE rowid = old.id;
                END
                """,
                """
                CREATE TRIGGER semantic_segments_full_after_update
                AFTER UPDATE OF text, fts_text, user_id, conversation_id, roles
                ON semantic_segments BEGIN
                    DELETE FROM semantic_fts_full WHERE rowid = old.id;
                    INSERT INTO semantic_fts_full(rowid, body, tags)
                        SELECT new.id, new.text, 'u' || hex(new.user_id) || '0'
                            || CASE WHEN new.conversation_id IS NULL THEN ''
                               ELSE ' c' || hex(new.conversation_id) || '0' END
                            || CASE WHEN new.roles = '' THEN ''
                               ELSE ' r' || replace(hex(new.roles), '2C', '0 r') || '0' END
                        WHERE new.fts_text IS NOT NULL;
                END
                """,
                """INSERT INTO semantic_settings(key, value)
                   VALUES ('fts_full_tokenizer', 'porter unicode61 remove_diacritics 2')""",
            ],
            rollback_statements=[
                "DELETE FROM semantic_settings WHERE key = 'fts_full_tokenizer'",
                "DROP TRIGGER semantic_segments_full_after_update",
                "DROP TRIGGER semantic_segments_full_after_delete",
                "DROP TRIGGER semantic_segments_full_after_insert",
                "DROP TABLE semantic_fts_full",
            ],
        ),
        4: SchemaVersion(
            version=4,
            name="segment sources",
            description="source ('conversation' | 'file') and source_ref of every segment",
            sql_statements=[
                """ALTER TABLE semantic_segments ADD COLUMN source TEXT NOT NULL
                   DEFAULT 'conversation' CHECK (source IN ('conversation', 'file'))""",
                """ALTER TABLE semantic_segments ADD COLUMN source_ref TEXT
                   CHECK (source_ref IS NULL OR length(source_ref) BETWEEN 1 AND 128)""",
                """CREATE INDEX idx_semantic_segments_user_source
                   ON semantic_segments(user_id, source, source_ref)""",
            ],
            rollback_statements=[
                "DROP INDEX idx_semantic_segments_user_source",
                "ALTER TABLE semantic_segments DROP COLUMN source_ref",
                "ALTER TABLE semantic_segments DROP COLUMN source",
            ],
        ),
        # The FTS triggers of versions 1 and 3, recreated to index the analysis when there
        # is one; the rollback recreates them as they were (frozen literals both ways).
        5: SchemaVersion(
            version=5,
            name="language-aware BM25",
            description="lang, fts_lex, full_lex: what BM25 indexes for non-English segments",
            sql_statements=[
                "ALTER TABLE semantic_segments ADD COLUMN lang TEXT",
                "ALTER TABLE semantic_segments ADD COLUMN fts_lex TEXT",
                "ALTER TABLE semantic_segments ADD COLUMN full_lex TEXT",
                # Does this user have any non-English segment? (one probe: search analyzes a
                # query's language only then, so English users never load the detector)
                """CREATE INDEX idx_semantic_segments_user_foreign ON semantic_segments(user_id)
                   WHERE lang IS NOT NULL AND lang != 'en'""",
                "DROP TRIGGER semantic_segments_after_insert",
                "DROP TRIGGER semantic_segments_after_text_update",
                "DROP TRIGGER semantic_segments_after_tags_update",
                "DROP TRIGGER semantic_segments_full_after_insert",
                "DROP TRIGGER semantic_segments_full_after_update",
                """
                CREATE TRIGGER semantic_segments_after_insert
                AFTER INSERT ON semantic_segments BEGIN
                    INSERT INTO semantic_fts(rowid, body, tags)
                        VALUES (new.id, coalesce(new.fts_lex, new.fts_text, new.text),
                            'u' || hex(new.user_id) || '0'
                            || CASE WHEN new.conversation_id IS NULL THEN ''
                               ELSE ' c' || hex(new.conversation_id) || '0' END
                            || CASE WHEN new.roles = '' THEN ''
                               ELSE ' r' || replace(hex(new.roles), '2C', '0 r') || '0' END);
                    INSERT INTO semantic_outbox(op, segment_rowid, chroma_id)
                        VALUES ('index', new.id, new.chroma_id);
                END
                """,
                """
                CREATE TRIGGER semantic_segments_after_text_update
                AFTER UPDATE OF text, fts_text, embed_text ON semantic_segments BEGIN
                    DELETE FROM semantic_fts WHERE rowid = old.id;
                    INSERT INTO semantic_fts(rowid, body, tags)
                        VALUES (new.id, coalesce(new.fts_lex, new.fts_text, new.text),
                            'u' || hex(new.user_id) || '0'
                            || CASE WHEN new.conversation_id IS NULL THEN ''
                               ELSE ' c' || hex(new.conversation_id) || '0' END
                            || CASE WHEN new.roles = '' THEN ''
                               ELSE ' r' || replace(hex(new.roles), '2C', '0 r') || '0' END);
                    UPDATE semantic_segments SET vector = NULL, vector_fingerprint = NULL
                        WHERE id = new.id;
                    INSERT INTO semantic_outbox(op, segment_rowid, chroma_id)
                        VALUES ('index', new.id, new.chroma_id);
                END
                """,
                """
                CREATE TRIGGER semantic_segments_after_tags_update
                AFTER UPDATE OF user_id, conversation_id, roles ON semantic_segments BEGIN
                    DELETE FROM semantic_fts WHERE rowid = old.id;
                    INSERT INTO semantic_fts(rowid, body, tags)
                        VALUES (new.id, coalesce(new.fts_lex, new.fts_text, new.text),
                            'u' || hex(new.user_id) || '0'
                            || CASE WHEN new.conversation_id IS NULL THEN ''
                               ELSE ' c' || hex(new.conversation_id) || '0' END
                            || CASE WHEN new.roles = '' THEN ''
                               ELSE ' r' || replace(hex(new.roles), '2C', '0 r') || '0' END);
                END
                """,
                """
                CREATE TRIGGER semantic_segments_full_after_insert
                AFTER INSERT ON semantic_segments WHEN new.fts_text IS NOT NULL BEGIN
                    INSERT INTO semantic_fts_full(rowid, body, tags)
                        SELECT new.id, coalesce(new.full_lex, new.text),
                            'u' || hex(new.user_id) || '0'
                            || CASE WHEN new.conversation_id IS NULL THEN ''
                               ELSE ' c' || hex(new.conversation_id) || '0' END
                            || CASE WHEN new.roles = '' THEN ''
                               ELSE ' r' || replace(hex(new.roles), '2C', '0 r') || '0' END;
                END
                """,
                """
                CREATE TRIGGER semantic_segments_full_after_update
                AFTER UPDATE OF text, fts_text, user_id, conversation_id, roles
                ON semantic_segments BEGIN
                    DELETE FROM semantic_fts_full WHERE rowid = old.id;
                    INSERT INTO semantic_fts_full(rowid, body, tags)
                        SELECT new.id, coalesce(new.full_lex, new.text),
                            'u' || hex(new.user_id) || '0'
                            || CASE WHEN new.conversation_id IS NULL THEN ''
                               ELSE ' c' || hex(new.conversation_id) || '0' END
                            || CASE WHEN new.roles = '' THEN ''
                               ELSE ' r' || replace(hex(new.roles), '2C', '0 r') || '0' END
                        WHERE new.fts_text IS NOT NULL;
                END
                """,
                """
                CREATE TRIGGER semantic_segments_after_lex_update
                AFTER UPDATE OF fts_lex, full_lex ON semantic_segments BEGIN
                    DELETE FROM semantic_fts WHERE rowid = old.id;
                    INSERT INTO semantic_fts(rowid, body, tags)
                        VALUES (new.id, coalesce(new.fts_lex, new.fts_text, new.text),
                            'u' || hex(new.user_id) || '0'
                            || CASE WHEN new.conversation_id IS NULL THEN ''
                               ELSE ' c' || hex(new.conversation_id) || '0' END
                            || CASE WHEN new.roles = '' THEN ''
                               ELSE ' r' || replace(hex(new.roles), '2C', '0 r') || '0' END);
                    DELETE FROM semantic_fts_full WHERE rowid = old.id;
                    INSERT INTO semantic_fts_full(rowid, body, tags)
                        SELECT new.id, coalesce(new.full_lex, new.text),
                            'u' || hex(new.user_id) || '0'
                            || CASE WHEN new.conversation_id IS NULL THEN ''
                               ELSE ' c' || hex(new.conversation_id) || '0' END
                            || CASE WHEN new.roles = '' THEN ''
                               ELSE ' r' || replace(hex(new.roles), '2C', '0 r') || '0' END
                        WHERE new.fts_text IS NOT NULL;
                END
                """,
                """INSERT INTO semantic_settings(key, value)
                   VALUES ('lexical_analyzer', 'aico-lex/1')""",
            ],
            rollback_statements=[
                "DELETE FROM semantic_settings WHERE key = 'lexical_analyzer'",
                "DROP TRIGGER semantic_segments_after_lex_update",
                "DROP INDEX idx_semantic_segments_user_foreign",
                "DROP TRIGGER semantic_segments_after_insert",
                "DROP TRIGGER semantic_segments_after_text_update",
                "DROP TRIGGER semantic_segments_after_tags_update",
                "DROP TRIGGER semantic_segments_full_after_insert",
                "DROP TRIGGER semantic_segments_full_after_update",
                """
                CREATE TRIGGER semantic_segments_after_insert
                AFTER INSERT ON semantic_segments BEGIN
                    INSERT INTO semantic_fts(rowid, body, tags)
                        VALUES (new.id, coalesce(new.fts_text, new.text),
                            'u' || hex(new.user_id) || '0'
                            || CASE WHEN new.conversation_id IS NULL THEN ''
                               ELSE ' c' || hex(new.conversation_id) || '0' END
                            || CASE WHEN new.roles = '' THEN ''
                               ELSE ' r' || replace(hex(new.roles), '2C', '0 r') || '0' END);
                    INSERT INTO semantic_outbox(op, segment_rowid, chroma_id)
                        VALUES ('index', new.id, new.chroma_id);
                END
                """,
                """
                CREATE TRIGGER semantic_segments_after_text_update
                AFTER UPDATE OF text, fts_text, embed_text ON semantic_segments BEGIN
                    DELETE FROM semantic_fts WHERE rowid = old.id;
                    INSERT INTO semantic_fts(rowid, body, tags)
                        VALUES (new.id, coalesce(new.fts_text, new.text),
                            'u' || hex(new.user_id) || '0'
                            || CASE WHEN new.conversation_id IS NULL THEN ''
                               ELSE ' c' || hex(new.conversation_id) || '0' END
                            || CASE WHEN new.roles = '' THEN ''
                               ELSE ' r' || replace(hex(new.roles), '2C', '0 r') || '0' END);
                    UPDATE semantic_segments SET vector = NULL, vector_fingerprint = NULL
                        WHERE id = new.id;
                    INSERT INTO semantic_outbox(op, segment_rowid, chroma_id)
                        VALUES ('index', new.id, new.chroma_id);
                END
                """,
                """
                CREATE TRIGGER semantic_segments_after_tags_update
                AFTER UPDATE OF user_id, conversation_id, roles ON semantic_segments BEGIN
                    DELETE FROM semantic_fts WHERE rowid = old.id;
                    INSERT INTO semantic_fts(rowid, body, tags)
                        VALUES (new.id, coalesce(new.fts_text, new.text),
                            'u' || hex(new.user_id) || '0'
                            || CASE WHEN new.conversation_id IS NULL THEN ''
                               ELSE ' c' || hex(new.conversation_id) || '0' END
                            || CASE WHEN new.roles = '' THEN ''
                               ELSE ' r' || replace(hex(new.roles), '2C', '0 r') || '0' END);
                END
                """,
                """
                CREATE TRIGGER semantic_segments_full_after_insert
                AFTER INSERT ON semantic_segments WHEN new.fts_text IS NOT NULL BEGIN
                    INSERT INTO semantic_fts_full(rowid, body, tags)
                        SELECT new.id, new.text,
                            'u' || hex(new.user_id) || '0'
                            || CASE WHEN new.conversation_id IS NULL THEN ''
                               ELSE ' c' || hex(new.conversation_id) || '0' END
                            || CASE WHEN new.roles = '' THEN ''
                               ELSE ' r' || replace(hex(new.roles), '2C', '0 r') || '0' END;
                END
                """,
                """
                CREATE TRIGGER semantic_segments_full_after_update
                AFTER UPDATE OF text, fts_text, user_id, conversation_id, roles
                ON semantic_segments BEGIN
                    DELETE FROM semantic_fts_full WHERE rowid = old.id;
                    INSERT INTO semantic_fts_full(rowid, body, tags)
                        SELECT new.id, new.text,
                            'u' || hex(new.user_id) || '0'
                            || CASE WHEN new.conversation_id IS NULL THEN ''
                               ELSE ' c' || hex(new.conversation_id) || '0' END
                            || CASE WHEN new.roles = '' THEN ''
                               ELSE ' r' || replace(hex(new.roles), '2C', '0 r') || '0' END
                        WHERE new.fts_text IS NOT NULL;
                END
                """,
                "ALTER TABLE semantic_segments DROP COLUMN full_lex",
                "ALTER TABLE semantic_segments DROP COLUMN fts_lex",
                "ALTER TABLE semantic_segments DROP COLUMN lang",
            ],
        ),
        # Views over FTS5's own index (they store nothing): the in-memory BM25 reads its
        # postings and document counts through them (``postings``).
        6: SchemaVersion(
            version=6,
            name="FTS5 vocabulary views",
            description="fts5vocab tables over both BM25 indexes, for the in-memory BM25",
            sql_statements=[
                f"CREATE VIRTUAL TABLE {FTS_TABLE}_instances "
                f"USING fts5vocab({FTS_TABLE}, instance)",
                f"CREATE VIRTUAL TABLE {FTS_TABLE}_terms USING fts5vocab({FTS_TABLE}, row)",
                f"CREATE VIRTUAL TABLE {FTS_FULL_TABLE}_instances "
                f"USING fts5vocab({FTS_FULL_TABLE}, instance)",
                f"CREATE VIRTUAL TABLE {FTS_FULL_TABLE}_terms "
                f"USING fts5vocab({FTS_FULL_TABLE}, row)",
            ],
            rollback_statements=[
                f"DROP TABLE {FTS_FULL_TABLE}_terms",
                f"DROP TABLE {FTS_FULL_TABLE}_instances",
                f"DROP TABLE {FTS_TABLE}_terms",
                f"DROP TABLE {FTS_TABLE}_instances",
            ],
        ),
    }
)
