"""``SemanticMemoryStore``: hybrid long-term memory over encrypted libSQL and Chroma.

libSQL (the core database) is the source of truth: segment text, metadata and vectors, the
FTS5 index that gives BM25, the outbox and the model registry. Chroma is a derived dense index
holding opaque ids, rotated vectors and a few numbers, rebuilt from libSQL on demand.

Write path: ``add_segments`` inserts rows in one transaction (triggers add the FTS rows and an
"index" outbox row each); ``process_outbox`` embeds in batches, stores the vector blobs,
upserts into Chroma and deletes the outbox rows. Every step is idempotent, so replaying the
outbox after a crash anywhere repairs the index.

Read path: ``search`` runs BM25 (FTS5, in libSQL) and dense retrieval (Chroma, one collection
per user) with over-fetching, re-checks every dense hit against libSQL (owner and filters),
fuses the two lists (``fusion``) and reads the text of the winners from libSQL.

Filters (conversation, role, time) are evaluated in libSQL. For the dense half, a filtered set
of at most ``exact_search_limit`` segments is searched exactly with the libSQL vectors; a
larger one is searched in Chroma with a wider over-fetch and post-filtered. (Chroma's own
``where`` filters measured 100-500 ms at 100k vectors, against ~8 ms unfiltered.)
"""

from __future__ import annotations

import contextlib
import math
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar, get_args

import numpy as np
import numpy.typing as npt

from aico.ai.embeddings import Encoder
from aico.ai.memory._faults import fault
from aico.ai.memory.semantic._chroma import ChromaIndex, ChromaLocation
from aico.ai.memory.semantic._heap import release_free_memory
from aico.ai.memory.semantic._owner import IndexOwner
from aico.ai.memory.semantic.config import SemanticConfig
from aico.ai.memory.semantic.fts import (
    fts_create_statement,
    match_expression,
    query_terms,
    scoped_expression,
)
from aico.ai.memory.semantic.fusion import fuse
from aico.ai.memory.semantic.keys import SemanticKeys
from aico.ai.memory.semantic.rotation import VectorRotation
from aico.ai.memory.semantic.schema import FTS_FILL_SQL, FTS_SECURE_DELETE_SQL, FTS_TABLE
from aico.ai.memory.semantic.segmenting import SegmentationConfig, segment_messages
from aico.ai.memory.semantic.types import (
    IndexReport,
    Message,
    ModelInfo,
    OutboxResult,
    ReembedProgress,
    SearchHit,
    SearchMode,
    Segment,
    check_id,
    check_role,
    check_time,
)
from aico.data.libsql import EncryptedLibSQLConnection
from aico.errors import (
    AicoError,
    InvalidInput,
    ModelMismatch,
    SemanticMemoryError,
    StoreClosed,
)
from aico.security import MasterKey

__all__ = ["SemanticMemoryStore"]

FloatArray = npt.NDArray[np.float32]
T = TypeVar("T")
ProgressCallback = Callable[[ReembedProgress], None]
_MAX_K = 1000
_PRELOAD_COLLECTIONS = 8  # one per user; most stores have one
_EXACT_CHUNK = 5000
_DF_TTL_S = 300.0
_DF_CACHE_MAX = 10_000
_SQL_IN_CHUNK = 500
_MODES = get_args(SearchMode)
_SEGMENT_COLUMNS = (
    "segment_id, user_id, conversation_id, session_id, roles, start_ts, end_ts, text, "
    "fts_text, embed_text, chroma_id"
)


class SemanticMemoryStore:
    """Hybrid BM25 + dense memory of every user, in one encrypted database.

    ``conn`` is the core database (``SchemaRegistry.apply_core_schemas`` already run; the
    caller owns it). Give exactly one of ``chroma_path`` (embedded) or ``chroma_url`` (a
    Chroma server). Opening with an encoder other than the one the stored vectors were made
    with raises ``ModelMismatch``; pass ``check_model=False`` to open anyway for ``reembed``
    (search and indexing then refuse until it has run).
    """

    def __init__(
        self,
        conn: EncryptedLibSQLConnection,
        encoder: Encoder,
        keys: SemanticKeys,
        *,
        chroma_path: str | Path | None = None,
        chroma_url: str | None = None,
        config: SemanticConfig | None = None,
        check_model: bool = True,
    ) -> None:
        self._conn = conn
        self._encoder = encoder
        self._keys = keys
        self._config = config or SemanticConfig()
        self._outbox_lock = threading.RLock()
        self._executor_lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._df_lock = threading.Lock()
        self._df_cache: dict[tuple[str, str, str], tuple[int, float]] = {}
        self._closed = False
        self._owner: IndexOwner | None = None
        location = ChromaLocation(
            path=None if chroma_path is None else Path(chroma_path), url=chroma_url
        )
        self._require_schema()
        self._model, self._mismatch, adopted = self._check_model(encoder)
        if self._mismatch is not None and check_model:
            raise ModelMismatch(self._mismatch)

        self._apply_tokenizer(self._config.fts_tokenizer)
        self._rotation = VectorRotation(keys.rotation_key, encoder.dimension)
        # Cold start: chromadb's import and the HNSW load of a collection hold the GIL for
        # ~0.6 s and ~0.7 s per 100k vectors, which stalls every other thread of the
        # process. So the load starts only after the first search (answered exactly from
        # the libSQL vectors), or when something needs the index (a write, ``rebuild``,
        # ``verify_index``, ``wait_ready``). See "Opening and cold start" in the docs.
        self._location = location
        self._adopted = adopted
        self._loader_lock = threading.Lock()
        self._loader: ThreadPoolExecutor | None = None
        self._index_future: Future[ChromaIndex] | None = None
        # An embedded index serves one process (``_owner``): refused up front, typed.
        if location.path is not None:
            self._owner = IndexOwner(location.path)
        if self._mismatch is None:
            self._submit(self._encoder.encode_query, "warm up")

    @classmethod
    def open(
        cls,
        conn: EncryptedLibSQLConnection,
        master_key: MasterKey,
        encoder: Encoder,
        *,
        chroma_path: str | Path | None = None,
        chroma_url: str | None = None,
        config: SemanticConfig | None = None,
        check_model: bool = True,
    ) -> SemanticMemoryStore:
        """Open with the subkeys derived from an unlocked master key."""
        return cls(
            conn,
            encoder,
            SemanticKeys.from_master_key(master_key),
            chroma_path=chroma_path,
            chroma_url=chroma_url,
            config=config,
            check_model=check_model,
        )

    # -- lifecycle -----------------------------------------------------------------------

    def __enter__(self) -> SemanticMemoryStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the Chroma client; the libSQL connection belongs to the caller. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._shutdown_executor()
        with self._loader_lock:
            loader, loading = self._loader, self._index_future
        if loader is not None:
            loader.shutdown(wait=True)
        if loading is not None:
            with contextlib.suppress(Exception):
                loading.result().close()
        if self._owner is not None:
            self._owner.release()

    def _shutdown_executor(self) -> None:
        with self._executor_lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)

    def _start_loading(self) -> Future[ChromaIndex]:
        """The background open of Chroma, started on first call (idempotent)."""
        with self._loader_lock:
            if self._index_future is None:
                self._check_open()
                self._loader = ThreadPoolExecutor(1, thread_name_prefix="aico-chroma")
                self._index_future = self._loader.submit(
                    _open_index, self._location, self._config.collection_prefix, self._adopted
                )
            return self._index_future

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Load the Chroma index now if needed and wait for it; False on timeout.

        Why: searches work before it is loaded (exactly, from libSQL) but are slower, and
        the load holds the GIL for a while; a service can call this at a moment of its
        choosing (after start-up, say). A failed load raises its error.
        """
        self._check_open()
        loading = self._start_loading()
        futures_wait([loading], timeout=timeout)
        if not loading.done():
            return False
        loading.result()
        return True

    @property
    def _index(self) -> ChromaIndex:
        """The Chroma index, loading it (and waiting) if needed."""
        return self._start_loading().result()

    def _index_if_ready(self) -> ChromaIndex | None:
        """The index if loaded, None before or while loading; a failed load raises."""
        loading = self._index_future
        if loading is None or not loading.done():
            return None
        return loading.result()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def config(self) -> SemanticConfig:
        return self._config

    @property
    def encoder(self) -> Encoder:
        return self._encoder

    @property
    def model(self) -> ModelInfo:
        """The model the stored vectors belong to (the registry row)."""
        return self._model

    @property
    def model_mismatch(self) -> bool:
        """True when the store was opened with ``check_model=False`` and needs ``reembed``."""
        return self._mismatch is not None

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosed("semantic memory store is closed")

    def _require_model(self) -> None:
        if self._mismatch is not None:
            raise ModelMismatch(self._mismatch)

    # -- opening checks ------------------------------------------------------------------

    def _require_schema(self) -> None:
        found = self._conn.fetch_value(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?",
            ("semantic_model",),
        )
        if not found:
            raise SemanticMemoryError(
                "the semantic schema is not applied to this database; run `aico db upgrade`"
            )

    def _check_model(self, encoder: Encoder) -> tuple[ModelInfo, str | None, bool]:
        """Register the encoder on first use; return the row, any mismatch, and "adopted"."""
        wanted = ModelInfo(encoder.name, int(encoder.dimension), encoder.fingerprint)
        with self._conn.transaction():
            row = self._conn.fetch_one("SELECT * FROM semantic_model WHERE id = 1")
            if row is None:
                self._write_model(wanted)
                return wanted, None, False
            stored = ModelInfo(row["name"], int(row["dimension"]), row["fingerprint"])
            in_progress = row["target_fingerprint"] is not None
            if stored.fingerprint == wanted.fingerprint and not in_progress:
                return stored, None, False
            has_vectors = self._conn.fetch_value(
                "SELECT EXISTS (SELECT 1 FROM semantic_segments WHERE vector IS NOT NULL)"
            )
            if not has_vectors:
                # Nothing embedded yet: adopt the new model, nothing to migrate.
                self._write_model(wanted)
                return wanted, None, True
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
        return stored, message, False

    def _write_model(self, info: ModelInfo) -> None:
        self._conn.execute(
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

    def _apply_tokenizer(self, tokenizer: str) -> None:
        """Rebuild the FTS table if it was built with another tokenizer (one transaction)."""
        current = self._conn.fetch_value(
            "SELECT value FROM semantic_settings WHERE key = 'fts_tokenizer'"
        )
        if current == tokenizer:
            return
        with self._conn.transaction():
            self._conn.execute(f"DROP TABLE IF EXISTS {FTS_TABLE}")
            self._conn.execute(fts_create_statement(FTS_TABLE, tokenizer))
            self._conn.execute(FTS_SECURE_DELETE_SQL)
            self._conn.execute(FTS_FILL_SQL)
            self._conn.execute(
                """INSERT INTO semantic_settings (key, value) VALUES ('fts_tokenizer', ?)
                   ON CONFLICT(key) DO UPDATE SET value = excluded.value""",
                (tokenizer,),
            )

    # -- writing -------------------------------------------------------------------------

    def add_segments(
        self, segments: Sequence[Segment], *, index: bool = True, skip_existing: bool = False
    ) -> list[str]:
        """Store segments atomically (rows, FTS, outbox, sources) and, with ``index``, embed now.

        Returns the segment ids (generated where a segment had none). With ``index=False``
        the segments are searchable by BM25 at once and by dense search after
        ``process_outbox``. ``skip_existing`` makes the call idempotent for deterministic
        ids: a segment whose id is already stored is left as it is (no second FTS row, no
        second outbox row), and only the ids actually inserted are returned. That is how a
        consolidation replayed after a crash, or run by two processes at once, stores each
        segment exactly once.
        """
        self._check_open()
        items = list(segments)
        for item in items:
            if not isinstance(item, Segment):
                raise InvalidInput("add_segments() takes Segment objects")
        ids = [s.segment_id or uuid.uuid4().hex for s in items]
        if len(set(ids)) != len(ids):
            raise InvalidInput("segment ids must be unique")
        rows = [
            (
                segment_id,
                s.user_id,
                s.conversation_id,
                s.session_id,
                ",".join(s.roles),
                s.start_ts,
                s.end_ts,
                s.text,
                s.fts_text,
                s.embed_text,
                secrets.token_hex(16),
            )
            for segment_id, s in zip(ids, items, strict=True)
        ]
        conflict = " ON CONFLICT(segment_id) DO NOTHING" if skip_existing else ""
        inserted: list[str] = []
        if rows:
            with self._conn.transaction():
                for row, segment in zip(rows, items, strict=True):
                    result = self._conn.execute(
                        f"INSERT INTO semantic_segments ({_SEGMENT_COLUMNS}) "
                        f"VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?){conflict}",
                        row,
                    )
                    if result.rowcount == 0:
                        continue  # already stored (skip_existing)
                    inserted.append(row[0])
                    if segment.message_ids:
                        self._conn.execute_many(
                            "INSERT OR IGNORE INTO semantic_segment_messages "
                            "(message_id, segment_rowid) "
                            "SELECT ?, id FROM semantic_segments WHERE segment_id = ?",
                            [(m, row[0]) for m in dict.fromkeys(segment.message_ids)],
                        )
        if index and inserted and self._mismatch is None:
            self.process_outbox()
        return inserted if skip_existing else ids

    def add_messages(
        self,
        user_id: str,
        messages: Sequence[Message],
        *,
        conversation_id: str | None = None,
        session_id: str | None = None,
        segmentation: SegmentationConfig | None = None,
        index: bool = True,
    ) -> list[str]:
        """Segment a conversation (``config.segmentation`` unless given) and store it."""
        segments = segment_messages(
            user_id,
            messages,
            conversation_id=conversation_id,
            session_id=session_id,
            config=segmentation or self._config.segmentation,
        )
        return self.add_segments(segments, index=index)

    def process_outbox(self, *, limit: int | None = None) -> OutboxResult:
        """Apply pending outbox work to Chroma, oldest first; idempotent and crash-safe.

        While the model mismatches, only deletions are applied (embedding would mix models).
        Raises the first failure after recording it on the outbox rows; they stay queued.
        """
        self._check_open()
        indexed = deleted = 0
        with self._outbox_lock:
            last_id = 0
            while limit is None or indexed + deleted < limit:
                batch = self._config.outbox_batch_size
                if limit is not None:
                    batch = min(batch, limit - indexed - deleted)
                where = "id > ?" + (" AND op = 'delete'" if self._mismatch else "")
                rows = self._conn.fetch_all(
                    f"SELECT id, op, segment_rowid, chroma_id FROM semantic_outbox "
                    f"WHERE {where} ORDER BY id LIMIT ?",
                    (last_id, batch),
                )
                if not rows:
                    break
                last_id = int(rows[-1]["id"])
                try:
                    deleted += self._apply_deletes([r for r in rows if r["op"] == "delete"])
                    indexed += self._apply_indexes([r for r in rows if r["op"] == "index"])
                except AicoError as exc:
                    self._record_failure([int(r["id"]) for r in rows], exc)
                    raise
                self._delete_outbox_rows(rows)
        return OutboxResult(indexed=indexed, deleted=deleted, remaining=self.pending_outbox())

    def pending_outbox(self) -> int:
        """Outbox rows not applied yet."""
        return int(self._conn.fetch_value("SELECT count(*) FROM semantic_outbox") or 0)

    def _apply_deletes(self, rows: list[dict[str, Any]]) -> int:
        if not rows:
            return 0
        dead = [str(r["chroma_id"]) for r in rows]
        # The segment is gone, so its owner is unknown: try every collection of the store.
        for name in self._index.collection_names():
            self._index.delete(name, dead)
        return len(rows)

    def _apply_indexes(self, rows: list[dict[str, Any]]) -> int:
        if not rows:
            return 0
        rowids = sorted({int(r["segment_rowid"]) for r in rows})
        segments = self._fetch_in(
            "SELECT id, chroma_id, user_id, start_ts, end_ts, vector, vector_fingerprint, "
            "coalesce(embed_text, text) AS embed_text FROM semantic_segments WHERE id IN ({})",
            rowids,
        )
        fingerprint = self._model.fingerprint
        todo = [s for s in segments if s["vector_fingerprint"] != fingerprint]
        if todo:
            vectors = self._encode([s["embed_text"] for s in todo])
            self._store_vectors(todo, vectors, fingerprint)
            fault("mid_outbox")  # vectors in libSQL, not yet in Chroma
            for segment, vector in zip(todo, vectors, strict=True):
                segment["vector"] = vector
        by_user: dict[str, list[dict[str, Any]]] = {}
        for segment in segments:
            by_user.setdefault(segment["user_id"], []).append(segment)
        for user_id, items in by_user.items():
            self._upsert(user_id, items)
        return len(rows)

    def _encode(self, texts: list[str]) -> FloatArray:
        vectors = np.asarray(
            self._encoder.encode(texts, batch_size=self._config.embed_batch_size),
            dtype=np.float32,
        )
        if vectors.shape != (len(texts), self._model.dimension):
            raise SemanticMemoryError(
                f"the encoder returned vectors of shape {vectors.shape}, "
                f"expected ({len(texts)}, {self._model.dimension})"
            )
        return vectors

    def _store_vectors(
        self, segments: list[dict[str, Any]], vectors: FloatArray, fingerprint: str
    ) -> None:
        # The text check skips a segment whose text changed while it was being embedded:
        # its update trigger queued a fresh "index" that will embed the new text.
        self._conn.execute_many(
            "UPDATE semantic_segments SET vector = ?, vector_fingerprint = ? "
            "WHERE id = ? AND coalesce(embed_text, text) = ?",
            [
                (_to_blob(vector), fingerprint, int(s["id"]), s["embed_text"])
                for s, vector in zip(segments, vectors, strict=True)
            ],
        )

    def _upsert(self, user_id: str, segments: list[dict[str, Any]]) -> None:
        dimension = self._model.dimension
        vectors = np.stack(
            [
                v if isinstance(v, np.ndarray) else _from_blob(v, dimension)
                for v in (s["vector"] for s in segments)
            ]
        )
        metadatas: list[dict[str, str | int | float | bool]] = [
            {
                "u": self._keys.user_tag(user_id),
                "t0": float(s["start_ts"]),
                "t1": float(s["end_ts"]),
            }
            for s in segments
        ]
        self._index.upsert(
            self._collection_name(user_id),
            [str(s["chroma_id"]) for s in segments],
            self._rotation.rotate(vectors),
            metadatas,
        )

    def _record_failure(self, outbox_ids: list[int], exc: AicoError) -> None:
        # Only the error class: messages could one day carry something we do not want stored.
        with contextlib.suppress(AicoError):
            self._execute_in(
                "UPDATE semantic_outbox SET attempts = attempts + 1, last_error = ? "
                "WHERE id IN ({})",
                outbox_ids,
                prefix=(type(exc).__name__,),
            )

    def _delete_outbox_rows(self, rows: list[dict[str, Any]]) -> None:
        """Delete exactly the work items applied, matched on every column, not the id alone.

        ``semantic_outbox.id`` is a plain rowid: once another process emptied the table,
        SQLite hands the same ids to new rows. Deleting by id alone removed rows queued
        while this batch was being embedded, which then never reached Chroma.
        """
        with self._conn.transaction():
            self._conn.execute_many(
                "DELETE FROM semantic_outbox WHERE id = ? AND op = ? AND chroma_id = ? "
                "AND segment_rowid IS ?",
                [(int(r["id"]), r["op"], r["chroma_id"], r["segment_rowid"]) for r in rows],
            )

    # -- searching -----------------------------------------------------------------------

    def search(
        self,
        user_id: str,
        query: str,
        k: int = 10,
        *,
        mode: SearchMode = "hybrid",
        conversation_id: str | None = None,
        role: str | None = None,
        start: float | None = None,
        end: float | None = None,
        min_score: float | None = None,
    ) -> list[SearchHit]:
        """The ``k`` best segments of ``user_id`` for ``query``, best first.

        ``start``/``end`` keep segments whose time range overlaps ``[start, end]``.
        ``min_score`` applies to the fused score, which is in ``[0, 1]`` in every mode (see
        ``aico.ai.memory.semantic.fusion`` for what it means per method).
        """
        hits = self._search(user_id, query, k, mode, conversation_id, role, start, end, min_score)
        if self._index_future is None:
            self._start_loading()  # the first search is answered; now load Chroma
        return hits

    def _search(
        self,
        user_id: str,
        query: str,
        k: int,
        mode: SearchMode,
        conversation_id: str | None,
        role: str | None,
        start: float | None,
        end: float | None,
        min_score: float | None,
    ) -> list[SearchHit]:
        self._check_open()
        check_id(user_id, "user_id")
        if not isinstance(query, str):
            raise InvalidInput("query must be a string")
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= _MAX_K:
            raise InvalidInput(f"k must be an integer between 1 and {_MAX_K}")
        if mode not in _MODES:
            raise InvalidInput(f"mode must be one of {_MODES}")
        check_id(conversation_id, "conversation_id", optional=True)
        if role is not None:
            check_role(role)
        lo = None if start is None else check_time(start, "start")
        hi = None if end is None else check_time(end, "end")
        if min_score is not None and (
            isinstance(min_score, bool)
            or not isinstance(min_score, int | float)
            or not 0.0 <= min_score <= 1.0
        ):
            raise InvalidInput("min_score must be a number between 0 and 1")
        self._require_model()
        # A lone surrogate cannot reach the driver or the tokenizer: replace, do not fail.
        query = query.encode("utf-8", "replace").decode("utf-8")
        if not query.strip():
            return []

        where, params = _filter_sql(user_id, conversation_id, role, lo, hi)
        filtered = len(params) > 1
        n = max(self._config.candidates, k * self._config.overfetch)
        terms = query_terms(query, drop_stopwords=self._config.drop_stopwords)
        bm25: list[tuple[int, float]] = []
        dense: list[tuple[int, float]] = []
        dense_fill: dict[int, float] = {}
        if mode == "bm25":
            bm25 = self._bm25(terms, user_id, conversation_id, role, lo, hi, n) if terms else []
        else:
            # The model starts first and runs outside the GIL while BM25 (libsql holds the
            # GIL for a whole statement) runs here; see ``_start_embedding``.
            embedding = self._start_embedding(query)
            if mode == "hybrid" and terms:
                try:
                    bm25 = self._bm25(terms, user_id, conversation_id, role, lo, hi, n)
                except BaseException:
                    with contextlib.suppress(Exception):
                        embedding()
                    raise
            vector = np.asarray(embedding(), dtype=np.float32)
            dense = self._dense(user_id, vector, where, params, n, filtered)
            if bm25 and dense:
                # The BM25-only candidates get their exact cosine from the libSQL vectors, so
                # both halves are normalized over the same candidates (see ``fusion``).
                missing = sorted({key for key, _ in bm25} - {key for key, _ in dense})
                dense_fill = self._dense_scores(user_id, vector, missing)
        fused = fuse(bm25, dense, self._config.fusion, dense_fill=dense_fill)
        if min_score is not None:
            fused = [f for f in fused if f.score >= min_score]
        fused = fused[:k]
        if not fused:
            return []
        rows = {
            int(r["id"]): r
            for r in self._fetch_in(
                "SELECT id, segment_id, text, conversation_id, session_id, roles, start_ts, "
                "end_ts FROM semantic_segments WHERE +user_id = ? AND id IN ({})",
                [f.key for f in fused],
                prefix=(user_id,),
            )
        }
        hits = []
        for f in fused:
            row = rows.get(f.key)
            if row is None:  # deleted between the two reads
                continue
            hits.append(
                SearchHit(
                    segment_id=row["segment_id"],
                    text=row["text"],
                    score=f.score,
                    bm25_rank=f.bm25_rank,
                    bm25_score=f.bm25_score,
                    dense_rank=f.dense_rank,
                    dense_score=f.dense_score,
                    conversation_id=row["conversation_id"],
                    session_id=row["session_id"],
                    roles=tuple(r for r in str(row["roles"]).split(",") if r),
                    start_ts=float(row["start_ts"]),
                    end_ts=float(row["end_ts"]),
                )
            )
        return hits

    def _bm25(
        self,
        terms: list[str],
        user_id: str,
        conversation_id: str | None,
        role: str | None,
        start: float | None,
        end: float | None,
        n: int,
    ) -> list[tuple[int, float]]:
        """Top ``n`` by BM25. User, conversation and role are tag tokens in the MATCH.

        Only a time range needs a join (a row lookup per match, ~5 ms per 10k matches).
        Every id is re-checked against ``user_id`` when the winners' text is read.
        """
        expression = match_expression(self._prune_terms(user_id, terms))
        if expression is None:
            return []
        match = scoped_expression(
            expression, self._fts_user_scope(user_id), conversation_id=conversation_id, role=role
        )
        # FTS5's bm25() is lower-is-better. Ordering by the selected alias puts one bm25()
        # call in the program (EXPLAIN); selecting -bm25() and ordering by bm25() had two.
        score = f"bm25({FTS_TABLE}, 1.0, 0.0)"
        if start is None and end is None:
            sql = (
                f"SELECT rowid AS id, {score} AS score FROM {FTS_TABLE} "
                f"WHERE {FTS_TABLE} MATCH ? ORDER BY score LIMIT ?"
            )
            rows = self._conn.fetch_all(sql, (match, n))
        else:
            # CROSS JOIN keeps FTS5 as the outer loop: with a plain JOIN SQLite drove the join
            # from the (user_id, start_ts) index and re-ran the MATCH per row (LongMemEval:
            # 254 ms median per query, 2.4 ms this way).
            where, params = _filter_sql(user_id, None, None, start, end)
            sql = (
                f"SELECT s.id AS id, {score} AS score FROM {FTS_TABLE} "
                f"CROSS JOIN semantic_segments AS s ON s.id = {FTS_TABLE}.rowid "
                f"WHERE {FTS_TABLE} MATCH ? AND {_by_key(where)} ORDER BY score LIMIT ?"
            )
            rows = self._conn.fetch_all(sql, (match, *params, n))
        return [(int(r["id"]), -float(r["score"])) for r in rows]

    def _fts_user_scope(self, user_id: str) -> str | None:
        """The user to put in an FTS5 MATCH as a tag, or None when it would filter nothing.

        The tag's posting list is as long as the user's segments and doubled the BM25 work
        per match (100k segments: median 6.6 -> 16 ms; a frequent term's count: up to 8 ms
        -> about 1 ms). In a one-user store it is left out; ids are still checked against
        the user before any text is read.
        """
        return None if self._sole_user(user_id) else user_id

    def _sole_user(self, user_id: str) -> bool:
        """True if every stored segment belongs to ``user_id`` (two index probes, ~30 µs)."""
        row = self._conn.fetch_one(
            # Two subqueries: a single SELECT of both min and max scans the whole index.
            "SELECT (SELECT min(user_id) FROM semantic_segments) AS lo, "
            "(SELECT max(user_id) FROM semantic_segments) AS hi"
        )
        return row is not None and row["lo"] == user_id and row["hi"] == user_id

    def _prune_terms(self, user_id: str, terms: list[str]) -> list[str]:
        """Drop terms in more than ``bm25_max_df`` of a large store's segments.

        The cost of a BM25 query grows with the number of matching rows, and a term in a
        quarter of all segments matches many while adding little (IDF <= ln 3). Measured at
        100k segments: p95 38 -> 24 ms with the top 10 unchanged for 150 of 150 queries.
        ``bm25_max_postings`` (off by default) then drops the most frequent remaining terms
        until the summed document counts fit, trading exactness for a latency bound.
        Below ``bm25_prune_min_segments`` nothing is dropped. The rarest term always stays.
        """
        max_df = self._config.bm25_max_df
        budget = self._config.bm25_max_postings
        if (max_df is None and budget is None) or len(terms) < 2:
            return terms
        total = self._cached("n", user_id, "", self._count_user_segments)
        if total < self._config.bm25_prune_min_segments:
            return terms
        dfs = {t: self._cached("df", user_id, t, self._count_fts_term) for t in terms}
        kept = sorted(terms, key=dfs.__getitem__)  # rarest first
        if max_df is not None:
            kept = [t for t in kept if dfs[t] <= max_df * total] or kept[:1]
        if budget is not None:
            while len(kept) > 1 and sum(dfs[t] for t in kept) > budget:
                kept.pop()
        return kept

    def _cached(
        self, kind: str, user_id: str, term: str, compute: Callable[[str, str], int]
    ) -> int:
        """Document counts change slowly; a few minutes' staleness only moves a threshold."""
        key = (kind, user_id, term)
        now = time.monotonic()
        with self._df_lock:
            hit = self._df_cache.get(key)
            if hit is not None and now - hit[1] < _DF_TTL_S:
                return hit[0]
        value = compute(user_id, term)
        with self._df_lock:
            if len(self._df_cache) >= _DF_CACHE_MAX:
                self._df_cache.clear()
            self._df_cache[key] = (value, now)
        return value

    def _count_user_segments(self, user_id: str, _term: str) -> int:
        return int(
            self._conn.fetch_value(
                "SELECT count(*) FROM semantic_segments WHERE user_id = ?", (user_id,)
            )
            or 0
        )

    def _count_fts_term(self, user_id: str, term: str) -> int:
        match = scoped_expression(match_expression([term]) or "", self._fts_user_scope(user_id))
        return int(
            self._conn.fetch_value(
                f"SELECT count(*) FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH ?", (match,)
            )
            or 0
        )

    def _submit(self, function: Callable[..., T], *args: Any) -> Future[T]:
        with self._executor_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="aico-embed")
            return self._executor.submit(function, *args)

    def _start_embedding(self, query: str) -> Callable[[], FloatArray]:
        """Begin embedding ``query``; call the result for the vector.

        An encoder with ``start_query`` (the ONNX one) runs the model on its own thread, so
        the caller's BM25 statement overlaps it: measured at 100k segments, hybrid search
        went from the sum of the two halves to about the slower one. Other encoders embed
        when the result is called.
        """
        start = getattr(self._encoder, "start_query", None)
        if callable(start):
            waiter: Callable[[], FloatArray] = start(query)
            return waiter
        return lambda: self._encoder.encode_query(query)

    def _dense_scores(
        self, user_id: str, vector: FloatArray, rowids: list[int]
    ) -> dict[int, float]:
        """Exact cosine of given segments with the query, from their libSQL vectors."""
        if not rowids:
            return {}
        rows = self._fetch_in(
            "SELECT id, vector FROM semantic_segments WHERE +user_id = ? "
            "AND vector_fingerprint = ? AND id IN ({})",
            rowids,
            prefix=(user_id, self._model.fingerprint),
        )
        dimension = self._model.dimension
        return {int(r["id"]): float(_from_blob(r["vector"], dimension) @ vector) for r in rows}

    def _dense(
        self,
        user_id: str,
        vector: FloatArray,
        where: str,
        params: tuple[Any, ...],
        n: int,
        filtered: bool,
    ) -> list[tuple[int, float]]:
        fingerprint = self._model.fingerprint
        index = self._index_if_ready()
        if index is None:
            # Every row the user's and no other filter: walk the table in rowid order
            # instead of via the user index (100k segments: 0.62 -> 0.42 s for the scan).
            if not filtered and self._sole_user(user_id):
                where = _by_key(where)
            return self._exact_dense(vector, where, params, n)
        fetch = n
        if filtered:
            matching = int(
                self._conn.fetch_value(
                    f"SELECT count(*) FROM semantic_segments AS s WHERE {where} "
                    "AND s.vector_fingerprint = ?",
                    (*params, fingerprint),
                )
                or 0
            )
            if matching == 0:
                return []
            if matching <= self._config.exact_search_limit:
                return self._exact_dense(vector, where, params, n)
            total = self._count_vectors(user_id)
            fetch = min(self._config.max_dense_fetch, math.ceil(n * total / matching))
            fetch = max(fetch, n)
        found = index.query(self._collection_name(user_id), self._rotation.rotate(vector), fetch)
        return self._recheck(found, where, params, n)

    def _recheck(
        self, found: list[tuple[str, float]], where: str, params: tuple[Any, ...], n: int
    ) -> list[tuple[int, float]]:
        """Chroma hits that libSQL confirms: right owner, filters, current vector."""
        if not found:
            return []
        fingerprint = self._model.fingerprint
        allowed = {
            str(r["chroma_id"]): int(r["id"])
            for r in self._fetch_in(
                f"SELECT s.id AS id, s.chroma_id AS chroma_id FROM semantic_segments AS s "
                f"WHERE {_by_key(where)} AND s.vector_fingerprint = ? AND s.chroma_id IN ({{}})",
                [cid for cid, _ in found],
                prefix=(*params, fingerprint),
            )
        }
        results = [(allowed[cid], score) for cid, score in found if cid in allowed]
        return results[:n]

    def _exact_dense(
        self, vector: FloatArray, where: str, params: tuple[Any, ...], n: int
    ) -> list[tuple[int, float]]:
        """Exact cosine over the libSQL vectors, streamed in chunks to bound memory."""
        dimension = self._model.dimension
        best_ids = np.zeros(0, dtype=np.int64)
        best_scores = np.zeros(0, dtype=np.float32)
        last_id = 0
        while True:
            rows = self._conn.fetch_all(
                f"SELECT s.id AS id, s.vector AS vector FROM semantic_segments AS s "
                f"WHERE {where} AND s.vector_fingerprint = ? AND s.id > ? "
                f"ORDER BY s.id LIMIT ?",
                (*params, self._model.fingerprint, last_id, _EXACT_CHUNK),
            )
            if not rows:
                break
            last_id = int(rows[-1]["id"])
            blob = b"".join(_check_blob(r["vector"], dimension) for r in rows)
            matrix = np.frombuffer(blob, dtype="<f4").reshape(len(rows), dimension)
            ids = np.fromiter((r["id"] for r in rows), dtype=np.int64, count=len(rows))
            best_ids = np.concatenate([best_ids, ids])
            best_scores = np.concatenate([best_scores, matrix @ vector])
            if len(best_ids) > n:
                keep = np.argpartition(-best_scores, n)[:n]
                best_ids, best_scores = best_ids[keep], best_scores[keep]
            if len(rows) < _EXACT_CHUNK:
                break
        order = np.lexsort((best_ids, -best_scores))[:n]
        return [(int(best_ids[i]), float(best_scores[i])) for i in order]

    def _count_vectors(self, user_id: str) -> int:
        return int(
            self._conn.fetch_value(
                "SELECT count(*) FROM semantic_segments WHERE user_id = ? "
                "AND vector_fingerprint = ?",
                (user_id, self._model.fingerprint),
            )
            or 0
        )

    # -- counting and reading -------------------------------------------------------------

    def count(self, user_id: str | None = None) -> int:
        """Stored segments, of one user or of all."""
        if user_id is None:
            return int(self._conn.fetch_value("SELECT count(*) FROM semantic_segments") or 0)
        return int(
            self._conn.fetch_value(
                "SELECT count(*) FROM semantic_segments WHERE user_id = ?", (user_id,)
            )
            or 0
        )

    # -- forgetting -----------------------------------------------------------------------

    def delete_segments(self, segment_ids: Sequence[str], *, user_id: str | None = None) -> int:
        """Delete segments (libSQL row, FTS row, Chroma vector); returns how many existed.

        With ``user_id``, only that user's segments among ``segment_ids`` are deleted.
        Chroma keeps deleted vectors in its files until ``rebuild()`` compacts them.
        """
        self._check_open()
        ids = [check_id(s, "segment_id") for s in segment_ids]
        if user_id is not None:
            check_id(user_id, "user_id")
        total = 0
        with self._conn.transaction():
            for chunk in _chunks(ids, _SQL_IN_CHUNK):
                marks = ",".join("?" * len(chunk))
                sql = f"DELETE FROM semantic_segments WHERE segment_id IN ({marks})"
                params: tuple[Any, ...] = tuple(chunk)
                if user_id is not None:
                    sql += " AND user_id = ?"
                    params = (*params, user_id)
                total += max(self._conn.execute(sql, params).rowcount, 0)
        self.process_outbox()
        return total

    def delete_user(self, user_id: str) -> int:
        """Delete every segment of ``user_id`` and drop the user's Chroma collection.

        The ``users`` row is not touched (that is the user service's job; deleting it
        cascades here through the same triggers). Returns the number of segments deleted.
        """
        self._check_open()
        check_id(user_id, "user_id")
        with self._conn.transaction():
            deleted = self._conn.execute(
                "DELETE FROM semantic_segments WHERE user_id = ?", (user_id,)
            ).rowcount
        self._index.drop(self._collection_name(user_id))
        self.process_outbox()
        return max(deleted, 0)

    def segments_of_messages(self, message_ids: Sequence[str]) -> list[str]:
        """Ids of the segments made from any of ``message_ids`` (read-only)."""
        ids = [str(check_id(m, "message_id")) for m in message_ids]
        rows = self._fetch_in(
            "SELECT DISTINCT s.segment_id FROM semantic_segment_messages m "
            "JOIN semantic_segments s ON s.id = m.segment_rowid WHERE m.message_id IN ({})",
            ids,
        )
        return [str(r["segment_id"]) for r in rows]

    def segments_of_conversation(self, user_id: str, conversation_id: str) -> list[str]:
        """Ids of ``user_id``'s segments of one conversation (read-only)."""
        rows = self._conn.fetch_all(
            "SELECT segment_id FROM semantic_segments WHERE user_id = ? AND conversation_id = ?",
            (check_id(user_id, "user_id"), check_id(conversation_id, "conversation_id")),
        )
        return [str(r["segment_id"]) for r in rows]

    def requeue_unindexed(self) -> int:
        """Queue index work for every segment with neither a vector nor queued work.

        Nothing should leave such a segment behind; this is the repair ``verify_index``'s
        ``unindexed`` count calls for. Returns how many were queued.
        """
        self._check_open()
        with self._conn.transaction():
            return max(
                self._conn.execute(
                    "INSERT INTO semantic_outbox (op, segment_rowid, chroma_id) "
                    "SELECT 'index', s.id, s.chroma_id FROM semantic_segments s "
                    "WHERE s.vector IS NULL AND NOT EXISTS (SELECT 1 FROM semantic_outbox o "
                    "WHERE o.op = 'index' AND o.segment_rowid = s.id)"
                ).rowcount,
                0,
            )

    def optimize_fts(self) -> None:
        """Merge the FTS5 index into one b-tree, so deleted terms leave its live pages.

        A contentless FTS5 table with ``secure-delete`` still keeps a forgotten segment's
        terms in older index segments until they are merged; ``optimize`` rewrites them
        (and ``secure_delete`` zeroes the freed pages).
        """
        self._check_open()
        with self._conn.transaction():
            self._conn.execute(f"INSERT INTO {FTS_TABLE}({FTS_TABLE}) VALUES ('optimize')")

    def purge_index(self) -> int:
        """Rebuild Chroma so its files keep no id or vector of a deleted segment.

        Chroma keeps deleted ids and vectors in ``chroma.sqlite3`` and the HNSW files until
        the collection is rebuilt; a forget must not leave them. Returns vectors written.
        """
        self._check_open()
        if self._mismatch is not None:
            # Vectors of the stored model cannot be re-indexed under another one: drop
            # every collection instead (the reembed will rebuild them).
            with self._outbox_lock:
                self._index.wipe_local()
            return 0
        return self.rebuild()

    # -- maintenance ----------------------------------------------------------------------

    def rebuild(self, *, progress: ProgressCallback | None = None) -> int:
        """Recreate the dense index from the vectors in libSQL, without re-embedding.

        Locally this deletes the whole Chroma directory first, which is also the only way to
        purge vectors Chroma kept after deletions; against a server the store's collections
        are dropped and recreated. Returns the number of vectors written.
        """
        self._check_open()
        self._require_model()
        with self._outbox_lock:
            before = int(self._conn.fetch_value("SELECT coalesce(max(id), 0) FROM semantic_outbox"))
            self._index.wipe_local()
            total = self._vector_count()
            written = 0
            for batch in self._iter_vector_batches():
                by_user: dict[str, list[dict[str, Any]]] = {}
                for row in batch:
                    by_user.setdefault(row["user_id"], []).append(row)
                for user_id, items in by_user.items():
                    self._upsert(user_id, items)
                written += len(batch)
                if progress is not None:
                    progress(ReembedProgress(done=written, total=total))
            # Deletions queued before the rebuild concern vectors that no longer exist.
            self._conn.execute(
                "DELETE FROM semantic_outbox WHERE op = 'delete' AND id <= ?", (before,)
            )
        self.process_outbox()
        return written

    def verify_index(self, *, sample_limit: int = 20) -> IndexReport:
        """Compare libSQL and Chroma: counts, and ids missing from or extra in Chroma."""
        self._check_open()
        fingerprint = self._model.fingerprint
        expected: dict[str, dict[str, str]] = {}
        for row in self._conn.fetch_all(
            "SELECT segment_id, user_id, chroma_id FROM semantic_segments "
            "WHERE vector_fingerprint = ?",
            (fingerprint,),
        ):
            name = self._collection_name(row["user_id"])
            expected.setdefault(name, {})[str(row["chroma_id"])] = row["segment_id"]
        missing: list[str] = []
        extra: list[str] = []
        missing_count = extra_count = chroma_count = 0
        names = set(self._index.collection_names()) | set(expected)
        for name in sorted(names):
            want = expected.get(name, {})
            have = set(self._index.iter_ids(name))
            chroma_count += len(have)
            lost = [want[cid] for cid in want if cid not in have]
            stray = sorted(have - want.keys())
            missing_count += len(lost)
            extra_count += len(stray)
            missing.extend(lost[: max(0, sample_limit - len(missing))])
            extra.extend(stray[: max(0, sample_limit - len(extra))])
        stats = (
            self._conn.fetch_one(
                "SELECT count(*) AS segments, count(vector) AS vectors, "
                "sum(vector_fingerprint IS NOT NULL AND vector_fingerprint != ?) AS stale "
                "FROM semantic_segments",
                (fingerprint,),
            )
            or {}
        )
        unindexed = self._conn.fetch_all(
            "SELECT segment_id FROM semantic_segments s WHERE s.vector IS NULL "
            "AND NOT EXISTS (SELECT 1 FROM semantic_outbox o "
            "WHERE o.op = 'index' AND o.segment_rowid = s.id)"
        )
        return IndexReport(
            unindexed_count=len(unindexed),
            unindexed=tuple(str(r["segment_id"]) for r in unindexed[:sample_limit]),
            segments=int(stats.get("segments") or 0),
            vectors=int(stats.get("vectors") or 0),
            chroma_count=chroma_count,
            missing_count=missing_count,
            extra_count=extra_count,
            pending_outbox=self.pending_outbox(),
            stale_vectors=int(stats.get("stale") or 0),
            missing_in_chroma=tuple(missing),
            extra_in_chroma=tuple(extra),
        )

    def reembed(
        self,
        encoder: Encoder | None = None,
        *,
        batch_size: int = 256,
        progress: ProgressCallback | None = None,
    ) -> int:
        """Re-embed every segment with ``encoder`` (default: the store's), then rebuild Chroma.

        Resumable: each batch commits its vectors with the new fingerprint, and a rerun skips
        segments that already carry it. The registry switches to the new model only when all
        segments are done; until then any open store refuses to search. Returns the number of
        segments embedded by this call.
        """
        self._check_open()
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidInput("batch_size must be a positive integer")
        target_encoder = encoder or self._encoder
        target = ModelInfo(
            target_encoder.name, int(target_encoder.dimension), target_encoder.fingerprint
        )
        with self._outbox_lock:
            self._conn.execute(
                "UPDATE semantic_model SET target_name = ?, target_dimension = ?, "
                "target_fingerprint = ?, updated_at = unixepoch('subsec') WHERE id = 1",
                (target.name, target.dimension, target.fingerprint),
            )
            total = self.count()
            done = int(
                self._conn.fetch_value(
                    "SELECT count(*) FROM semantic_segments WHERE vector_fingerprint = ?",
                    (target.fingerprint,),
                )
                or 0
            )
            if progress is not None:
                progress(ReembedProgress(done=done, total=total))
            embedded = 0
            last_id = 0
            while True:
                rows = self._conn.fetch_all(
                    "SELECT id, coalesce(embed_text, text) AS embed_text FROM semantic_segments "
                    "WHERE id > ? AND (vector_fingerprint IS NULL OR vector_fingerprint != ?) "
                    "ORDER BY id LIMIT ?",
                    (last_id, target.fingerprint, batch_size),
                )
                if not rows:
                    break
                last_id = int(rows[-1]["id"])
                vectors = np.asarray(
                    target_encoder.encode(
                        [r["embed_text"] for r in rows], batch_size=self._config.embed_batch_size
                    ),
                    dtype=np.float32,
                )
                if vectors.shape != (len(rows), target.dimension):
                    raise SemanticMemoryError("the encoder returned vectors of the wrong shape")
                self._store_vectors(rows, vectors, target.fingerprint)
                embedded += len(rows)
                done += len(rows)
                if progress is not None:
                    progress(ReembedProgress(done=min(done, total), total=total))
            with self._conn.transaction():
                self._write_model(target)
            self._model = target
            self._encoder = target_encoder
            self._rotation = VectorRotation(self._keys.rotation_key, target.dimension)
            self._mismatch = None
        self.rebuild()
        return embedded

    # -- internals ------------------------------------------------------------------------

    def _collection_name(self, user_id: str) -> str:
        return f"{self._config.collection_prefix}-{self._keys.user_tag(user_id)}"

    def _vector_count(self) -> int:
        return int(
            self._conn.fetch_value(
                "SELECT count(*) FROM semantic_segments WHERE vector_fingerprint = ?",
                (self._model.fingerprint,),
            )
            or 0
        )

    def _iter_vector_batches(self, size: int = 1000) -> Iterator[list[dict[str, Any]]]:
        last_id = 0
        while True:
            rows = self._conn.fetch_all(
                "SELECT id, chroma_id, user_id, start_ts, end_ts, vector FROM semantic_segments "
                "WHERE id > ? AND vector_fingerprint = ? ORDER BY id LIMIT ?",
                (last_id, self._model.fingerprint, size),
            )
            if not rows:
                return
            last_id = int(rows[-1]["id"])
            yield rows

    def _fetch_in(
        self, sql: str, values: Sequence[Any], *, prefix: tuple[Any, ...] = ()
    ) -> list[dict[str, Any]]:
        """Run ``sql`` (with one ``IN ({})`` slot) over ``values`` in chunks."""
        out: list[dict[str, Any]] = []
        for chunk in _chunks(list(values), _SQL_IN_CHUNK):
            marks = ",".join("?" * len(chunk))
            out.extend(self._conn.fetch_all(sql.format(marks), (*prefix, *chunk)))
        return out

    def _execute_in(self, sql: str, values: Sequence[Any], *, prefix: tuple[Any, ...] = ()) -> None:
        with self._conn.transaction():
            for chunk in _chunks(list(values), _SQL_IN_CHUNK):
                marks = ",".join("?" * len(chunk))
                self._conn.execute(sql.format(marks), (*prefix, *chunk))


def _open_index(location: ChromaLocation, prefix: str, adopted: bool) -> ChromaIndex:
    """Open Chroma and load the first collections' HNSW indexes (runs in the loader thread).

    ``adopted``: a new model on a store without vectors, whose old collections may have
    another dimension, so they are dropped instead.
    """
    index = ChromaIndex(location, prefix)
    try:
        names = index.collection_names()
        if adopted:
            for name in names:
                index.drop(name)
        else:
            for name in names[:_PRELOAD_COLLECTIONS]:
                index.preload(name)
    except BaseException:
        index.close()
        raise
    release_free_memory()
    return index


def _by_key(where: str) -> str:
    """``where`` for a lookup by id: unary ``+`` keeps SQLite off the user/conversation
    indexes. Without ``ANALYZE`` statistics it assumes ``user_id = ?`` matches ~10 rows and
    scans the whole user (measured: 17 ms instead of 0.1 ms for 50 ids at 10k segments)."""
    return where.replace("s.", "+s.")


def _filter_sql(
    user_id: str,
    conversation_id: str | None,
    role: str | None,
    start: float | None,
    end: float | None,
) -> tuple[str, tuple[Any, ...]]:
    """The WHERE clause (over alias ``s``) shared by both halves; the owner comes first."""
    clauses = ["s.user_id = ?"]
    params: list[Any] = [user_id]
    if conversation_id is not None:
        clauses.append("s.conversation_id = ?")
        params.append(conversation_id)
    if role is not None:
        clauses.append("instr(',' || s.roles || ',', ?) > 0")
        params.append(f",{role},")
    if start is not None:
        clauses.append("s.end_ts >= ?")
        params.append(start)
    if end is not None:
        clauses.append("s.start_ts <= ?")
        params.append(end)
    return " AND ".join(clauses), tuple(params)


def _chunks(values: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _to_blob(vector: FloatArray) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def _check_blob(blob: Any, dimension: int) -> bytes:
    if not isinstance(blob, bytes | bytearray | memoryview) or len(blob) != 4 * dimension:
        raise SemanticMemoryError(f"a stored vector is not {dimension} float32 values")
    return bytes(blob)


def _from_blob(blob: Any, dimension: int) -> FloatArray:
    return np.frombuffer(_check_blob(blob, dimension), dtype="<f4").astype(np.float32)
