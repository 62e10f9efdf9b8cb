"""The outbox repairs the dense index after a crash at any point of the write path."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from semantic_support import (
    CountingEncoder,
    corpus_segments,
    open_core,
    ranked_ids,
    run_child,
)

from aico.ai.embeddings import HashingEncoder
from aico.ai.memory.semantic import SemanticMemoryStore
from aico.errors import SemanticMemoryError
from aico.security import MasterKey


class BrokenEncoder(HashingEncoder):
    def encode(self, texts: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
        raise SemanticMemoryError("onnxruntime inference failed")


def _seed(tmp_path: Path, master: MasterKey) -> tuple[str, str]:
    """Segments committed with nothing indexed yet, as after a crash right after the insert."""
    db, chroma = tmp_path / "aico.db", tmp_path / "chroma"
    conn = open_core(db, master)
    store = SemanticMemoryStore.open(conn, master, HashingEncoder(), chroma_path=chroma)
    store.add_segments(corpus_segments(), index=False)
    store.close()
    conn.close()
    return str(db), str(chroma)


def _reopen(tmp_path: Path, master: MasterKey, encoder=None):
    conn = open_core(tmp_path / "aico.db", master)
    store = SemanticMemoryStore.open(
        conn, master, encoder or HashingEncoder(), chroma_path=tmp_path / "chroma"
    )
    return conn, store


@pytest.mark.slow
def test_crash_after_vectors_before_chroma_replays_without_reembedding(tmp_path: Path) -> None:
    master = MasterKey.generate()
    db, chroma = _seed(tmp_path, master)
    assert run_child("crash_after_vectors_child", db, chroma, master.expose_bytes().hex()) == 3
    counting = CountingEncoder(HashingEncoder())
    conn, store = _reopen(tmp_path, master, counting)
    try:
        assert conn.fetch_value("SELECT count(vector) FROM semantic_segments") == 13
        report = store.verify_index()
        assert report.pending_outbox == 13 and report.missing_count == 13
        result = store.process_outbox()
        assert result.indexed == 13 and result.remaining == 0
        assert counting.encoded == 0  # vectors came from libSQL, not the model
        assert store.verify_index().ok
        assert ranked_ids(store, "alice", "cello", mode="dense")[0] == "alice-002"
    finally:
        store.close()
        conn.close()


@pytest.mark.slow
def test_crash_inside_the_encoder_replays_the_rest(tmp_path: Path) -> None:
    master = MasterKey.generate()
    db, chroma = _seed(tmp_path, master)
    assert run_child("crash_in_encoder_child", db, chroma, master.expose_bytes().hex()) == 4
    counting = CountingEncoder(HashingEncoder())
    conn, store = _reopen(tmp_path, master, counting)
    try:
        report = store.verify_index()
        assert report.pending_outbox == 9 and report.chroma_count == 4  # first batch landed
        assert store.process_outbox().indexed == 9
        assert counting.encoded == 9
        final = store.verify_index()
        assert final.ok and final.chroma_count == 13 and final.pending_outbox == 0
    finally:
        store.close()
        conn.close()


def test_failure_is_recorded_and_the_work_stays_queued(sem_open, sem_core) -> None:
    sem_open().add_segments(corpus_segments(), index=False)
    broken = sem_open(BrokenEncoder())
    with pytest.raises(SemanticMemoryError):
        broken.process_outbox()
    rows = sem_core.fetch_all("SELECT DISTINCT attempts, last_error FROM semantic_outbox")
    assert rows == [{"attempts": 1, "last_error": "SemanticMemoryError"}]
    assert broken.pending_outbox() == 13
    healthy = sem_open()
    assert healthy.process_outbox().indexed == 13
    assert healthy.verify_index().ok


def test_limit_processes_part_of_the_outbox(sem_store: SemanticMemoryStore) -> None:
    sem_store.add_segments(corpus_segments(), index=False)
    first = sem_store.process_outbox(limit=5)
    assert first.indexed == 5 and first.remaining == 8
    assert sem_store.process_outbox().remaining == 0
