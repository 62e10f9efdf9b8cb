"""Model registry: refusing another encoder, and a resumable ``reembed``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from semantic_support import T0, corpus_segments, ranked_ids

from aico.ai.embeddings import HashingEncoder
from aico.ai.memory.semantic import ReembedProgress, Segment, SemanticMemoryStore
from aico.data.libsql import EncryptedLibSQLConnection
from aico.errors import ModelMismatch


class FailingAfter(HashingEncoder):
    """A real encoder that fails on its n-th encode call (an interrupted migration)."""

    def __init__(self, dimension: int, *, seed: int, fail_on: int) -> None:
        super().__init__(dimension, seed=seed)
        self.calls = 0
        self.fail_on = fail_on

    def encode(self, texts: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
        self.calls += 1
        if self.calls == self.fail_on:
            raise KeyboardInterrupt  # what Ctrl-C in `aico semantic reembed` looks like
        return super().encode(texts, batch_size=batch_size)


def test_first_open_registers_the_model(sem_store: SemanticMemoryStore, sem_core) -> None:
    row = sem_core.fetch_one("SELECT name, dimension, fingerprint FROM semantic_model")
    encoder = HashingEncoder()
    assert row == {
        "name": encoder.name,
        "dimension": encoder.dimension,
        "fingerprint": encoder.fingerprint,
    }
    assert sem_store.model.fingerprint == encoder.fingerprint and not sem_store.model_mismatch


def test_other_encoder_is_refused_with_a_clear_message(sem_open) -> None:
    sem_open().add_segments(corpus_segments())
    with pytest.raises(ModelMismatch) as info:
        sem_open(HashingEncoder(256, seed=1))
    message = str(info.value)
    assert "aico semantic reembed" in message
    assert "aico/hashing-384" in message and "aico/hashing-256" in message


def test_an_empty_store_adopts_a_new_model(sem_open, sem_core) -> None:
    sem_open().close()
    store = sem_open(HashingEncoder(128, seed=2))
    assert store.model.dimension == 128 and not store.model_mismatch
    store.add_segments(corpus_segments())
    assert ranked_ids(store, "alice", "cello", mode="dense")[0] == "alice-002"


def test_mismatched_store_refuses_search_and_indexing(sem_open) -> None:
    sem_open().add_segments(corpus_segments())
    store = sem_open(HashingEncoder(256, seed=1), check_model=False)
    assert store.model_mismatch
    with pytest.raises(ModelMismatch):
        store.search("alice", "dog")
    with pytest.raises(ModelMismatch):
        store.rebuild()
    # Writes are kept for later: rows and FTS now, embedding after reembed.
    store.add_segments([Segment("alice", "a brand new memory about kites", T0)])
    assert store.pending_outbox() == 1


def test_reembed_migrates_and_search_works(sem_open, sem_core: EncryptedLibSQLConnection) -> None:
    sem_open().add_segments(corpus_segments())
    new = HashingEncoder(256, seed=1)
    store = sem_open(new, check_model=False)
    seen: list[ReembedProgress] = []
    assert store.reembed(new, batch_size=5, progress=seen.append) == 13
    assert seen[0] == ReembedProgress(0, 13) and seen[-1] == ReembedProgress(13, 13)
    assert not store.model_mismatch and store.model.dimension == 256
    assert ranked_ids(store, "alice", "cello", mode="dense")[0] == "alice-002"
    report = store.verify_index()
    assert report.ok and report.chroma_count == 13 and report.stale_vectors == 0
    lengths = sem_core.fetch_all("SELECT DISTINCT length(vector) AS n FROM semantic_segments")
    assert lengths == [{"n": 256 * 4}]
    store.close()
    assert sem_open(new).model.fingerprint == new.fingerprint  # reopens without complaint
    with pytest.raises(ModelMismatch):
        sem_open(HashingEncoder())


def test_reembed_resumes_after_an_interruption(
    sem_open, sem_core: EncryptedLibSQLConnection
) -> None:
    sem_open().add_segments(corpus_segments())
    new_fingerprint = HashingEncoder(256, seed=1).fingerprint
    store = sem_open(HashingEncoder(256, seed=1), check_model=False)
    interrupted = FailingAfter(256, seed=1, fail_on=2)
    with pytest.raises(KeyboardInterrupt):
        store.reembed(interrupted, batch_size=4)
    done = sem_core.fetch_value(
        "SELECT count(*) FROM semantic_segments WHERE vector_fingerprint = ?", (new_fingerprint,)
    )
    assert done == 4  # the first batch committed
    store.close()
    # Half-migrated: every encoder is refused until the migration completes.
    with pytest.raises(ModelMismatch, match="unfinished"):
        sem_open(HashingEncoder(256, seed=1))
    with pytest.raises(ModelMismatch):
        sem_open(HashingEncoder())
    resumed = sem_open(HashingEncoder(256, seed=1), check_model=False)
    counting = FailingAfter(256, seed=1, fail_on=-1)
    assert resumed.reembed(counting, batch_size=4) == 9  # only what was left
    assert ranked_ids(resumed, "alice", "wedding Lisbon", mode="dense")[0] in {
        "alice-003",
        "alice-004",
    }
    assert resumed.verify_index().ok
