"""``StoreCore``: the state the parts of one semantic store share, and its lifecycle.

The store is split by job: ``writer`` (writes and the outbox), ``search`` (reads),
``models`` (the model registry) and ``maintenance`` (rebuild, verify, re-embed). Each part
holds this one object instead of inheriting from a common base, so what they share is
explicit and small: the libSQL connection, the keys and the vector rotation, the
configuration, the model the stored vectors belong to, the outbox lock, and the Chroma index
with its background loader. ``SemanticMemoryStore`` builds it, hands it to each part, and
closes it.

Cold start: chromadb's import and the HNSW load of a collection hold the GIL for ~0.6 s and
~0.7 s per 100k vectors, which stalls every other thread of the process. So the index is
loaded on a thread of its own, started only after the first search (answered exactly from
the libSQL vectors) or when something needs the index (a write, ``rebuild``,
``verify_index``, ``wait_ready``). See "Opening and cold start" in the docs. The index, its
health (ok, damaged, rebuilding, unavailable) and its background rebuild are kept by
``_holder.IndexHolder``; this class forwards to it.

Read-only (``read_only``): the connection is a ``ReadOnlyConnection`` and every write
refuses up front (``require_writable``). Embedded Chroma is never opened, since chromadb
writes to its files even to read (``_chroma``); without taking the single-process hold
(``_owner``) either, a read-only store may read while another process owns the index. Its
dense half is then always the exact scan over the libSQL vectors. A Chroma server is read as
usual, unless the stored model would be replaced (``adopted``), when its old collections
may not even have the right dimension.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from aico.ai.embeddings import Encoder
from aico.ai.memory.semantic import timeparse
from aico.ai.memory.semantic._chroma import ChromaIndex, ChromaLocation
from aico.ai.memory.semantic._conn import Connection
from aico.ai.memory.semantic._holder import IndexHolder
from aico.ai.memory.semantic._owner import IndexOwner
from aico.ai.memory.semantic._sql import SQL_IN_CHUNK
from aico.ai.memory.semantic.config import SemanticConfig
from aico.ai.memory.semantic.keys import SemanticKeys
from aico.ai.memory.semantic.models import ModelState
from aico.ai.memory.semantic.rotation import VectorRotation
from aico.ai.memory.semantic.types import IndexHealth, IndexState, ModelInfo
from aico.data.repositories._base import chunks
from aico.errors import ModelMismatch, ReadOnly, StoreClosed

__all__ = ["StoreCore"]


class StoreCore:
    """The connection, keys, configuration, model and Chroma index of one open store.

    ``model``, ``encoder`` and ``rotation`` change together, only through ``use_model``
    (a finished ``reembed``); everything else is fixed for the life of the store.
    ``fts_tokenizer`` is the tokenizer the FTS table was built with (what BM25 searches).
    """

    def __init__(
        self,
        conn: Connection,
        encoder: Encoder,
        keys: SemanticKeys,
        location: ChromaLocation,
        config: SemanticConfig,
        state: ModelState,
        *,
        fts_tokenizer: str | None,
        read_only: bool = False,
        full_fts: bool = False,
        sources: bool = True,
    ) -> None:
        self.conn = conn
        self.keys = keys
        self.config = config
        self.location = location
        self.read_only = read_only
        self.fts_tokenizer = fts_tokenizer
        #: True when ``semantic_fts_full`` exists (schema version 3).
        self.full_fts = full_fts
        #: True when segments have ``source``/``source_ref`` (schema version 4; older
        #: databases hold conversation segments only).
        self.sources = sources
        self.encoder = encoder
        self.model = state.model
        self.mismatch = state.mismatch
        self.model_registered = state.registered
        #: False when this store must not open Chroma (see the module docstring).
        self.index_usable = not read_only or (location.url is not None and not state.adopted)
        self.rotation = VectorRotation(keys.rotation_key, encoder.dimension)
        #: Held while outbox work is applied (and by rebuild/reembed around theirs).
        self.outbox_lock = threading.RLock()
        self._closed = False
        self._warmer: ThreadPoolExecutor | None = None
        self._time_warmed = False
        # An embedded index serves one process (``_owner``): refused up front, typed. A
        # read-only store never opens it, so it neither needs nor takes the hold.
        owner = None if location.path is None or read_only else IndexOwner(location.path)
        self._owner = owner
        self.holder = IndexHolder(
            location,
            config.collection_prefix,
            read_only=read_only,
            adopted=state.adopted,
            owner=owner,
            dimension=state.model.dimension,
            expected=self._expected_vectors,
            retry_s=config.index_retry_s,
        )

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    def check_open(self) -> None:
        if self._closed:
            raise StoreClosed("semantic memory store is closed")

    def require_writable(self, operation: str) -> None:
        """Refuse a write in a read-only store, before anything is done."""
        if self.read_only:
            raise ReadOnly(f"the semantic store is open read-only; {operation}() writes")

    def require_model(self) -> None:
        """Refuse work that needs vectors of the stored model while it mismatches."""
        if self.mismatch is not None:
            raise ModelMismatch(self.mismatch)

    def use_model(self, model: ModelInfo, encoder: Encoder) -> None:
        """Switch to a model whose vectors are now stored (the end of ``reembed``)."""
        self.model = model
        self.encoder = encoder
        self.rotation = VectorRotation(self.keys.rotation_key, model.dimension)
        self.mismatch = None

    def warm_up(self) -> None:
        """Embed one query on a background thread, so the first search does not load the model."""
        self._warmer = ThreadPoolExecutor(1, thread_name_prefix="aico-embed")
        self._warmer.submit(self.encoder.encode_query, "warm up")

    def warm_time_parser(self) -> None:
        """Load the time-expression parser on the warm-up thread, once (~0.4 s of imports
        and language data that hold the GIL). Called after the first search is answered,
        like the Chroma load: at open it measured +0.6-1.3 s on a cold start's first result.
        """
        if self._time_warmed or self.config.fusion.time_weight <= 0.0:
            return
        self._time_warmed = True
        warmer = self._warmer
        if warmer is not None:
            with contextlib.suppress(RuntimeError):  # closed meanwhile: nothing to warm
                warmer.submit(timeparse.warm_up)

    def close(self) -> None:
        """Stop the threads, close Chroma and release the index hold. Idempotent."""
        if self._closed:
            return
        self._closed = True
        warmer, self._warmer = self._warmer, None
        if warmer is not None:
            warmer.shutdown(wait=True)
        try:
            self.holder.close()
        finally:
            if self._owner is not None:
                self._owner.release()

    # -- the Chroma index ----------------------------------------------------------------

    @property
    def index_future(self) -> Future[ChromaIndex | None] | None:
        """The background load of Chroma, None until something started it."""
        return self.holder.future

    def start_loading(self) -> Future[ChromaIndex | None]:
        """The background open of Chroma, started on first call (idempotent)."""
        self.check_open()
        if not self.index_usable:
            raise ReadOnly("this read-only store does not open the Chroma index")
        return self.holder.start_loading()

    @property
    def index(self) -> ChromaIndex:
        """The Chroma index, loading it (and waiting) if needed; ``IndexDamaged`` (or, for
        a server, ``SemanticMemoryError``) when it does not serve."""
        self.check_open()
        if not self.index_usable:
            raise ReadOnly("this read-only store does not open the Chroma index")
        found = self.holder.for_writes()
        if found is None:
            raise self.holder.error()
        return found

    def index_if_ready(self) -> ChromaIndex | None:
        """The index if loaded and healthy; None before or while loading, while degraded,
        or never (when not usable). Never raises for the index's condition."""
        if not self.index_usable:
            return None
        return self.holder.serving()

    def index_for_writes(self) -> ChromaIndex | None:
        """The index, waiting for its load; None when it does not serve (degraded)."""
        self.check_open()
        return self.holder.for_writes() if self.index_usable else None

    def index_failed(self, index: ChromaIndex, exc: BaseException) -> None:
        """An operation on ``index`` failed: degrade the store (see ``IndexHolder``)."""
        self.holder.failed(index, exc)

    @property
    def index_state(self) -> IndexState:
        return self.holder.snapshot()[0]

    def health(self) -> IndexHealth:
        state, reason, detail, serving = self.holder.snapshot()
        pending = int(self.conn.fetch_value("SELECT count(*) FROM semantic_outbox") or 0)
        return IndexHealth(
            state=state, reason=reason, detail=detail, pending_outbox=pending, serving=serving
        )

    def maybe_heal(self) -> None:
        """Start the background rebuild if the index is damaged and can be rebuilt now."""
        if self.index_usable and self.mismatch is None and not self._closed:
            self.holder.maybe_heal()

    def set_healer(self, heal: Callable[[threading.Event], None]) -> None:
        self.holder.set_healer(heal)

    def wait_ready(self, timeout: float | None) -> bool:
        """Load the index now if needed and wait for the load; False on timeout.

        True at once when the index is not usable: searches are then always answered from
        libSQL, so there is nothing to wait for. A load that found the index damaged is
        finished too: ``health()`` says so.
        """
        self.check_open()
        if not self.index_usable:
            return True
        return self.holder.wait_loaded(timeout)

    def _expected_vectors(self) -> tuple[int, int] | None:
        """(vectors of the current model, queued outbox rows) in one snapshot; None while
        the model mismatches (the index then holds another model's vectors)."""
        if self.mismatch is not None:
            return None
        row = self.conn.fetch_one(
            "SELECT (SELECT count(*) FROM semantic_segments WHERE vector_fingerprint = ?) "
            "AS vectors, (SELECT count(*) FROM semantic_outbox) AS queued",
            (self.model.fingerprint,),
        )
        if row is None:
            return None
        return int(row["vectors"] or 0), int(row["queued"] or 0)

    def collection_name(self, user_id: str) -> str:
        """The Chroma collection of one user (a keyed hash: no user id reaches Chroma)."""
        return f"{self.config.collection_prefix}-{self.keys.user_tag(user_id)}"

    # -- statements over id lists --------------------------------------------------------

    def fetch_in(
        self, sql: str, values: Sequence[Any], *, prefix: tuple[Any, ...] = ()
    ) -> list[dict[str, Any]]:
        """Run ``sql`` (with one ``IN ({})`` slot) over ``values`` in chunks."""
        out: list[dict[str, Any]] = []
        for chunk in chunks(list(values), SQL_IN_CHUNK):
            marks = ",".join("?" * len(chunk))
            out.extend(self.conn.fetch_all(sql.format(marks), (*prefix, *chunk)))
        return out

    def execute_in(self, sql: str, values: Sequence[Any], *, prefix: tuple[Any, ...] = ()) -> None:
        """Run the write ``sql`` (one ``IN ({})`` slot) over ``values``, in one transaction."""
        with self.conn.transaction():
            for chunk in chunks(list(values), SQL_IN_CHUNK):
                marks = ",".join("?" * len(chunk))
                self.conn.execute(sql.format(marks), (*prefix, *chunk))
