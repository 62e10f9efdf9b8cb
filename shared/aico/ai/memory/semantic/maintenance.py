"""Whole-index operations of the semantic store: rebuild, verify, re-embed, purge.

Chroma is derived: ``rebuild`` recreates it from the vectors in libSQL without re-embedding,
``verify_index`` compares the two, ``reembed`` makes new vectors with another model
(resumably, batch by batch) and ``purge_index`` rebuilds so Chroma's files keep nothing of
a forgotten segment. These walk every segment of the store and run rarely (an admin verb, a
forget, a model change), unlike the per-message write path in ``writer`` that they reuse to
store vectors and fill Chroma; that is why they are kept apart. ``verify_index`` only reads;
the other three write, and refuse in a read-only store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from aico.ai.embeddings import Encoder
from aico.ai.memory.semantic._core import StoreCore
from aico.ai.memory.semantic.models import model_of, set_target, write_model
from aico.ai.memory.semantic.types import IndexReport, ReembedProgress
from aico.ai.memory.semantic.writer import Writer
from aico.errors import InvalidInput, SemanticMemoryError

__all__ = ["Maintenance", "ProgressCallback"]

ProgressCallback = Callable[[ReembedProgress], None]


class Maintenance:
    """Rebuild, verify, re-embed and purge the dense index of one store."""

    def __init__(self, core: StoreCore, writer: Writer) -> None:
        self._core = core
        self._writer = writer

    def purge_index(self) -> int:
        """See ``SemanticMemoryStore.purge_index``."""
        core = self._core
        core.check_open()
        core.require_writable("purge_index")
        if core.mismatch is not None:
            # Vectors of the stored model cannot be re-indexed under another one: drop
            # every collection instead (the reembed will rebuild them).
            with core.outbox_lock:
                core.index.wipe_local()
            return 0
        return self.rebuild()

    def rebuild(self, *, progress: ProgressCallback | None = None) -> int:
        """See ``SemanticMemoryStore.rebuild``."""
        core = self._core
        core.check_open()
        core.require_writable("rebuild")
        core.require_model()
        conn = core.conn
        with core.outbox_lock:
            before = int(conn.fetch_value("SELECT coalesce(max(id), 0) FROM semantic_outbox"))
            core.index.wipe_local()
            total = self._vector_count()
            written = 0
            for batch in self._iter_vector_batches():
                by_user: dict[str, list[dict[str, Any]]] = {}
                for row in batch:
                    by_user.setdefault(row["user_id"], []).append(row)
                for user_id, items in by_user.items():
                    self._writer.upsert(user_id, items)
                written += len(batch)
                if progress is not None:
                    progress(ReembedProgress(done=written, total=total))
            # Deletions queued before the rebuild concern vectors that no longer exist.
            conn.execute("DELETE FROM semantic_outbox WHERE op = 'delete' AND id <= ?", (before,))
        self._writer.process_outbox()
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
        # A read-only store that may not open Chroma compares nothing (see ``_core``).
        index = core.index if core.index_usable else None
        if index is not None:
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
