"""``SemanticMemoryStore``: hybrid long-term memory over encrypted libSQL and Chroma.

libSQL (the core database) is the source of truth: segment text, metadata and vectors, the
FTS5 index that gives BM25, the outbox and the model registry. Chroma is a derived dense index
holding opaque ids, rotated vectors and a few numbers, rebuilt from libSQL on demand.

This class is the one public face. The work is done by one part per job, all sharing one
``StoreCore`` (``_core``: connection, keys, rotation, configuration, model, locks, the
Chroma loader):

- ``writer``: the write path, segments into libSQL and the outbox into Chroma;
- ``search``: the read path, hybrid BM25 + dense search and lookups by id;
- ``models``: the model registry and the FTS tokenizer, checked when a store opens;
- ``maintenance``: rebuild, verify, re-embed and purge of the dense index.

Read-only (``read_only=True``), for verbs that must provably change nothing (status,
search): opening writes nothing, and nothing is written afterwards. No model row is
registered (``model_registered`` says whether there is one for ``model``), the FTS table is
not rebuilt for another tokenizer (BM25 searches it as it was built; ``tokenizer_mismatch``),
no directory or file is created, the encoder is not warmed up and the outbox is not
processed. Embedded Chroma is not opened at all, because chromadb writes to its files even
to read: dense search is the exact scan over the libSQL vectors (same scores), and
``verify_index`` reports Chroma as not checked; the single-process hold on embedded Chroma
is not taken either, so a read-only store works while another process owns the index. A
Chroma server is only sent reads. Every method that writes raises ``ReadOnly`` up front.
The libSQL connection is used through a view that passes ``SELECT`` statements only.

Chroma's condition never fails the store (``_holder``): damaged or missing embedded files,
a failed open, or an operation that fails in use make the index ``damaged`` (a server that
fails: ``unavailable``); search is then BM25 plus the exact scan, writes commit to libSQL
with their vectors and leave the outbox queued, forget's purge discards the damaged
directory, and a background rebuild (or ``rebuild()``) heals it. ``index_health()`` says
which state the index is in.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import Future
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from aico.ai.embeddings import Encoder
from aico.ai.memory.semantic import models
from aico.ai.memory.semantic._chroma import ChromaLocation
from aico.ai.memory.semantic._conn import Connection, ReadOnlyConnection
from aico.ai.memory.semantic._core import StoreCore
from aico.ai.memory.semantic.config import SemanticConfig
from aico.ai.memory.semantic.keys import SemanticKeys
from aico.ai.memory.semantic.maintenance import Maintenance, ProgressCallback
from aico.ai.memory.semantic.postings import PostingsStats
from aico.ai.memory.semantic.rotation import VectorRotation
from aico.ai.memory.semantic.schema import FTS_FULL_TABLE
from aico.ai.memory.semantic.search import Searcher, SearchQuery
from aico.ai.memory.semantic.segmenting import SegmentationConfig
from aico.ai.memory.semantic.types import (
    IndexHealth,
    IndexReport,
    IndexState,
    Message,
    ModelInfo,
    OutboxResult,
    SearchHit,
    SearchMode,
    Segment,
    SegmentSource,
)
from aico.ai.memory.semantic.writer import Writer
from aico.data.libsql import EncryptedLibSQLConnection
from aico.errors import ModelMismatch
from aico.security import MasterKey

if TYPE_CHECKING:
    from aico.ai.memory.semantic._chroma import ChromaIndex

__all__ = ["SemanticMemoryStore"]


class SemanticMemoryStore:
    """Hybrid BM25 + dense memory of every user, in one encrypted database.

    ``conn`` is the core database (``SchemaRegistry.apply_core_schemas`` already run; the
    caller owns it). Give exactly one of ``chroma_path`` (embedded) or ``chroma_url`` (a
    Chroma server). Opening with an encoder other than the one the stored vectors were made
    with raises ``ModelMismatch``; pass ``check_model=False`` to open anyway for ``reembed``
    (search and indexing then refuse until it has run). ``read_only=True`` opens a store that
    writes nothing, ever (see the module docstring); its writes raise ``ReadOnly``.
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
        read_only: bool = False,
    ) -> None:
        config = config or SemanticConfig()
        location = ChromaLocation(
            path=None if chroma_path is None else Path(chroma_path), url=chroma_url
        )
        db: Connection = ReadOnlyConnection(conn) if read_only else conn
        models.require_schema(db)
        state = models.check_model(db, encoder, write=not read_only)
        if state.mismatch is not None and check_model:
            raise ModelMismatch(state.mismatch)
        if read_only:
            tokenizer = models.stored_tokenizer(db)
        else:
            models.apply_tokenizer(db, config.fts_tokenizer)
            tokenizer = config.fts_tokenizer
        core = StoreCore(
            db,
            encoder,
            keys,
            location,
            config,
            state,
            fts_tokenizer=tokenizer,
            read_only=read_only,
            full_fts=models.has_full_fts(db),
            sources=models.has_sources(db),
        )
        self._core = core
        self._writer = Writer(core)
        self._searcher = Searcher(core)
        self._maintenance = Maintenance(core, self._writer)
        if core.mismatch is None and not read_only:
            core.warm_up()

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
        read_only: bool = False,
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
            read_only=read_only,
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
        self._searcher.close()
        self._core.close()

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Load the Chroma index now if needed and wait for it; False on timeout.

        Why: searches work before it is loaded (exactly, from libSQL) but are slower, and
        the load holds the GIL for a while; a service can call this at a moment of its
        choosing (after start-up, say). A load that found the index damaged or a server
        unavailable has finished too (True): ``index_health()`` tells. A read-only store
        over embedded Chroma never loads it and returns True at once. It also builds the
        in-memory BM25 (``postings``) of the current state, which otherwise starts with
        the first search.
        """
        started = time.monotonic()
        ready = self._core.wait_ready(timeout)
        left = None if timeout is None else max(0.0, timeout - (time.monotonic() - started))
        return self._searcher.wait_ready(left) and ready

    def postings_stats(self) -> PostingsStats | None:
        """What the in-memory BM25 answered (and left to FTS5) and how many postings it
        holds; None when it is off (``bm25_in_memory``) or the schema predates it."""
        return self._searcher.postings_stats()

    @property
    def index_state(self) -> IndexState:
        """``ok``, ``damaged``, ``rebuilding`` or ``unavailable`` (see ``IndexHealth``)."""
        return self._core.index_state

    def index_health(self) -> IndexHealth:
        """The Chroma index's condition, for a health check: state, the failure's class
        name, a content-free detail, queued outbox rows, and whether Chroma serves now.

        Reads only. A read-only store over embedded Chroma, which never opens it, reports
        what its files prove: damage marked by a writer, or files changed since the last
        clean close.
        """
        return self._core.health()

    @property
    def closed(self) -> bool:
        return self._core.closed

    @property
    def config(self) -> SemanticConfig:
        return self._core.config

    @property
    def encoder(self) -> Encoder:
        return self._core.encoder

    @property
    def model(self) -> ModelInfo:
        """The model the stored vectors belong to (the registry row)."""
        return self._core.model

    @property
    def model_mismatch(self) -> bool:
        """True when the store was opened with ``check_model=False`` and needs ``reembed``."""
        return self._core.mismatch is not None

    @property
    def read_only(self) -> bool:
        """True when the store was opened with ``read_only=True`` and writes nothing."""
        return self._core.read_only

    @property
    def model_registered(self) -> bool:
        """False when the registry does not name ``model`` yet.

        Only in a read-only store: over a database with no model row, or one with no
        vectors that names another model (a writable open registers ``model`` in both cases).
        """
        return self._core.model_registered

    @property
    def fts_tokenizer(self) -> str | None:
        """The tokenizer the FTS5 index was built with, which BM25 searches with.

        A writable open rebuilds the index for ``config.fts_tokenizer``, so the two differ
        only in a read-only store (``tokenizer_mismatch``). None if it was never recorded.
        """
        return self._core.fts_tokenizer

    @property
    def tokenizer_mismatch(self) -> bool:
        """True when the FTS5 index was built with another tokenizer than the configured one
        (only in a read-only store: a writable open rebuilds it)."""
        return self._core.fts_tokenizer != self._core.config.fts_tokenizer

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
        try:
            return self._writer.add_segments(segments, index=index, skip_existing=skip_existing)
        finally:
            self._searcher.writes_happened()

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
        try:
            return self._writer.add_messages(
                user_id,
                messages,
                conversation_id=conversation_id,
                session_id=session_id,
                segmentation=segmentation,
                index=index,
            )
        finally:
            self._searcher.writes_happened()

    def analyze_pending(self, *, limit: int = 1000) -> int:
        """Language-analyze up to ``limit`` segments stored before the analysis existed
        (``maintenance`` runs it); returns how many. See ``Writer.analyze_pending``."""
        try:
            return self._writer.analyze_pending(limit=limit)
        finally:
            self._searcher.writes_happened()

    def process_outbox(self, *, limit: int | None = None) -> OutboxResult:
        """Apply pending outbox work to Chroma, oldest first; idempotent and crash-safe.

        While the model mismatches, only deletions are applied (embedding would mix models).
        A failure that is not Chroma's (the encoder, libSQL) is recorded on the outbox rows,
        which stay queued, and raised. Chroma's own condition never raises here: while the
        index is damaged, rebuilding or unavailable (or when it fails part way), the
        queued segments get their vectors in libSQL only, every row stays queued, and the
        result says so (``remaining``, ``embedded``, ``failed``); a damaged index starts
        its background rebuild.
        """
        return self._writer.process_outbox(limit=limit)

    def pending_outbox(self) -> int:
        """Outbox rows not applied yet."""
        return self._writer.pending_outbox()

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
        now: datetime | float | None = None,
        source: SegmentSource | None = None,
    ) -> list[SearchHit]:
        """The ``k`` best segments of ``user_id`` for ``query``, best first.

        ``start``/``end`` keep segments whose time range overlaps ``[start, end]``.
        ``min_score`` applies to the fused score, which is in ``[0, 1]`` in every mode (see
        ``aico.ai.memory.semantic.fusion`` for what it means per method). ``now`` is the
        query's time (an aware datetime, or unix seconds read in local time): a relative
        time expression in the query ("last weekend", "two weeks ago") is resolved against
        it into a window that boosts the segments it holds and filters nothing
        (``SearchHit.time_window``, ``time_boost``). Without ``now`` nothing is resolved.
        ``source`` keeps only segments from conversations or only from files (None: both).
        """
        self._core.check_open()
        q = SearchQuery.parse(
            user_id,
            query,
            k,
            mode=mode,
            conversation_id=conversation_id,
            role=role,
            start=start,
            end=end,
            min_score=min_score,
            now=now,
            source=source,
        )
        return self._searcher.search(q)

    # -- counting and reading -------------------------------------------------------------

    def count(self, user_id: str | None = None) -> int:
        """Stored segments, of one user or of all."""
        return self._searcher.count(user_id)

    def segments_of_messages(self, message_ids: Sequence[str]) -> list[str]:
        """Ids of the segments made from any of ``message_ids`` (read-only)."""
        return self._searcher.segments_of_messages(message_ids)

    def segments_of_source(self, user_id: str, source: SegmentSource, source_ref: str) -> list[str]:
        """Ids of ``user_id``'s segments from one source (``delete_segments`` takes them)."""
        return self._searcher.segments_of_source(user_id, source, source_ref)

    def segments_of_conversation(self, user_id: str, conversation_id: str) -> list[str]:
        """Ids of ``user_id``'s segments of one conversation (read-only)."""
        return self._searcher.segments_of_conversation(user_id, conversation_id)

    # -- forgetting -----------------------------------------------------------------------

    def delete_segments(self, segment_ids: Sequence[str], *, user_id: str | None = None) -> int:
        """Delete segments (libSQL row, FTS row, Chroma vector); returns how many existed.

        With ``user_id``, only that user's segments among ``segment_ids`` are deleted.
        Chroma keeps deleted vectors in its files until ``rebuild()`` compacts them.
        """
        return self._writer.delete_segments(segment_ids, user_id=user_id)

    def delete_user(self, user_id: str) -> int:
        """Delete every segment of ``user_id`` and drop the user's Chroma collection.

        The ``users`` row is not touched (that is the user service's job; deleting it
        cascades here through the same triggers). Returns the number of segments deleted.
        """
        return self._writer.delete_user(user_id)

    def requeue_unindexed(self) -> int:
        """Queue index work for every segment with neither a vector nor queued work.

        Nothing should leave such a segment behind; this is the repair ``verify_index``'s
        ``unindexed`` count calls for. Returns how many were queued.
        """
        return self._writer.requeue_unindexed()

    def optimize_fts(self) -> None:
        """Merge the FTS5 index into one b-tree, so deleted terms leave its live pages.

        A contentless FTS5 table with ``secure-delete`` still keeps a forgotten segment's
        terms in older index segments until they are merged; ``optimize`` rewrites them
        (and ``secure_delete`` zeroes the freed pages).
        """
        self._writer.optimize_fts()
        core = self._core
        if core.full_fts:  # the second BM25 table (schema version 3) holds the same words
            with core.conn.transaction():
                core.conn.execute(
                    f"INSERT INTO {FTS_FULL_TABLE}({FTS_FULL_TABLE}) VALUES ('optimize')"
                )

    def purge_index(self) -> int:
        """Rebuild Chroma so its files keep no id or vector of a deleted segment.

        Chroma keeps deleted ids and vectors in ``chroma.sqlite3`` and the HNSW files until
        the collection is rebuilt; a forget must not leave them. Returns vectors written.
        Locally, once the old directory is discarded the purge is done: a refill that fails
        after that leaves the index ``damaged`` (healed later) and does not raise. Against
        a server, any failure raises: the purge could not be confirmed.
        """
        return self._maintenance.purge_index()

    # -- maintenance ----------------------------------------------------------------------

    def rebuild(self, *, progress: ProgressCallback | None = None) -> int:
        """Recreate the dense index from the vectors in libSQL, without re-embedding.

        Locally this discards the whole Chroma directory first, without opening it (so it
        works on a damaged index), which is also the only way to purge vectors Chroma kept
        after deletions; against a server the store's collections are dropped and
        recreated. A background rebuild still running is stopped first. Afterwards the
        index is ``ok`` and serves dense search again. Returns the number of vectors
        written; a failure leaves the index ``damaged`` (or ``unavailable``) and raises.
        """
        return self._maintenance.rebuild(progress=progress)

    def verify_index(self, *, sample_limit: int = 20) -> IndexReport:
        """Compare libSQL and Chroma: counts, and ids missing from or extra in Chroma.

        Reads only. A read-only store over embedded Chroma does not open it: the report
        then has ``chroma_checked=False`` (and ``ok`` False), with the libSQL side complete.
        """
        return self._maintenance.verify_index(sample_limit=sample_limit)

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
        return self._maintenance.reembed(encoder, batch_size=batch_size, progress=progress)

    # -- for tests and audits in this repository (not public API) -------------------------

    @property
    def _config(self) -> SemanticConfig:
        return self._core.config

    @property
    def _keys(self) -> SemanticKeys:
        return self._core.keys

    @property
    def _rotation(self) -> VectorRotation:
        """The current rotation (it changes with the model at the end of ``reembed``)."""
        return self._core.rotation

    @property
    def _index(self) -> ChromaIndex:
        """The Chroma index, loading it (and waiting) if needed."""
        return self._core.index

    @property
    def _index_future(self) -> Future[ChromaIndex | None] | None:
        return self._core.index_future

    def _index_if_ready(self) -> ChromaIndex | None:
        return self._core.index_if_ready()

    def _collection_name(self, user_id: str) -> str:
        return self._core.collection_name(user_id)
