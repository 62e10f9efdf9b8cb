"""Hybrid search end to end with the real MiniLM, against embedded Chroma and a Chroma server.

The server is a real ``chroma run`` on a free loopback port, started once for the module
and stopped at the end; every test here runs against both backends.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from semantic_support import (
    T0,
    corpus_segments,
    free_port,
    ranked_ids,
    scan_for,
    start_chroma_server,
    stop_process,
)

from aico.ai.embeddings import OnnxMiniLMEncoder
from aico.ai.memory.semantic import Segment, SemanticMemoryStore
from aico.data.libsql import EncryptedLibSQLConnection

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sem_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    path = tmp_path_factory.mktemp("chroma-server")
    port = free_port()
    process = start_chroma_server(path, port)
    try:
        yield f"http://127.0.0.1:{port}", path
    finally:
        stop_process(process)


@pytest.fixture(params=["embedded", "server"])
def sem_backend(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str | None, Path]:
    """(chroma_url or None, the directory Chroma writes to)."""
    if request.param == "embedded":
        return None, tmp_path / "chroma"
    url, path = request.getfixturevalue("sem_server")
    return url, path


@pytest.fixture
def sem_real(sem_open, sem_backend, onnx_encoder: OnnxMiniLMEncoder) -> SemanticMemoryStore:
    store = sem_open(onnx_encoder, chroma_url=sem_backend[0])
    store.add_segments(corpus_segments())
    return store


def test_dense_finds_paraphrases_that_bm25_misses(sem_real: SemanticMemoryStore) -> None:
    query = "what instrument do I play"
    assert "alice-002" not in ranked_ids(sem_real, "alice", query, k=3, mode="bm25")
    assert ranked_ids(sem_real, "alice", query, k=1, mode="dense") == ["alice-002"]
    assert ranked_ids(sem_real, "alice", query, k=1, mode="hybrid") == ["alice-002"]


def test_hybrid_keeps_exact_keyword_hits(sem_real: SemanticMemoryStore) -> None:
    assert ranked_ids(sem_real, "alice", "Biscuit", k=1, mode="hybrid") == ["alice-000"]
    assert ranked_ids(sem_real, "alice", "what is my sister's name", k=1) == ["alice-003"]
    assert ranked_ids(sem_real, "alice", "food I cannot eat", k=2)[0] == "alice-005"


def test_a_sensible_threshold_returns_the_relevant_results(sem_real: SemanticMemoryStore) -> None:
    hits = sem_real.search("alice", "tell me about my dog", k=10, min_score=0.6)
    assert hits and hits[0].segment_id == "alice-000"
    assert all(h.score >= 0.6 for h in hits)
    everything = sem_real.search("alice", "tell me about my dog", k=10)
    assert len(hits) < len(everything)  # the threshold trims the tail, not everything
    assert everything[0].score > 0.8 and everything[-1].score < 0.5


def test_user_isolation_with_the_real_model(sem_real: SemanticMemoryStore) -> None:
    for mode in ("hybrid", "bm25", "dense"):
        got = ranked_ids(sem_real, "alice", "my cat Pixel and the violin", k=50, mode=mode)
        assert all(g.startswith("alice-") for g in got)
        assert got or mode == "bm25"  # alice never wrote those words
        got = ranked_ids(sem_real, "bob", "golden retriever Biscuit", k=50, mode=mode)
        assert all(g.startswith("bob-") for g in got)


def test_filters_with_the_real_model(sem_real: SemanticMemoryStore) -> None:
    got = ranked_ids(sem_real, "alice", "running a race", k=5, conversation_id="c3")
    assert got[0] == "alice-007" and all(g in {f"alice-00{i}" for i in (6, 7, 8, 9)} for g in got)
    assert ranked_ids(sem_real, "alice", "dog", role="assistant", k=1) == ["alice-001"]


def test_rebuild_from_libsql_gives_identical_results(sem_real: SemanticMemoryStore) -> None:
    queries = ["pets", "music", "family events", "allergies", "sports", "cooking", "job stress"]
    before = {q: sem_real.search("alice", q, k=10) for q in queries}
    assert sem_real.rebuild() == 13
    assert sem_real.verify_index().ok
    for q in queries:
        after = sem_real.search("alice", q, k=10)
        assert [h.segment_id for h in after] == [h.segment_id for h in before[q]], q
        for a, b in zip(after, before[q], strict=True):
            assert a.score == pytest.approx(b.score, abs=1e-5)
            assert a.dense_score == pytest.approx(b.dense_score, abs=1e-5)


def test_no_plaintext_reaches_chroma_or_disk(
    sem_open,
    sem_backend,
    onnx_encoder: OnnxMiniLMEncoder,
    sem_core: EncryptedLibSQLConnection,
    tmp_path: Path,
) -> None:
    chroma_url, chroma_dir = sem_backend
    store = sem_open(onnx_encoder, chroma_url=chroma_url)
    marker = "Quokkaberry zxqv marker sentence about Ffenestri"
    store.add_segments(
        [
            Segment(
                "alice",
                marker,
                T0,
                conversation_id="conversation-Plumtree",
                session_id="session-Larkspur",
                roles=("user",),
                segment_id="segment-Marigold",
            )
        ]
    )
    assert ranked_ids(store, "alice", "Quokkaberry", mode="bm25") == ["segment-Marigold"]
    assert ranked_ids(store, "alice", marker, k=1, mode="dense") == ["segment-Marigold"]
    store.process_outbox()
    sem_core.checkpoint("PASSIVE")
    needles = [
        b"Quokkaberry",
        b"Ffenestri",
        "Quokkaberry".encode("utf-16-le"),
        b"Plumtree",
        b"Larkspur",
        b"Marigold",
        b"alice",
    ]
    # Chroma holds no documents and only opaque metadata.
    name = store._collection_name("alice")
    got = store._index._collection(name, create=False).get(include=["documents", "metadatas"])
    assert got["documents"] == [None]
    assert set(got["metadatas"][0]) == {"u", "t0", "t1"}
    assert got["metadatas"][0]["u"] != "alice"
    assert scan_for(chroma_dir, needles) == []
    # And nothing anywhere under the test's directory: the database file is encrypted.
    assert scan_for(tmp_path, needles) == []
