"""The Chroma side of the semantic store, and its one error seam.

Chroma is a derived index: it receives opaque ids, rotated vectors and keyed-hash / numeric
metadata, never text, and can be rebuilt from libSQL at any time. Everything that talks to
``chromadb`` lives here so its exceptions are translated in one place (``_chroma_errors``)
and ``chromadb`` is imported only when a store actually opens its index.

Choices verified against chromadb 1.5.9:
- ``metadata={"hnsw:space": "cosine"}`` at creation is honoured (the collection's
  ``configuration`` reports ``hnsw.space == "cosine"`` and distances are ``1 - cos``); the
  1.x ``configuration=`` argument also works but reading it back with
  ``embedding_function=None`` emits a deprecation warning, so the metadata form is used.
- ``embedding_function=None`` always: the default function would try to download a model.
- Querying for more results than match the filter returns fewer, without warnings.
- An embedded client persists uninitialised heap memory in new HNSW files; ``harden_heap``
  (``_heap.py``) makes that memory zeros before the first ``PersistentClient`` opens.
- An embedded client writes even when it only reads: a ``PersistentClient`` that only lists,
  gets and queries still adds a row to the ``acquire_write`` table of ``chroma.sqlite3``
  (measured: the file changes on every such open). So a read-only index (``read_only``)
  refuses a local directory outright, and sends a server read requests only.
"""

from __future__ import annotations

import contextlib
import shutil
import threading
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import numpy.typing as npt

from aico.ai.memory.semantic._heap import harden_heap
from aico.errors import AicoError, ConfigError, ReadOnly, SemanticMemoryError, StoreClosed

__all__ = ["ChromaIndex", "ChromaLocation"]

Metadata = Mapping[str, str | int | float | bool]
_SPACE = "cosine"


@dataclass(frozen=True)
class ChromaLocation:
    """Where the dense index lives: a local directory or a server URL (exactly one)."""

    path: Path | None = None
    url: str | None = None

    def __post_init__(self) -> None:
        if (self.path is None) == (self.url is None):
            raise ConfigError("semantic memory needs exactly one of a Chroma path or URL")
        if self.url is not None:
            parts = urlsplit(self.url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConfigError("semantic.chroma_url must look like http://host:port")

    def describe(self) -> str:
        if self.path is not None:
            return f"chroma at {self.path}"
        parts = urlsplit(str(self.url))
        return f"chroma server {parts.hostname}:{parts.port or 8000}"


@contextlib.contextmanager
def _chroma_errors(operation: str, where: str) -> Iterator[None]:
    """Translate anything chromadb (or its HTTP stack) raises into ``SemanticMemoryError``.

    Only ids, vectors and hashes ever reach Chroma, but its messages are still not echoed:
    the exception type is enough to diagnose, and the original stays chained.
    """
    try:
        yield
    except AicoError:
        raise
    except BaseException as exc:
        # pyo3's PanicException (a Rust panic in the bindings) is a BaseException.
        if not isinstance(exc, Exception) and type(exc).__name__ != "PanicException":
            raise
        raise SemanticMemoryError(f"{where}: {operation} failed ({type(exc).__name__})") from exc


class ChromaIndex:
    """A Chroma client and the collections of one store (one collection per user).

    A collection per user, named by a keyed hash, is the isolation boundary of the dense
    half: a query can only ever see one user's vectors, with no ``where`` filter. (Measured
    on 100k vectors: an unfiltered query takes ~8 ms, the same query with a ``where`` on a
    user tag ~100-500 ms, as chromadb 1.5.9 resolves metadata filters through SQLite.)
    """

    def __init__(self, location: ChromaLocation, prefix: str, *, read_only: bool = False) -> None:
        if read_only and location.path is not None:
            raise ReadOnly("embedded Chroma writes to its files even to read; not opened")
        self._location = location
        self._prefix = prefix
        self._read_only = read_only
        self._where = location.describe()
        self._lock = threading.RLock()
        self._collections: dict[str, Any] = {}
        self._closed = False
        with _chroma_errors("open", self._where):
            try:
                self._client = self._connect()
            except BaseException:
                _forget_failed_system(location)
                raise

    # -- lifecycle ---------------------------------------------------------------------

    def _connect(self) -> Any:
        import chromadb
        from chromadb.config import Settings

        if self._location.path is not None:
            path = Path(self._location.path)
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
            harden_heap()
            settings = Settings(anonymized_telemetry=False, allow_reset=False)
            return chromadb.PersistentClient(path=str(path), settings=settings)
        parts = urlsplit(str(self._location.url))
        return chromadb.HttpClient(
            host=str(parts.hostname),
            port=parts.port or (443 if parts.scheme == "https" else 8000),
            ssl=parts.scheme == "https",
            settings=Settings(anonymized_telemetry=False),
        )

    @property
    def location(self) -> ChromaLocation:
        return self._location

    @property
    def prefix(self) -> str:
        return self._prefix

    def close(self) -> bool:
        """Close the client; True when chromadb let go of a local directory (no other client
        of this process still has it open), so its files stay as they are until reopened."""
        with self._lock:
            if self._closed:
                return False
            self._closed = True
            self._collections.clear()
            identifier = getattr(self._client, "_identifier", None)
            try:
                self._client.close()
            except BaseException as exc:
                if not isinstance(exc, Exception) and type(exc).__name__ != "PanicException":
                    raise
                return False
            return self._location.path is not None and not _still_shared(identifier)

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosed(f"{self._where} is closed")

    def _check_writable(self) -> None:
        self._check_open()
        if self._read_only:
            raise ReadOnly(f"{self._where} is open read-only")

    # -- collections -------------------------------------------------------------------

    def _collection(self, name: str, *, create: bool) -> Any | None:
        """The named collection (cached), or None if it does not exist and ``create`` is off."""
        self._check_open()
        found = self._collections.get(name)
        if found is not None:
            return found
        with self._lock, _chroma_errors("open collection", self._where):
            if create:
                found = self._client.get_or_create_collection(
                    name, metadata={"hnsw:space": _SPACE}, embedding_function=None
                )
            else:
                try:
                    found = self._client.get_collection(name, embedding_function=None)
                except Exception as exc:
                    if _is_not_found(exc):
                        return None
                    raise
            space = _space_of(found)
            if space != _SPACE:
                raise SemanticMemoryError(
                    f"{self._where}: a collection uses distance {space!r}, not cosine; "
                    "run a rebuild to recreate it"
                )
            self._collections[name] = found
            return found

    def collection_names(self) -> list[str]:
        """Names of this store's collections (those starting with the prefix)."""
        self._check_open()
        with _chroma_errors("list collections", self._where):
            listed = self._client.list_collections()
        names = [getattr(c, "name", c) for c in listed]
        return sorted(str(n) for n in names if str(n).startswith(self._prefix))

    def drop(self, name: str) -> None:
        """Delete one collection and its vectors (no error if it does not exist)."""
        self._check_writable()
        with self._lock, _chroma_errors("delete collection", self._where):
            self._collections.pop(name, None)
            try:
                self._client.delete_collection(name)
            except Exception as exc:
                if not _is_not_found(exc):
                    raise

    def wipe_local(self) -> bool:
        """Drop every collection of the store; locally, also delete the Chroma directory.

        Deleting the directory is the only real compaction: chromadb keeps dropped
        collections' rows in free SQLite pages and leaves their HNSW directories behind. It
        is skipped (returns False) against a server, or while another client in this process
        still has the directory open.
        """
        self._check_writable()
        for name in self.collection_names():
            self.drop(name)
        if self._location.path is None:
            return False
        with self._lock, _chroma_errors("wipe", self._where):
            self._collections.clear()
            identifier = getattr(self._client, "_identifier", None)
            self._client.close()
            try:
                if not _still_shared(identifier):
                    shutil.rmtree(self._location.path, ignore_errors=True)
                    return True
                return False
            finally:
                self._client = self._connect()

    # -- writes ------------------------------------------------------------------------

    def upsert(
        self,
        name: str,
        ids: Sequence[str],
        vectors: npt.NDArray[np.float32],
        metadatas: Sequence[Metadata],
    ) -> None:
        """Insert or replace in collection ``name`` (created if needed); safe to repeat."""
        if not ids:
            return
        self._check_writable()
        collection = self._collection(name, create=True)
        assert collection is not None  # create=True never returns None
        with self._lock, _chroma_errors("upsert", self._where):
            step = self._max_batch()
            for start in range(0, len(ids), step):
                end = start + step
                collection.upsert(
                    ids=list(ids[start:end]),
                    embeddings=np.asarray(vectors[start:end], dtype=np.float32),
                    metadatas=[dict(m) for m in metadatas[start:end]],
                )

    def delete(self, name: str, ids: Sequence[str]) -> None:
        """Delete by id; unknown ids and a missing collection are fine."""
        if not ids:
            return
        self._check_writable()
        collection = self._collection(name, create=False)
        if collection is None:
            return
        with self._lock, _chroma_errors("delete", self._where):
            step = self._max_batch()
            for start in range(0, len(ids), step):
                collection.delete(ids=list(ids[start : start + step]))

    # -- reads -------------------------------------------------------------------------

    def query(self, name: str, vector: npt.NDArray[np.float32], n: int) -> list[tuple[str, float]]:
        """The ``n`` nearest ids in ``name`` with cosine *similarity* (``1 - distance``)."""
        collection = self._collection(name, create=False)
        if collection is None:
            return []
        with _chroma_errors("query", self._where):
            result = collection.query(
                query_embeddings=np.asarray(vector, dtype=np.float32).reshape(1, -1),
                n_results=max(1, n),
                include=["distances"],
            )
        ids = result["ids"][0] if result["ids"] else []
        distances = result["distances"][0] if result["distances"] else []
        return [(str(i), 1.0 - float(d)) for i, d in zip(ids, distances, strict=True)]

    def preload(self, name: str) -> None:
        """Make Chroma load a collection's HNSW index now instead of on the first query."""
        collection = self._collection(name, create=False)
        if collection is None:
            return
        with _chroma_errors("preload", self._where):
            if int(collection.count()) == 0:
                return
            probe = np.zeros((1, _dimension_of(collection)), dtype=np.float32)
            probe[0, 0] = 1.0
            collection.query(query_embeddings=probe, n_results=1, include=[])

    def count(self, name: str) -> int:
        collection = self._collection(name, create=False)
        if collection is None:
            return 0
        with _chroma_errors("count", self._where):
            return int(collection.count())

    def iter_ids(self, name: str, page: int = 5000) -> Iterator[str]:
        """Every id in collection ``name``, a page at a time."""
        collection = self._collection(name, create=False)
        if collection is None:
            return
        offset = 0
        while True:
            with _chroma_errors("list", self._where):
                got = collection.get(include=[], limit=page, offset=offset)
            ids = got["ids"]
            yield from (str(i) for i in ids)
            if len(ids) < page:
                return
            offset += page

    def get_vectors(self, name: str, ids: Sequence[str]) -> dict[str, npt.NDArray[np.float32]]:
        """Stored (rotated) vectors by id; for tests and audits."""
        collection = self._collection(name, create=False)
        if collection is None:
            return {}
        with _chroma_errors("get", self._where):
            got = collection.get(ids=list(ids), include=["embeddings"])
        return {
            str(i): np.asarray(v, dtype=np.float32)
            for i, v in zip(got["ids"], got["embeddings"], strict=True)
        }

    def _max_batch(self) -> int:
        try:
            return max(1, min(int(self._client.get_max_batch_size()), 4096))
        except Exception:
            return 1000


def _dimension_of(collection: Any) -> int:
    """The vector dimension of a non-empty collection (from one stored vector)."""
    got = collection.get(limit=1, include=["embeddings"])
    return len(got["embeddings"][0])


def _still_shared(identifier: object) -> bool:
    """True if another client of this process still uses the same local Chroma system."""
    if identifier is None:
        return True
    try:
        from chromadb.api.shared_system_client import SharedSystemClient

        return identifier in SharedSystemClient._identifier_to_system
    except Exception:
        return True  # unknown: be safe, do not delete files under a live client


def _forget_failed_system(location: ChromaLocation) -> None:
    """Drop the half-started chromadb System a failed local open leaves cached.

    chromadb 1.5.9 caches one System per directory; when its start fails (a damaged
    ``chroma.sqlite3``) the entry stays with no client counting it, and every later client
    of that path reuses it and fails (``'RustBindingsAPI' object has no attribute
    'bindings'``), even after the directory was replaced. Dropping it lets a rebuild open
    the fresh directory.
    """
    if location.path is None:
        return
    try:
        from chromadb.api.shared_system_client import SharedSystemClient

        identifier = str(location.path)
        if identifier in SharedSystemClient._identifier_to_refcount:
            return  # another client of this process uses it
        system = SharedSystemClient._identifier_to_system.pop(identifier, None)
        if system is not None:
            with contextlib.suppress(Exception):
                system.stop()
    except Exception:
        return


def _is_not_found(exc: Exception) -> bool:
    name = type(exc).__name__
    return name == "NotFoundError" or "does not exist" in str(exc).lower()


def _space_of(collection: Any) -> str | None:
    """The distance space a collection really uses (configuration first, then metadata)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            config = collection.configuration
            hnsw = config.get("hnsw") if isinstance(config, dict) else None
            if isinstance(hnsw, dict) and hnsw.get("space"):
                return str(hnsw["space"])
        except Exception:
            pass
    metadata = collection.metadata or {}
    space = metadata.get("hnsw:space")
    return None if space is None else str(space)
