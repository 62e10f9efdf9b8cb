"""The integrations' tables in the core database (``db/core/aico.db``), schema "integrations".

No third-party import here: the CLI and the data layer can know the schema without the
``langgraph`` or ``mcp`` extras. Every table is user-owned and references ``users`` with
``ON DELETE CASCADE``, so forgetting a user (``UserService.delete_user``, which
``MemoryManager.forget`` runs) removes all of it in the same statement; nothing else has to
be told.

- ``integration_store_items``: LangGraph store items. ``namespace`` is the labels joined
  with ``.`` (LangGraph forbids ``.`` in a label, so the join is unambiguous and a prefix is
  a range of this column); ``value`` is the JSON document. ``index_fields`` says what was
  indexed (a JSON list of paths, or NULL for nothing), so a model change can re-embed from
  the value alone. TTL in minutes, as LangGraph counts it; ``expires_at`` in unix seconds.
- ``integration_store_texts``: one row per indexed text of an item (a path, or one element
  of a ``[*]`` path), with its vector (float32 blob) and the fingerprint of the model that
  made it. The text itself is not stored twice: it is in the value.
  Ids are AUTOINCREMENT (never reused), so a process can cache vectors by id and sync by
  fetching the ids above the last it saw.
- ``integration_store_fts``: FTS5 over those texts, **contentless with contentless_delete=1
  and secure-delete** like ``semantic_fts`` (see ``aico.ai.memory.semantic.schema``), keyed
  by the text row's id. The delete trigger keeps it equal to the texts table, also when a
  cascade from ``users`` or ``integration_store_items`` removes the rows; deleting a user
  also optimizes it, so no term of theirs is left in the index's pages.
- ``integration_store_state``: counts of text rows inserted and deleted, kept by triggers
  in the same transactions: a cached copy of the vectors is current while both are equal.
- ``integration_mem0_vectors``: the embedding of a mem0 memory (a fact of category
  ``mem0``), made once and reused by every search; dropped with the fact (cascade), made
  again when the fact's ``updated_at`` moved.
- ``integration_mem0_history``: what happened to a mem0 memory (ADD, UPDATE, DELETE) and
  when. Events only: no text, so a deleted memory leaves no copy of its words.

The SQL is frozen literal text (an applied version's checksum must not move with code).
"""

from __future__ import annotations

from aico.data.schema import SchemaVersion, register_schema

__all__ = ["INTEGRATIONS_SCHEMA"]

INTEGRATIONS_SCHEMA = register_schema(
    "integrations",
    "core",
    priority=40,
    plugin=True,
    versions={
        1: SchemaVersion(
            version=1,
            name="integration tables",
            description="LangGraph store items with their hybrid index; mem0 vectors, history",
            sql_statements=[
                """
                CREATE TABLE integration_store_items (
                    id INTEGER PRIMARY KEY,
                    user_id TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
                    namespace TEXT NOT NULL CHECK (length(namespace) >= 1),
                    key TEXT NOT NULL,
                    value TEXT NOT NULL
                        CHECK (json_valid(value) AND json_type(value) = 'object'),
                    index_fields TEXT CHECK (index_fields IS NULL OR json_valid(index_fields)),
                    created_at REAL NOT NULL,
                    updated_at REAL NOT NULL,
                    ttl_minutes REAL CHECK (ttl_minutes IS NULL OR ttl_minutes > 0),
                    expires_at REAL,
                    CHECK ((ttl_minutes IS NULL) = (expires_at IS NULL)),
                    UNIQUE (namespace, key)
                )
                """,
                """CREATE INDEX idx_integration_store_items_user
                   ON integration_store_items(user_id)""",
                """CREATE INDEX idx_integration_store_items_expiry
                   ON integration_store_items(expires_at) WHERE expires_at IS NOT NULL""",
                """
                CREATE TABLE integration_store_texts (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    item_id INTEGER NOT NULL
                        REFERENCES integration_store_items(id) ON DELETE CASCADE,
                    field TEXT NOT NULL,
                    vector BLOB,
                    vector_fingerprint TEXT,
                    CHECK ((vector IS NULL) = (vector_fingerprint IS NULL))
                )
                """,
                """CREATE INDEX idx_integration_store_texts_item
                   ON integration_store_texts(item_id)""",
                """CREATE INDEX idx_integration_store_texts_model
                   ON integration_store_texts(vector_fingerprint)""",
                """
                CREATE TABLE integration_store_state (
                    id INTEGER PRIMARY KEY CHECK (id = 1),
                    inserts INTEGER NOT NULL,
                    deletes INTEGER NOT NULL
                )
                """,
                "INSERT INTO integration_store_state (id, inserts, deletes) VALUES (1, 0, 0)",
                """
                CREATE TRIGGER integration_store_texts_after_insert
                AFTER INSERT ON integration_store_texts BEGIN
                    UPDATE integration_store_state SET inserts = inserts + 1 WHERE id = 1;
                END
                """,
                """
                CREATE VIRTUAL TABLE integration_store_fts USING fts5(
                    body, content='', contentless_delete=1,
                    tokenize='porter unicode61 remove_diacritics 2')
                """,
                """INSERT INTO integration_store_fts(integration_store_fts, rank)
                   VALUES ('secure-delete', 1)""",
                """
                CREATE TRIGGER integration_store_texts_after_delete
                AFTER DELETE ON integration_store_texts BEGIN
                    DELETE FROM integration_store_fts WHERE rowid = old.id;
                    UPDATE integration_store_state SET deletes = deletes + 1 WHERE id = 1;
                END
                """,
                # A forgotten user's terms can stay in FTS5's b-tree keys after the
                # secure delete of their rows; optimize rewrites the index without them
                # (measured: 20-30 ms at 10k items, nothing when already optimized).
                """
                CREATE TRIGGER integration_store_users_after_delete
                AFTER DELETE ON users BEGIN
                    INSERT INTO integration_store_fts(integration_store_fts) VALUES ('optimize');
                END
                """,
                """
                CREATE TABLE integration_mem0_vectors (
                    fact_id TEXT PRIMARY KEY REFERENCES facts(fact_id) ON DELETE CASCADE,
                    user_id TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
                    fact_updated_at REAL NOT NULL,
                    vector BLOB NOT NULL,
                    vector_fingerprint TEXT NOT NULL
                )
                """,
                """CREATE INDEX idx_integration_mem0_vectors_user
                   ON integration_mem0_vectors(user_id)""",
                """
                CREATE TABLE integration_mem0_history (
                    id INTEGER PRIMARY KEY,
                    memory_id TEXT NOT NULL CHECK (length(memory_id) BETWEEN 1 AND 128),
                    user_id TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
                    event TEXT NOT NULL CHECK (event IN ('ADD', 'UPDATE', 'DELETE')),
                    created_at REAL NOT NULL
                )
                """,
                """CREATE INDEX idx_integration_mem0_history_memory
                   ON integration_mem0_history(memory_id, id)""",
                """CREATE INDEX idx_integration_mem0_history_user
                   ON integration_mem0_history(user_id)""",
            ],
            rollback_statements=[
                "DROP TABLE integration_mem0_history",
                "DROP TABLE integration_mem0_vectors",
                "DROP TRIGGER integration_store_users_after_delete",
                "DROP TRIGGER integration_store_texts_after_delete",
                "DROP TRIGGER integration_store_texts_after_insert",
                "DROP TABLE integration_store_state",
                "DROP TABLE integration_store_fts",
                "DROP TABLE integration_store_texts",
                "DROP TABLE integration_store_items",
            ],
        ),
    },
)
