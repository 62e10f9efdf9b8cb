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
``verify_index``, ``wait_ready``). See "Opening and cold start" in the docs.

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
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from typing import Any

from aico.ai.embeddings import Encoder
from aico.ai.memory.semantic._chroma import ChromaIndex, ChromaLocation
from aico.ai.memory.semantic._conn import Connection
from aico.ai.memory.semantic._heap import release_free_memory
from aico.ai.memory.semantic._owner import IndexOwner
from aico.ai.memory.semantic._sql import SQL_IN_CHUNK
from aico.ai.memory.semantic.config import SemanticConfig
from aico.ai.memory.semantic.keys import SemanticKeys
from aico.ai.memory.semantic.models import ModelState
from aico.ai.memory.semantic.rotation import VectorRotation
from aico.ai.memory.semantic.types import ModelInfo
from aico.data.repositories._base import chunks
from aico.errors import ModelMismatch, ReadOnly, StoreClosed

__all__ = ["StoreCore"]

_PRELOAD_COLLECTIONS = 8  # one per user; most stores have one


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
    ) -> None:
        self.conn = conn
        self.keys = keys
        self.config = config
        self.location = location
        self.read_only = read_only
        self.fts_tokenizer = fts_tokenizer
        self.encoder = encoder
        self.model = state.model
        self.mismatch = state.mismatch
        self.model_registered = state.registered
        #: False when this store must not open Chroma (see the module docstring).
        self.index_usable = not read_only or (location.url is not None and not state.adopted)
        self.rotation = VectorRotation(keys.rotation_key, encoder.dimension)
        #: Held while outbox work is applied (and by rebuild/reembed around theirs).
        self.outbox_lock = threading.RLock()
        self._adopted = state.adopted
        self._closed = False
        self._loader_lock = threading.Lock()
        self._loader: ThreadPoolExecutor | None = None
        self._index_future: Future[ChromaIndex] | None = None
        self._warmer: ThreadPoolExecutor | None = None
        # An embedded index serves one process (``_owner``): refused up front, typed. A
        # read-only store never opens it, so it neither needs nor takes the hold.
        self._owner = None if location.path is None or read_only else IndexOwner(location.path)

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

    def close(self) -> None:
        """Stop the threads, close Chroma and release the index hold. Idempotent."""
        if self._closed:
            return
        self._closed = True
        warmer, self._warmer = self._warmer, None
        if warmer is not None:
            warmer.shutdown(wait=True)
        with self._loader_lock:
            loader, loading = self._loader, self._index_future
        if loader is not None:
            loader.shutdown(wait=True)
        if loading is not None:
            with contextlib.suppress(Exception):
                loading.result().close()
        if self._owner is not None:
            self._owner.release()

    # -- the Chroma index ----------------------------------------------------------------

    @property
    def index_future(self) -> Future[ChromaIndex] | None:
        """The background load of Chroma, None until something started it."""
        return self._index_future

    def start_loading(self) -> Future[ChromaIndex]:
        """The background open of Chroma, started on first call (idempotent)."""
        with self._loader_lock:
            if self._index_future is None:
                self.check_open()
                if not self.index_usable:
                    raise ReadOnly("this read-only store does not open the Chroma index")
                self._loader = ThreadPoolExecutor(1, thread_name_prefix="aico-chroma")
                self._index_future = self._loader.submit(
                    _open_index,
                    self.location,
                    self.config.collection_prefix,
                    self._adopted,
                    self.read_only,
                )
            return self._index_future

    @property
    def index(self) -> ChromaIndex:
        """The Chroma index, loading it (and waiting) if needed."""
        return self.start_loading().result()

    def index_if_ready(self) -> ChromaIndex | None:
        """The index if loaded, None before or while loading (or never, when not usable);
        a failed load raises."""
        loading = self._index_future
        if loading is None or not loading.done():
            return None
        return loading.result()

    def wait_ready(self, timeout: float | None) -> bool:
        """Load the index now if needed and wait for it; False on timeout.

        True at once when the index is not usable: searches are then always answered from
        libSQL, so there is nothing to wait for.
        """
        self.check_open()
        if not self.index_usable:
            return True
        loading = self.start_loading()
        futures_wait([loading], timeout=timeout)
        if not loading.done():
            return False
        loading.result()
        return True

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


def _open_index(
    location: ChromaLocation, prefix: str, adopted: bool, read_only: bool
) -> ChromaIndex:
    """Open Chroma and load the first collections' HNSW indexes (runs in the loader thread).

    ``adopted``: a new model on a store without vectors, whose old collections may have
    another dimension, so they are dropped instead (never in a read-only store, which does
    not open the index then).
    """
    index = ChromaIndex(location, prefix, read_only=read_only)
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
