"""The model registry: which embedding model the stored vectors belong to, and the tokenizer.

Two small rows of the core database decide whether a store may search and index at all:
``semantic_model`` (the model of every stored vector, plus the target of an unfinished
re-embedding) and ``semantic_settings`` (the FTS5 tokenizer the index was built with).
Opening checks the configured encoder against the first and the configured tokenizer against
the second (from schema version 3 also ``semantic_fts_full``'s own row). These checks are
kept apart from the read and write paths because they run once, when a store opens, and
because they are the only place that decides between "use the vectors", "adopt a new model"
(nothing embedded yet) and "refuse until ``reembed``".

A read-only open makes the same decision without writing it down: it registers no model,
adopts nothing and leaves the FTS table as it was built (``check_model(write=False)``,
``stored_tokenizer``); the ``ModelState`` says what a writable open would have written.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from aico.ai.embeddings import Encoder
from aico.ai.memory.semantic._conn import Connection
from aico.ai.memory.semantic.fts import fts_create_statement
from aico.ai.memory.semantic.schema import (
    FTS_FILL_LEX_SQL,
    FTS_FILL_SQL,
    FTS_FULL_FILL_LEX_SQL,
    FTS_FULL_FILL_SQL,
    FTS_FULL_SECURE_DELETE_SQL,
    FTS_FULL_TABLE,
    FTS_SECURE_DELETE_SQL,
    FTS_TABLE,
)
from aico.ai.memory.semantic.types import ModelInfo
from aico.errors import SemanticMemoryError

__all__ = [
    "ModelState",
    "apply_tokenizer",
    "check_model",
    "has_full_fts",
    "has_languages",
    "has_sources",
    "model_of",
    "rebuild_fts",
    "require_schema",
    "set_target",
    "stored_tokenizer",
    "write_model",
]


@dataclass(frozen=True)
class ModelState:
    """What opening found: the model of the stored vectors and whether the encoder fits.

    ``mismatch`` is the message of a ``ModelMismatch`` (None when the encoder fits);
    ``adopted`` is True when a store without vectors switched to the configured encoder, so
    its old Chroma collections (maybe of another dimension) must be dropped. ``registered``
    is False when the registry row does not name ``model`` yet: only after a read-only open
    of a store that has no row, or that a writable open would switch to a new model.
    """

    model: ModelInfo
    mismatch: str | None = None
    adopted: bool = False
    registered: bool = True


def model_of(encoder: Encoder) -> ModelInfo:
    """The registry row ``encoder`` would have."""
    return ModelInfo(encoder.name, int(encoder.dimension), encoder.fingerprint)


def require_schema(conn: Connection) -> None:
    """Refuse a database the semantic schema was never applied to."""
    found = conn.fetch_value(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?",
        ("semantic_model",),
    )
    if not found:
        raise SemanticMemoryError(
            "the semantic schema is not applied to this database; run `aico db upgrade`"
        )


def check_model(conn: Connection, encoder: Encoder, *, write: bool = True) -> ModelState:
    """Register the encoder on first use; return the stored model and any mismatch.

    With ``write=False`` nothing is registered or adopted: the state says what would be.
    """
    wanted = model_of(encoder)
    with conn.transaction() if write else contextlib.nullcontext():
        row = conn.fetch_one("SELECT * FROM semantic_model WHERE id = 1")
        if row is None:
            if write:
                write_model(conn, wanted)
            return ModelState(wanted, registered=write)
        stored = ModelInfo(row["name"], int(row["dimension"]), row["fingerprint"])
        in_progress = row["target_fingerprint"] is not None
        if stored.fingerprint == wanted.fingerprint and not in_progress:
            return ModelState(stored)
        has_vectors = conn.fetch_value(
            "SELECT EXISTS (SELECT 1 FROM semantic_segments WHERE vector IS NOT NULL)"
        )
        if not has_vectors:
            # Nothing embedded yet: adopt the new model, nothing to migrate.
            if write:
                write_model(conn, wanted)
            return ModelState(wanted, adopted=True, registered=write)
    if in_progress:
        message = (
            f"a re-embedding to {row['target_name']} is unfinished; "
            "run `aico semantic reembed` to complete it"
        )
    else:
        message = (
            f"semantic memory was embedded with {stored.name} ({stored.dimension}-d, "
            f"fingerprint {stored.fingerprint[:12]}) but the configured encoder is "
            f"{wanted.name} ({wanted.dimension}-d, fingerprint {wanted.fingerprint[:12]}); "
            "run `aico semantic reembed` to re-embed the stored segments"
        )
    return ModelState(stored, mismatch=message)


def write_model(conn: Connection, info: ModelInfo) -> None:
    """Make ``info`` the model of the stored vectors (and end any re-embedding)."""
    conn.execute(
        """
        INSERT INTO semantic_model (id, name, dimension, fingerprint, updated_at)
        VALUES (1, ?, ?, ?, unixepoch('subsec'))
        ON CONFLICT(id) DO UPDATE SET name = excluded.name,
            dimension = excluded.dimension, fingerprint = excluded.fingerprint,
            target_name = NULL, target_dimension = NULL, target_fingerprint = NULL,
            updated_at = excluded.updated_at
        """,
        (info.name, info.dimension, info.fingerprint),
    )


def set_target(conn: Connection, info: ModelInfo) -> None:
    """Record that a re-embedding to ``info`` has begun (open stores refuse until it ends)."""
    conn.execute(
        "UPDATE semantic_model SET target_name = ?, target_dimension = ?, "
        "target_fingerprint = ?, updated_at = unixepoch('subsec') WHERE id = 1",
        (info.name, info.dimension, info.fingerprint),
    )


def stored_tokenizer(conn: Connection) -> str | None:
    """The tokenizer the FTS table was built with (None if it was never recorded)."""
    value = conn.fetch_value("SELECT value FROM semantic_settings WHERE key = 'fts_tokenizer'")
    return None if value is None else str(value)


def _has_table(conn: Connection, name: str) -> bool:
    return bool(
        conn.fetch_value(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
        )
    )


def has_full_fts(conn: Connection) -> bool:
    """True when ``semantic_fts_full`` exists (schema version 3; a read-only open of an
    older database searches without it instead of migrating)."""
    return _has_table(conn, FTS_FULL_TABLE)


def has_vocabulary(conn: Connection, table: str) -> bool:
    """True when ``table``'s fts5vocab instance table exists (schema version 6: what the
    in-memory BM25 reads; without it FTS5 answers every search)."""
    return _has_table(conn, f"{table}_instances")


def has_sources(conn: Connection) -> bool:
    """True when segments have a ``source`` column (schema version 4; before it, every
    segment came from a conversation)."""
    return bool(
        conn.fetch_value(
            "SELECT count(*) FROM pragma_table_info('semantic_segments') WHERE name = 'source'"
        )
    )


def has_languages(conn: Connection) -> bool:
    """True when segments have their language analysis columns (schema version 5; before
    it, BM25 indexes every segment's own text)."""
    return bool(
        conn.fetch_value(
            "SELECT count(*) FROM pragma_table_info('semantic_segments') WHERE name = 'fts_lex'"
        )
    )


def apply_tokenizer(conn: Connection, tokenizer: str) -> None:
    """Rebuild each FTS table built with another tokenizer, refilled from the segments'
    libSQL text (one transaction)."""
    stale = [t for t in _fts_tables(conn) if _setting(conn, t[1]) != tokenizer]
    if stale:
        _rebuild(conn, tokenizer, stale)


def rebuild_fts(conn: Connection, tokenizer: str) -> None:
    """Rebuild every FTS table from the segments' libSQL text (and, from schema version 5,
    their stored language analysis), whatever it holds now (one transaction): the repair
    for a damaged index (``aico doctor``)."""
    _rebuild(conn, tokenizer, _fts_tables(conn))


def _fts_tables(conn: Connection) -> list[tuple[str, str, str, str]]:
    """(table, its tokenizer setting, secure-delete SQL, fill SQL) of each FTS table."""
    lex = has_languages(conn)
    fill = FTS_FILL_LEX_SQL if lex else FTS_FILL_SQL
    tables = [(FTS_TABLE, "fts_tokenizer", FTS_SECURE_DELETE_SQL, fill)]
    if has_full_fts(conn):
        full_fill = FTS_FULL_FILL_LEX_SQL if lex else FTS_FULL_FILL_SQL
        tables.append((FTS_FULL_TABLE, "fts_full_tokenizer", FTS_FULL_SECURE_DELETE_SQL, full_fill))
    return tables


def _rebuild(conn: Connection, tokenizer: str, tables: list[tuple[str, str, str, str]]) -> None:
    with conn.transaction():
        for table, key, secure_delete, fill in tables:
            conn.execute(f"DROP TABLE IF EXISTS {table}")
            conn.execute(fts_create_statement(table, tokenizer))
            conn.execute(secure_delete)
            conn.execute(fill)
            conn.execute(
                """INSERT INTO semantic_settings (key, value) VALUES (?, ?)
                   ON CONFLICT(key) DO UPDATE SET value = excluded.value""",
                (key, tokenizer),
            )


def _setting(conn: Connection, key: str) -> str | None:
    value = conn.fetch_value("SELECT value FROM semantic_settings WHERE key = ?", (key,))
    return None if value is None else str(value)
