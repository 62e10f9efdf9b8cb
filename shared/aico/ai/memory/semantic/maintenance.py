"""Whole-index operations of the semantic store: rebuild, verify, re-embed, purge.

Chroma is derived: ``rebuild`` recreates it from the vectors in libSQL without re-embedding,
``verify_index`` compares the two, ``reembed`` makes new vectors with another model
(resumably, batch by batch) and ``purge_index`` rebuilds so Chroma's files keep nothing of
a forgotten segment. These walk every segment of the store and run rarely (an admin verb, a
forget, a model change), unlike the per-message write path in ``writer`` that they reuse to
store vectors and fill Chroma; that is why they are kept apart. ``verify_index`` only reads;
the other three write, and refuse in a read-only store.

A rebuild never opens the old index: locally its directory is discarded whole
(``_index_files.discard``) and a fresh one filled, so it works on an index too damaged for
chromadb to open, and it is also the purge that leaves no deleted id or vector in Chroma's
files. ``heal`` is the same rebuild run by the store's background thread on a damaged
embedded index (``_holder``); an explicit ``rebuild`` stops a running ``heal`` first.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from aico.ai.embeddings import Encoder
from aico.ai.memory.semantic._chroma import ChromaIndex
from aico.ai.memory.semantic._core import StoreCore
from aico.ai.memory.semantic.models import model_of, set_target, write_model
from aico.ai.memory.semantic.types import IndexReport, ReembedProgress
from aico.ai.memory.semantic.writer import Writer
from aico.errors import IndexDamaged, InvalidInput, SemanticMemoryError, StoreClosed

__all__ = ["Maintenance", "ProgressCallback"]

log = logging.getLogger("aico.ai.memory.semantic")

ProgressCallback = Callable[[ReembedProgress], None]
_LOCK_POLL_S = 0.1


class _Cancelled(Exception):
    """Internal: the background rebuild was stopped (``close``, or an explicit rebuild)."""


class Maintenance:
    """Rebuild, verify, re-embed and purge the dense index of one store."""

    def __init__(self, core: StoreCore, writer: Writer) -> None:
        self._core = core
        self._writer = writer
        core.set_healer(self.heal)

    def purge_index(self) -> int:
        """See ``SemanticMemoryStore.purge_index``."""
        core = self._core
        core.check_open()
        core.require_writable("purge_index")
        core.holder.cancel_heal()
        if core.mismatch is not None:
            # Vectors of the stored model cannot be re-indexed under another one: replace
            # the index by an empty one instead (the reembed will rebuild it).
            with core.outbox_lock:
                core.holder.begin_rebuild()
                index = core.holder.fresh_index()
                core.holder.install(index)
            return 0
        with core.outbox_lock:
            try:
                return self._rebuild_locked(None, None)
            except SemanticMemoryError as exc:
                if core.location.path is None or not core.holder.discarded:
                    raise
                # The old directory, and with it every forgotten vector, is gone; only the
                # refill failed. The purge is done: the store stays degraded and heals.
                log.warning("semantic purge: refilling the index failed (%s)", type(exc).__name__)
                return 0

    def rebuild(self, *, progress: ProgressCallback | None = None) -> int:
        """See ``SemanticMemoryStore.rebuild``."""
        core = self._core
        core.check_open()
        core.require_writable("rebuild")
        core.require_model()
        core.holder.cancel_heal()
        with core.outbox_lock:
            return self._rebuild_locked(progress, None)

    def heal(self, stop: threading.Event) -> None:
        """The background rebuild of a damaged index (``_holder`` runs it on its thread)."""
        core = self._core
        if core.mismatch is not None:
            return
        while not core.outbox_lock.acquire(timeout=_LOCK_POLL_S):
            if stop.is_set() or core.closed:
                return
        try:
            if stop.is_set() or core.closed or core.index_state != "damaged":
                return
            written = self._rebuild_locked(None, stop)
            log.info("semantic index rebuilt in the background: %d vectors", written)
        except _Cancelled:
            return
        finally:
            core.outbox_lock.release()

    def _rebuild_locked(
        self, progress: ProgressCallback | None, stop: threading.Event | None
    ) -> int:
        """Replace the index by one filled from the libSQL vectors (outbox lock held)."""
        core = self._core
        conn = core.conn
        holder = core.holder
        index: ChromaIndex | None = None
        holder.begin_rebuild()
        try:
            before = int(conn.fetch_value("SELECT coalesce(max(id), 0) FROM semantic_outbox"))
            index = holder.fresh_index()
            total = self._vector_count()
            written = 0
            for batch in self._iter_vector_batches():
                if stop is not None and (stop.is_set() or core.closed):
                    raise _Cancelled()
                by_user: dict[str, list[dict[str, Any]]] = {}
                for row in batch:
                    by_user.setdefault(row["user_id"], []).append(row)
                for user_id, items in by_user.items():
                    self._writer.upsert(user_id, items, index)
                written += len(batch)
                if progress is not None:
                    progress(ReembedProgress(done=written, total=total))
            # Deletions queued before the rebuild concern vectors that no longer exist.
            conn.execute("DELETE FROM semantic_outbox WHERE op = 'delete' AND id <= ?", (before,))
            if self._writer.drain(index).failed:
                raise IndexDamaged(
                    f"{core.location.describe()}: the rebuilt index failed while filling it",
                    path=core.location.path,
                )
        except _Cancelled as exc:
            holder.rebuild_failed(index, exc, quiet=True)
            raise
        except BaseException as exc:
            holder.rebuild_failed(index, exc)
            raise
        holder.install(index)
        return written

    def verify_index(self, *, sample_limit: int = 20) -> IndexReport:
        """See ``SemanticMemoryStore.verify_index``."""
        core = self._core
        core.check_open()
        conn = core.conn
        fingerprint = core.model.fingerprint
        expected: dict[str, dict[str, str]] = {}
        for row in conn.fetch_all(
            "SELECT segment_id, user_id, chroma_id FROM semantic_segments "
            "WHERE vector_fingerprint = ?",
            (fingerprint,),
        ):
            name = core.collection_name(row["user_id"])
            expected.setdefault(name, {})[str(row["chroma_id"])] = row["segment_id"]
        missing: list[str] = []
        extra: list[str] = []
        missing_count = extra_count = chroma_count = 0
        # A read-only store that may not open Chroma compares nothing (see ``_core``), and
        # neither does one whose index is degraded: the report says which.
        if core.index_usable:
            core.wait_ready(None)
        index = core.index_if_ready()
        if index is not None:
            try:
                for name in sorted(set(index.collection_names()) | set(expected)):
                    want = expected.get(name, {})
                    have = set(index.iter_ids(name))
                    chroma_count += len(have)
                    lost = [want[cid] for cid in want if cid not in have]
                    stray = sorted(have - want.keys())
                    missing_count += len(lost)
                    extra_count += len(stray)
                    missing.extend(lost[: max(0, sample_limit - len(missing))])
                    extra.extend(stray[: max(0, sample_limit - len(extra))])
            except (SemanticMemoryError, StoreClosed) as exc:
                if core.closed:
                    raise
                core.index_failed(index, exc)
                index = None
                missing, extra = [], []
                missing_count = extra_count = chroma_count = 0
        health = core.health()
        stats = (
            conn.fetch_one(
                "SELECT count(*) AS segments, count(vector) AS vectors, "
                "sum(vector_fingerprint IS NOT NULL AND vector_fingerprint != ?) AS stale "
                "FROM semantic_segments",
                (fingerprint,),
            )
            or {}
        )
        unindexed = conn.fetch_all(
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
            pending_outbox=self._writer.pending_outbox(),
            stale_vectors=int(stats.get("stale") or 0),
            missing_in_chroma=tuple(missing),
            extra_in_chroma=tuple(extra),
            chroma_checked=index is not None,
            index_state=health.state,
            index_reason=health.reason,
        )

    def reembed(
        self,
        encoder: Encoder | None = None,
        *,
        batch_size: int = 256,
        progress: ProgressCallback | None = None,
    ) -> int:
        """See ``SemanticMemoryStore.reembed``."""
        core = self._core
        core.check_open()
        core.require_writable("reembed")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidInput("batch_size must be a positive integer")
        target_encoder = encoder or core.encoder
        target = model_of(target_encoder)
        conn = core.conn
        with core.outbox_lock:
            set_target(conn, target)
            total = int(conn.fetch_value("SELECT count(*) FROM semantic_segments") or 0)
            done = int(
                conn.fetch_value(
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
                rows = conn.fetch_all(
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
                        [r["embed_text"] for r in rows], batch_size=core.config.embed_batch_size
                    ),
                    dtype=np.float32,
                )
                if vectors.shape != (len(rows), target.dimension):
                    raise SemanticMemoryError("the encoder returned vectors of the wrong shape")
                self._writer.store_vectors(rows, vectors, target.fingerprint)
                embedded += len(rows)
                done += len(rows)
                if progress is not None:
                    progress(ReembedProgress(done=min(done, total), total=total))
            with conn.transaction():
                write_model(conn, target)
            core.use_model(target, target_encoder)
        self.rebuild()
        return embedded

    def _vector_count(self) -> int:
        return int(
            self._core.conn.fetch_value(
                "SELECT count(*) FROM semantic_segments WHERE vector_fingerprint = ?",
                (self._core.model.fingerprint,),
            )
            or 0
        )

    def _iter_vector_batches(self, size: int = 1000) -> Iterator[list[dict[str, Any]]]:
        last_id = 0
        while True:
            rows = self._core.conn.fetch_all(
                "SELECT id, chroma_id, user_id, start_ts, end_ts, vector FROM semantic_segments "
                "WHERE id > ? AND vector_fingerprint = ? ORDER BY id LIMIT ?",
                (last_id, self._core.model.fingerprint, size),
            )
            if not rows:
                return
            last_id = int(rows[-1]["id"])
            yield rows
