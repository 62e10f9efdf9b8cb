"""Open Chroma and load its HNSW indexes in the background, before the store is unlocked.

Why: chromadb's import (~0.6 s) and the load of a collection's HNSW index (~0.7 s per 100k
vectors here) hold the GIL for their whole duration, so any search that runs meanwhile
waits for them. Neither needs a key: the collection names are already keyed hashes and the
vectors are already rotated. Started before the passphrase is stretched (Argon2 and the
seal's HMAC release the GIL) and while the model loads, that work overlaps the rest of the
cold start instead of following it. Only ids, rotated vectors and hashes are touched, so
nothing of the user's is read before the key is checked.
"""

from __future__ import annotations

import contextlib
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from aico.ai.memory.semantic._chroma import ChromaIndex, ChromaLocation

__all__ = ["PRELOAD_COLLECTIONS", "IndexPrefetch", "open_and_preload"]

#: Collections whose HNSW index is loaded up front (one per user; most stores have one).
PRELOAD_COLLECTIONS = 8


def open_and_preload(location: ChromaLocation, prefix: str) -> ChromaIndex:
    """Open the index and load the first collections' HNSW indexes into memory."""
    index = ChromaIndex(location, prefix)
    try:
        for name in index.collection_names()[:PRELOAD_COLLECTIONS]:
            index.preload(name)
    except BaseException:
        index.close()
        raise
    return index


class IndexPrefetch:
    """A background ``open_and_preload`` that a ``SemanticMemoryStore`` can adopt.

    ``SemanticMemoryStore.open(..., prefetched=p)`` takes it over when it names the same
    location and collection prefix; otherwise (or if the caller gives up, e.g. on a wrong
    passphrase) ``close()`` releases it without waiting for the load.
    """

    def __init__(self, location: ChromaLocation, prefix: str) -> None:
        self.location = location
        self.prefix = prefix
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="aico-chroma")
        self.future: Future[ChromaIndex] = self._executor.submit(open_and_preload, location, prefix)
        self._taken = False

    @classmethod
    def start(
        cls,
        *,
        chroma_path: str | Path | None = None,
        chroma_url: str | None = None,
        prefix: str = "aico-sem",
    ) -> IndexPrefetch:
        location = ChromaLocation(
            path=None if chroma_path is None else Path(chroma_path), url=chroma_url
        )
        return cls(location, prefix)

    def matches(self, location: ChromaLocation, prefix: str) -> bool:
        return not self._taken and self.location == location and self.prefix == prefix

    def take(self) -> tuple[ThreadPoolExecutor, Future[ChromaIndex]]:
        """Hand the executor and the load over to the store (once)."""
        self._taken = True
        return self._executor, self.future

    def close(self, *, wait: bool = False) -> None:
        """Release an index that was never adopted: close it whenever its load finishes.

        ``wait=True`` returns only once it is closed: needed before another client opens
        the same directory, because chromadb shares one client system per path in a process
        and two opening or closing at once have raised inside chromadb.
        """
        if self._taken:
            return
        self._taken = True

        def close_index(done: Future[ChromaIndex]) -> None:
            with contextlib.suppress(BaseException):
                done.result().close()

        self.future.add_done_callback(close_index)
        self._executor.shutdown(wait=wait)
