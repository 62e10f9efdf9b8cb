"""``IndexHolder``: the Chroma index of one store, its health, its loader and its healer.

Chroma is derived from libSQL, so nothing it does may take the store down. The holder
keeps one of four states, read by every part of the store:

- ``ok``: nothing is known to be wrong (the index may still be loading);
- ``damaged``: an embedded index failed its file checks (``_index_files``), its open, its
  count check, or an operation in use. Search is BM25 plus the exact scan over the libSQL
  vectors, writes commit to libSQL and leave their outbox rows, and a rebuild heals it;
- ``rebuilding``: a rebuild is replacing the index; served like ``damaged``;
- ``unavailable``: a Chroma *server* failed (down, unreachable, erring). Served the same
  way, but nothing is ever wiped on the server: the load is retried every
  ``index_retry_s`` seconds and the outbox catches up once it answers.

A failure flips the state once and logs one warning, naming the error class only. The
embedded case also writes the ``damaged`` mark (``_index_files``), so a crash before the
rebuild cannot make the damage look healed.

Loading (a thread of its own, see ``_core``): the files are checked before chromadb may
touch them (it can crash the process on damaged HNSW files), the manifest of the last
clean close is removed (chromadb changes its files even to read), the index opens and
preloads, and the number of vectors per store is compared with libSQL's: off by more
than the queued outbox rows means a lost or replaced directory.

Healing is a daemon thread, at most one at a time, started by the store when a search or
an outbox pass finds the index ``damaged`` (again at most every ``index_retry_s`` after a
failed attempt); ``close`` stops it between batches and waits for it. It runs the
function the store registers (``Maintenance.heal``: a rebuild from the libSQL vectors).
Files are only checked, marked, discarded or recorded while this store is the only one of
the process on the directory (``IndexOwner.sole``) and the store is writable.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait

from aico.ai.memory.semantic import _index_files
from aico.ai.memory.semantic._chroma import ChromaIndex, ChromaLocation
from aico.ai.memory.semantic._heap import release_free_memory
from aico.ai.memory.semantic._owner import IndexOwner
from aico.ai.memory.semantic.types import IndexState
from aico.errors import IndexDamaged, SemanticMemoryError, StoreClosed

__all__ = ["IndexHolder", "reason_of"]

log = logging.getLogger("aico.ai.memory.semantic")

Expected = Callable[[], tuple[int, int] | None]
Healer = Callable[[threading.Event], None]

_PRELOAD_COLLECTIONS = 8  # one per user; most stores have one


def reason_of(exc: BaseException) -> str:
    """The class name that says what failed: chromadb's own error when it was one (the
    plain ``SemanticMemoryError`` of ``_chroma_errors`` chains it)."""
    if type(exc) is SemanticMemoryError and exc.__cause__ is not None:
        return type(exc.__cause__).__name__
    return type(exc).__name__


class IndexHolder:
    """The Chroma index of one store and everything that keeps it healthy (see module)."""

    def __init__(
        self,
        location: ChromaLocation,
        prefix: str,
        *,
        read_only: bool,
        adopted: bool,
        owner: IndexOwner | None,
        dimension: int,
        expected: Expected,
        retry_s: float,
    ) -> None:
        self.location = location
        self._prefix = prefix
        self._read_only = read_only
        self._adopted = adopted
        self._owner = owner
        self._dimension = dimension
        self._expected = expected
        self._retry_s = retry_s
        self._lock = threading.Lock()
        self._state: IndexState = "ok"
        self._reason: str | None = None
        self._detail: str | None = None
        self._failed_at = 0.0
        self._index: ChromaIndex | None = None
        self._loader: ThreadPoolExecutor | None = None
        self._future: Future[ChromaIndex | None] | None = None
        self._healer: threading.Thread | None = None
        self._heal_stop = threading.Event()
        self._heal: Healer | None = None
        self._last_heal = float("-inf")
        self._inspected = False
        self._closed = False
        self._rebuilt_from: IndexState = "ok"
        #: The last rebuild discarded the old local directory (its files are gone).
        self.discarded = False

    # -- state ---------------------------------------------------------------------------

    def snapshot(self) -> tuple[IndexState, str | None, str | None, bool]:
        """(state, reason, detail, serving): serving is True when Chroma answers queries."""
        if self._read_only and self.location.path is not None and not self._inspected:
            self._inspect()
        with self._lock:
            serving = self._index is not None and self._state == "ok"
            return self._state, self._reason, self._detail, serving

    @property
    def state(self) -> IndexState:
        return self._state

    def _inspect(self) -> None:
        """Read-only over embedded Chroma: what the files prove without opening them."""
        self._inspected = True
        assert self.location.path is not None
        found = _index_files.inspect_closed(self.location.path)
        if found is not None:
            self._set_failed(found, write_mark=False)

    def _writes_files(self) -> bool:
        """True when this store may check, mark, discard or record the local directory."""
        return (
            self.location.path is not None
            and not self._read_only
            and self._owner is not None
            and self._owner.sole()
        )

    def _set_failed(self, exc: BaseException, *, write_mark: bool = True) -> None:
        state: IndexState = "unavailable" if self.location.url is not None else "damaged"
        reason = reason_of(exc)
        with self._lock:
            before = self._state
            self._state = state
            self._reason = reason
            self._detail = str(exc)
            self._failed_at = time.monotonic()
        if before == "ok":
            log.warning(
                "semantic index %s (%s): search uses BM25 and the exact scan until %s",
                state,
                reason,
                "it is rebuilt" if state == "damaged" else "the server answers",
            )
        if state == "damaged" and write_mark and self._writes_files():
            assert self.location.path is not None
            _index_files.mark_damaged(self.location.path, reason)

    def failed(self, index: ChromaIndex, exc: BaseException) -> None:
        """An operation on the serving index failed: degrade (once), and drop that client.

        A failure of a client that is no longer the serving one (replaced by a rebuild),
        or of one closed under its caller, says nothing about the index and is ignored.
        """
        if isinstance(exc, StoreClosed):
            return
        with self._lock:
            if index is not self._index:
                return
            self._index = None
        self._set_failed(exc)
        with contextlib.suppress(Exception):
            index.close()

    def error(self) -> SemanticMemoryError:
        """The error a caller that needs the index itself gets while it does not serve."""
        detail = self._detail or "the index is not loaded"
        if self.location.url is not None:
            return SemanticMemoryError(f"{self.location.describe()} is unavailable: {detail}")
        return IndexDamaged(
            f"the semantic index is {self._state}: {detail}", path=self.location.path
        )

    # -- loading -------------------------------------------------------------------------

    @property
    def future(self) -> Future[ChromaIndex | None] | None:
        return self._future

    def start_loading(self) -> Future[ChromaIndex | None]:
        """The background load, started on first call (idempotent; see ``retry_due``)."""
        with self._lock:
            if self._closed:
                raise StoreClosed("semantic memory store is closed")
            if self._future is None:
                if self._loader is None:
                    self._loader = ThreadPoolExecutor(1, thread_name_prefix="aico-chroma")
                self._future = self._loader.submit(self._load)
            return self._future

    def serving(self) -> ChromaIndex | None:
        """The index if loaded and healthy; None while loading, degraded, or never."""
        self._retry_if_due()
        with self._lock:
            return self._index if self._state == "ok" else None

    def wait_loaded(self, timeout: float | None = None) -> bool:
        """Start the load if needed and wait for it to finish (whatever it found)."""
        loading = self.start_loading()
        futures_wait([loading], timeout=timeout)
        return loading.done()

    def for_writes(self) -> ChromaIndex | None:
        """The serving index, waiting for the load first; None when it does not serve."""
        self._retry_if_due()
        if self._state != "ok":
            return None
        self.start_loading().result()
        return self.serving()

    def _retry_if_due(self) -> None:
        """A server found unavailable is tried again once ``retry_s`` has passed."""
        with self._lock:
            if (
                self._state == "unavailable"
                and not self._read_only_embedded()
                and self._future is not None
                and self._future.done()
                and time.monotonic() - self._failed_at >= self._retry_s
                and not self._closed
            ):
                self._failed_at = time.monotonic()
                self._future = None
        # (the next start_loading submits a fresh load)

    def _read_only_embedded(self) -> bool:
        return self._read_only and self.location.path is not None

    def _load(self) -> ChromaIndex | None:
        """Check, open and verify the index (the loader thread); None when it failed."""
        path = self.location.path
        try:
            if path is not None and self._writes_files():
                try:
                    _index_files.check_files(path, self._dimension)
                    _index_files.remove_manifest(path)
                except OSError as exc:
                    raise IndexDamaged(
                        f"chroma at {path}: its files could not be read ({type(exc).__name__})",
                        path=path,
                    ) from exc
            index = _open_index(self.location, self._prefix, self._adopted, self._read_only)
            try:
                self._check_count(index)
            except BaseException:
                index.close()
                raise
        except SemanticMemoryError as exc:
            self._set_failed(exc)
            return None
        with self._lock:
            if self._closed:
                index.close()
                return None
            self._index = index
            self._state, self._reason, self._detail = "ok", None, None
        return index

    def _check_count(self, index: ChromaIndex) -> None:
        """Embedded only: Chroma's vectors against libSQL's, within the queued work."""
        if not self._writes_files() or self._adopted:
            return
        expected = self._expected()
        if expected is None:
            return
        vectors, queued = expected
        held = sum(index.count(name) for name in index.collection_names())
        if abs(held - vectors) > queued:
            raise IndexDamaged(
                f"chroma at {self.location.path}: holds {held} vectors where libSQL has "
                f"{vectors} ({queued} queued)",
                path=self.location.path,
            )

    # -- healing -------------------------------------------------------------------------

    def set_healer(self, heal: Healer) -> None:
        self._heal = heal

    def maybe_heal(self) -> None:
        """Start the background rebuild of a damaged embedded index, if none runs or ran
        in the last ``retry_s`` seconds."""
        if self._state != "damaged" or self._heal is None or not self._writes_files():
            return
        with self._lock:
            if self._closed or (self._healer is not None and self._healer.is_alive()):
                return
            now = time.monotonic()
            if now - self._last_heal < self._retry_s:
                return
            self._last_heal = now
            stop = threading.Event()
            self._heal_stop = stop
            thread = threading.Thread(
                target=self._run_heal, args=(stop,), name="aico-chroma-heal", daemon=True
            )
            self._healer = thread
        thread.start()

    def _run_heal(self, stop: threading.Event) -> None:
        loading = self._future
        if loading is not None:
            futures_wait([loading])
        if stop.is_set() or self._state != "damaged" or self._heal is None:
            return
        try:
            self._heal(stop)
        except Exception as exc:  # reported by the healer; a thread has no caller
            log.warning("semantic index: the background rebuild failed (%s)", reason_of(exc))

    def cancel_heal(self) -> None:
        """Stop a running background rebuild and wait for it (not from that thread)."""
        with self._lock:
            thread, stop = self._healer, self._heal_stop
        if thread is None or thread is threading.current_thread():
            return
        stop.set()
        thread.join()

    # -- rebuilding (called by maintenance, under the store's outbox lock) ----------------

    def begin_rebuild(self) -> None:
        """The index is about to be replaced: serve from libSQL, and mark the directory, so
        a crash part way makes the next open rebuild again."""
        with self._lock:
            if self._state != "rebuilding":
                self._rebuilt_from = self._state
            self._state = "rebuilding"
            self.discarded = False
            if self._future is None:  # no load may open the directory during the rebuild
                self._future = Future()
                self._future.set_result(None)
        if self._writes_files():
            assert self.location.path is not None
            _index_files.mark_damaged(self.location.path, "rebuild")

    def fresh_index(self) -> ChromaIndex:
        """An empty index in place of the old one, which is never opened to do so.

        Locally the old directory is discarded (``_index_files.discard``) and a new one
        created; while another store of this process shares it, its collections are
        dropped through a client instead. Against a server the store's collections are
        dropped. The new index is not serving until ``install``.
        """
        loading = self._future
        if loading is not None:
            futures_wait([loading])
        with self._lock:
            old, self._index = self._index, None
        released = old.close() if old is not None else True
        if self.location.path is not None:
            if self._writes_files() and released:
                _index_files.discard(self.location.path)
                self.discarded = True
                return ChromaIndex(self.location, self._prefix)
            index = ChromaIndex(self.location, self._prefix)
            index.wipe_local()
            return index
        index = ChromaIndex(self.location, self._prefix)
        try:
            for name in index.collection_names():
                index.drop(name)
        except BaseException:
            index.close()
            raise
        return index

    def install(self, index: ChromaIndex) -> None:
        """The rebuilt index serves: the state is ``ok`` again and the mark removed."""
        with self._lock:
            if self._closed:
                index.close()
                return
            before = self._rebuilt_from
            self._index = index
            self._state, self._reason, self._detail = "ok", None, None
        if self._writes_files():
            assert self.location.path is not None
            _index_files.remove_manifest(self.location.path)
        if before != "ok":
            log.info("semantic index rebuilt; dense search uses Chroma again")

    def rebuild_failed(
        self, index: ChromaIndex | None, exc: BaseException, *, quiet: bool = False
    ) -> None:
        """A rebuild stopped part way: the index stays degraded (``quiet``: cancelled, so
        not worth a warning)."""
        if index is not None:
            with contextlib.suppress(Exception):
                index.close()
        with self._lock:
            self._index = None
            if not quiet:
                self._state = "ok"  # so that _set_failed logs the change once
        self._set_failed(exc)

    # -- lifecycle -----------------------------------------------------------------------

    def close(self) -> None:
        """Stop the healer and the loader, close Chroma, record a clean close. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread, stop = self._healer, self._heal_stop
        stop.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        if self._loader is not None:
            self._loader.shutdown(wait=True)
        with self._lock:
            index, self._index = self._index, None
            healthy = self._state == "ok"
        if index is None:
            return
        released = index.close()
        if healthy and released and self._writes_files():
            assert self.location.path is not None
            with contextlib.suppress(OSError):
                _index_files.record_clean_close(self.location.path)


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
