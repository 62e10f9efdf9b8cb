"""SemanticMemoryStore with the fast fake encoder: write path, filters, isolation, forget."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from semantic_support import HOUR, T0, corpus_segments, ranked_ids, scan_for

from aico.ai.embeddings import HashingEncoder
from aico.ai.memory.semantic import (
    FusionConfig,
    Message,
    Segment,
    SemanticConfig,
    SemanticKeys,
    SemanticMemoryStore,
)
from aico.ai.memory.semantic.search import SearchQuery
from aico.data.libsql import EncryptedLibSQLConnection
from aico.errors import ConstraintViolation, InvalidInput, StoreClosed
from aico.security import MasterKey


def test_add_and_search_every_mode(sem_store: SemanticMemoryStore) -> None:
    ids = sem_store.add_segments(corpus_segments())
    assert len(ids) == 13 and ids[0] == "alice-000"
    for mode in ("hybrid", "bm25", "dense"):
        hits = sem_store.search("alice", "golden retriever swimming", k=3, mode=mode)  # type: ignore[arg-type]
        assert hits[0].segment_id == "alice-000", mode
        assert hits[0].text.startswith("My dog Biscuit")
        assert 0.0 <= hits[-1].score <= hits[0].score <= 1.0
    hit = sem_store.search("alice", "golden retriever swimming", k=1)[0]
    assert hit.bm25_rank == 1 and hit.dense_rank == 1
    assert hit.bm25_score is not None and hit.bm25_score > 0
    assert hit.dense_score is not None and -1.0 <= hit.dense_score <= 1.0
    assert hit.conversation_id == "c1" and hit.roles == ("user",)
    assert hit.start_ts == hit.end_ts == T0
    assert "Biscuit" not in repr(hit)  # reprs never carry user content


def test_component_ranks_and_fill_scores(sem_open) -> None:
    config = SemanticConfig(candidates=1, overfetch=1, fusion=FusionConfig(bm25_weight=1.0))
    store = sem_open(config=config)
    filler = " ".join(f"word{i}" for i in range(60))
    store.add_segments(
        [
            Segment("alice", "the the the of of and and", T0, segment_id="dense-side"),
            Segment("alice", "the of and the of", T0, segment_id="dense-too"),
            Segment("alice", f"zebra {filler}", T0, segment_id="keyword-side"),
        ]
    )
    hits = {h.segment_id: h for h in store.search("alice", "the the of and zebra", k=2)}
    keyword, dense = hits["keyword-side"], hits["dense-side"]
    assert keyword.bm25_rank == 1 and keyword.dense_rank is None
    assert keyword.dense_score is not None  # filled in from its libSQL vector
    assert dense.dense_rank == 1 and dense.bm25_rank is None
    assert dense.bm25_score == 0.0  # no BM25 match: scored as the zero it is


def test_k_and_min_score(sem_store: SemanticMemoryStore) -> None:
    sem_store.add_segments(corpus_segments())
    assert len(sem_store.search("alice", "dog cello wedding risotto", k=2)) == 2
    everything = sem_store.search("alice", "dog cello wedding risotto", k=20)
    assert len(everything) == 10  # all of alice's segments, none of bob's
    strict = sem_store.search("alice", "dog cello wedding risotto", k=20, min_score=0.5)
    assert 0 < len(strict) < len(everything)
    assert all(h.score >= 0.5 for h in strict)
    assert sem_store.search("alice", "dog", min_score=1.0) == [] or all(
        h.score == 1.0 for h in sem_store.search("alice", "dog", min_score=1.0)
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"k": 0},
        {"k": 1001},
        {"k": True},
        {"mode": "sparse"},
        {"min_score": 1.5},
        {"min_score": -0.1},
        {"role": "User!"},
        {"start": float("nan")},
        {"conversation_id": ""},
    ],
)
def test_search_argument_validation(sem_store: SemanticMemoryStore, kwargs: dict) -> None:
    with pytest.raises(InvalidInput):
        sem_store.search("alice", "dog", **kwargs)


def test_user_isolation_in_both_halves(sem_store: SemanticMemoryStore) -> None:
    sem_store.add_segments(corpus_segments())
    for mode in ("hybrid", "bm25", "dense"):
        # Bob's words exactly: alice must never get them, however strong the match.
        for query in ("My cat Pixel knocks glasses off the kitchen table.", "violin orchestra"):
            hits = sem_store.search("alice", query, k=50, mode=mode)  # type: ignore[arg-type]
            assert all(h.segment_id.startswith("alice-") for h in hits), (mode, query)
            bob = sem_store.search("bob", query, k=50, mode=mode)  # type: ignore[arg-type]
            assert bob and all(h.segment_id.startswith("bob-") for h in bob)
    assert sem_store.search("mallory", "cat", mode="hybrid") == []


def test_sole_user_bm25_skips_the_user_tag_without_changing_results(
    sem_store: SemanticMemoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The one-user fast path (no user tag in the MATCH) ranks exactly like the tagged one."""
    alice = [s for s in corpus_segments() if s.user_id == "alice"]
    sem_store.add_segments(alice)
    searcher = sem_store._searcher
    assert searcher._sole_user("alice") and not searcher._sole_user("bob")
    queries = ["dog cello wedding risotto", "golden retriever", "the of and"]

    def results() -> list[list[tuple[str, float | None]]]:
        return [
            [(h.segment_id, h.bm25_score) for h in sem_store.search("alice", q, k=10, mode=m)]
            for q in queries
            for m in ("bm25", "hybrid")
        ]

    fast = results()
    monkeypatch.setattr(searcher, "_sole_user", lambda user_id: False)
    assert results() == fast
    monkeypatch.undo()
    # A second user turns the tag back on: alice still sees only her own segments.
    sem_store.add_segments([s for s in corpus_segments() if s.user_id == "bob"])
    assert not searcher._sole_user("alice")
    for q in ("My cat Pixel knocks glasses off the kitchen table.", *queries):
        assert all(h.segment_id.startswith("alice-") for h in sem_store.search("alice", q, k=50))


def test_users_get_separate_chroma_collections(sem_store: SemanticMemoryStore) -> None:
    sem_store.add_segments(corpus_segments())
    names = sem_store._index.collection_names()
    assert len(names) == 2
    assert all("alice" not in n and "bob" not in n for n in names)


def test_filters(sem_store: SemanticMemoryStore) -> None:
    sem_store.add_segments(corpus_segments())
    query = "dog cello wedding peanuts risotto marathon retrievers"
    for mode in ("hybrid", "bm25", "dense"):
        in_c2 = ranked_ids(sem_store, "alice", query, k=20, mode=mode, conversation_id="c2")
        assert set(in_c2) <= {"alice-003", "alice-004", "alice-005"} and in_c2
        assistant = ranked_ids(sem_store, "alice", query, k=20, mode=mode, role="assistant")
        assert set(assistant) <= {"alice-001", "alice-004", "alice-009"} and assistant
        window = ranked_ids(
            sem_store, "alice", query, k=20, mode=mode, start=T0 + 23 * HOUR, end=T0 + 26 * HOUR
        )
        assert set(window) <= {"alice-003", "alice-004", "alice-005"} and window
        later = ranked_ids(sem_store, "alice", query, k=20, mode=mode, start=T0 + 48 * HOUR)
        assert set(later) <= {"alice-006", "alice-007", "alice-008", "alice-009"} and later
        assert ranked_ids(sem_store, "alice", query, mode=mode, conversation_id="b1") == []


def test_filtered_dense_search_through_chroma(sem_open) -> None:
    """Above ``exact_search_limit`` the filtered dense half over-fetches from Chroma and
    post-filters; on a small corpus that must agree with the exact path."""
    query, kwargs = "wedding in Lisbon", {"k": 5, "mode": "dense", "conversation_id": "c2"}
    via_chroma = sem_open(config=SemanticConfig(exact_search_limit=1))
    via_chroma.add_segments(corpus_segments())
    got = via_chroma.search("alice", query, **kwargs)
    via_chroma.close()
    exact = sem_open().search("alice", query, **kwargs)
    assert [h.segment_id for h in got] == [h.segment_id for h in exact]
    assert {h.segment_id for h in got} == {"alice-003", "alice-004", "alice-005"}
    for a, b in zip(got, exact, strict=True):
        assert a.dense_score == pytest.approx(b.dense_score, abs=1e-5)


def test_time_range_overlap(sem_store: SemanticMemoryStore) -> None:
    sem_store.add_segments(
        [Segment("alice", "a long evening about sailing", T0, T0 + 5 * HOUR, segment_id="long")]
    )
    for start, end, found in [
        (T0 + HOUR, T0 + 2 * HOUR, True),  # inside
        (T0 - HOUR, T0, True),  # touches the start
        (T0 + 6 * HOUR, None, False),
        (None, T0 - 1, False),
    ]:
        ids = ranked_ids(sem_store, "alice", "sailing", start=start, end=end)
        assert (ids == ["long"]) is found


def test_add_messages_uses_the_segmentation(sem_store: SemanticMemoryStore) -> None:
    messages = [
        Message("user", "Where should I hike this weekend?", T0),
        Message("assistant", "Try the ridge trail above the lake.", T0 + 60),
        Message("user", "Is it dog friendly?", T0 + 120),
        Message("assistant", "Yes, dogs on leash are welcome.", T0 + 180),
    ]
    ids = sem_store.add_messages("alice", messages, conversation_id="c9", session_id="s9")
    assert len(ids) == 2  # default unit: exchange
    hit = sem_store.search("alice", "ridge trail", k=1, mode="dense")[0]
    assert hit.text.startswith("user: Where should I hike")
    assert hit.roles == ("assistant", "user") and hit.session_id == "s9"
    # Default: the first BM25 sees only the user's words; the assistant's are found by the
    # second one, over every party's words (semantic_fts_full).
    (found,) = sem_store.search("alice", "ridge trail", mode="bm25")
    assert found.segment_id == ids[0]
    assert found.bm25_rank is None and found.bm25_full_rank == 1
    (found,) = sem_store.search("alice", "hike", mode="bm25")
    assert found.segment_id == ids[0] and found.bm25_rank == 1 and found.bm25_full_rank == 1


def test_unknown_user_and_duplicate_ids_are_refused(sem_store: SemanticMemoryStore) -> None:
    with pytest.raises(ConstraintViolation):
        sem_store.add_segments([Segment("nobody", "text", T0)])
    sem_store.add_segments([Segment("alice", "text", T0, segment_id="same")])
    with pytest.raises(ConstraintViolation):
        sem_store.add_segments([Segment("alice", "other", T0, segment_id="same")])
    with pytest.raises(InvalidInput):
        sem_store.add_segments(
            [Segment("alice", "a", T0, segment_id="x"), Segment("alice", "b", T0, segment_id="x")]
        )
    assert sem_store.count() == 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"text": ""},
        {"text": "   "},
        {"text": "bad \ud800 surrogate"},
        {"user_id": ""},
        {"start_ts": float("inf")},
        {"end_ts": T0 - 1},
        {"roles": "user"},
        {"roles": ("User",)},
    ],
)
def test_segment_validation(kwargs: dict) -> None:
    base = {"user_id": "alice", "text": "hello", "start_ts": T0}
    with pytest.raises(InvalidInput):
        Segment(**{**base, **kwargs})


def test_index_false_defers_dense(sem_store: SemanticMemoryStore) -> None:
    sem_store.add_segments(corpus_segments(), index=False)
    assert sem_store.pending_outbox() == 13
    assert ranked_ids(sem_store, "alice", "mushroom", mode="bm25") == ["alice-008"]
    assert ranked_ids(sem_store, "alice", "mushroom", mode="dense") == []
    result = sem_store.process_outbox()
    assert (result.indexed, result.deleted, result.remaining) == (13, 0, 0)
    assert ranked_ids(sem_store, "alice", "mushroom", mode="dense")[0] == "alice-008"


def test_process_outbox_is_idempotent(sem_store: SemanticMemoryStore, sem_core) -> None:
    sem_store.add_segments(corpus_segments())
    before = sem_store.search("alice", "cello", k=5)
    # Replay everything as if the outbox rows had never been marked done.
    sem_core.execute(
        "INSERT INTO semantic_outbox (op, segment_rowid, chroma_id) "
        "SELECT 'index', id, chroma_id FROM semantic_segments"
    )
    assert sem_store.process_outbox().indexed == 13
    assert sem_store.process_outbox().indexed == 0
    assert sem_store.verify_index().ok
    assert sem_store.verify_index().chroma_count == 13
    assert sem_store.search("alice", "cello", k=5) == before


def test_vectors_are_stored_in_libsql_and_rotated_in_chroma(
    sem_store: SemanticMemoryStore, sem_core: EncryptedLibSQLConnection, sem_master: MasterKey
) -> None:
    sem_store.add_segments(corpus_segments()[:1])
    row = sem_core.fetch_one(
        "SELECT user_id, chroma_id, vector, vector_fingerprint FROM semantic_segments"
    )
    assert row is not None
    raw = np.frombuffer(row["vector"], dtype="<f4")
    expected = HashingEncoder().encode(["My dog Biscuit is a golden retriever who loves swimming."])
    assert np.allclose(raw, expected[0])
    assert row["vector_fingerprint"] == HashingEncoder().fingerprint
    keys = SemanticKeys.from_master_key(sem_master)
    name = f"aico-sem-{keys.user_tag('alice')}"
    stored = sem_store._index.get_vectors(name, [row["chroma_id"]])[row["chroma_id"]]
    assert not np.allclose(stored, raw, atol=1e-3)  # not the model's coordinates
    assert float(np.dot(stored, stored)) == pytest.approx(1.0, abs=1e-5)  # still unit length
    assert len(row["chroma_id"]) == 32 and row["chroma_id"] != "alice-000"


def test_delete_segments(sem_store: SemanticMemoryStore) -> None:
    sem_store.add_segments(corpus_segments())
    assert sem_store.delete_segments(["alice-000", "bob-010"], user_id="alice") == 1
    assert sem_store.count("bob") == 3  # user_id guards other users' segments
    for mode in ("bm25", "dense", "hybrid"):
        got = ranked_ids(sem_store, "alice", "golden retriever Biscuit", k=20, mode=mode)
        assert "alice-000" not in got
    report = sem_store.verify_index()
    assert report.ok and report.chroma_count == 12 and report.pending_outbox == 0
    assert sem_store.delete_segments(["alice-000"]) == 0


def test_delete_user(sem_store: SemanticMemoryStore, sem_core: EncryptedLibSQLConnection) -> None:
    sem_store.add_segments(corpus_segments())
    assert sem_store.delete_user("alice") == 10
    assert sem_store.count("alice") == 0 and sem_store.count("bob") == 3
    assert sem_store.search("alice", "dog") == []
    assert (
        sem_core.fetch_value("SELECT count(*) FROM semantic_fts WHERE semantic_fts MATCH 'dog'")
        == 0
    )
    report = sem_store.verify_index()
    assert report.ok and report.chroma_count == 3
    assert len(sem_store._index.collection_names()) == 1


def test_deleting_the_user_row_cascades_to_chroma(
    sem_store: SemanticMemoryStore, sem_core: EncryptedLibSQLConnection
) -> None:
    sem_store.add_segments(corpus_segments())
    sem_core.execute("DELETE FROM users WHERE user_id = 'bob'")
    assert sem_store.count("bob") == 0
    assert sem_store.verify_index().extra_count == 3  # Chroma not told yet
    assert sem_store.process_outbox().deleted == 3
    report = sem_store.verify_index()
    assert report.ok and report.chroma_count == 10


def test_updating_text_reindexes(
    sem_store: SemanticMemoryStore, sem_core: EncryptedLibSQLConnection
) -> None:
    sem_store.add_segments(corpus_segments())
    sem_core.execute(
        "UPDATE semantic_segments SET text = 'I adopted a parrot named Kiwi' "
        "WHERE segment_id = 'alice-002'"
    )
    assert ranked_ids(sem_store, "alice", "parrot Kiwi", mode="bm25") == ["alice-002"]
    sem_store.process_outbox()
    assert ranked_ids(sem_store, "alice", "parrot named Kiwi", mode="dense")[0] == "alice-002"
    assert sem_store.verify_index().ok


def test_verify_detects_missing_and_extra_then_rebuild_repairs(
    sem_store: SemanticMemoryStore, sem_master: MasterKey
) -> None:
    sem_store.add_segments(corpus_segments())
    keys = SemanticKeys.from_master_key(sem_master)
    alice = f"aico-sem-{keys.user_tag('alice')}"
    victim = sem_store._index.iter_ids(alice).__next__()
    sem_store._index.delete(alice, [victim])
    stray = np.ones((1, 384), dtype=np.float32) / np.sqrt(384)
    sem_store._index.upsert(alice, ["f" * 32], stray, [{"u": "x"}])
    report = sem_store.verify_index()
    assert not report.ok
    assert report.missing_count == 1 and len(report.missing_in_chroma) == 1
    assert report.missing_in_chroma[0].startswith("alice-")
    assert report.extra_count == 1 and report.extra_in_chroma == ("f" * 32,)
    assert report.segments == report.vectors == 13 and report.chroma_count == 13
    assert sem_store.rebuild() == 13
    assert sem_store.verify_index().ok


def test_rebuild_gives_identical_results(sem_store: SemanticMemoryStore) -> None:
    sem_store.add_segments(corpus_segments())
    queries = ["dog swimming", "music lessons", "wedding", "food allergy", "running race"]
    before = {q: sem_store.search("alice", q, k=8) for q in queries}
    progress = []
    assert sem_store.rebuild(progress=progress.append) == 13
    assert progress[-1].done == progress[-1].total == 13
    after = {q: sem_store.search("alice", q, k=8) for q in queries}
    for q in queries:
        assert [h.segment_id for h in after[q]] == [h.segment_id for h in before[q]]
        for a, b in zip(after[q], before[q], strict=True):
            assert a.score == pytest.approx(b.score, abs=1e-6)
            assert a.dense_score == pytest.approx(b.dense_score, abs=1e-6)


def test_rebuild_purges_deleted_vectors_from_chroma_files(
    tmp_path: Path, sem_store: SemanticMemoryStore
) -> None:
    sem_store.add_segments(corpus_segments())
    chroma = tmp_path / "chroma"
    doomed = sem_store._index.collection_names()
    old_segments = {p.name for p in chroma.iterdir() if p.is_dir()}
    sem_store.delete_user("bob")
    # Before the rebuild Chroma still holds the dropped collection's rows and HNSW files.
    assert any(n.encode() in (chroma / "chroma.sqlite3").read_bytes() for n in doomed)
    sem_store.rebuild()
    gone = [n for n in doomed if n not in sem_store._index.collection_names()]
    # (Not a scan of every file: chromadb writes uninitialized buffer memory into
    # data_level0.bin, which can hold any recently freed string, names included.)
    assert gone and all(n.encode() not in (chroma / "chroma.sqlite3").read_bytes() for n in gone)
    assert not old_segments & {p.name for p in chroma.iterdir() if p.is_dir()}
    assert sem_store.verify_index().ok


def test_closed_store_refuses(sem_store: SemanticMemoryStore) -> None:
    sem_store.close()
    sem_store.close()
    with pytest.raises(StoreClosed):
        sem_store.search("alice", "dog")
    with pytest.raises(StoreClosed):
        sem_store.add_segments([])


def test_exact_scan_agrees_with_chroma(sem_store: SemanticMemoryStore) -> None:
    sem_store.add_segments(corpus_segments())
    vector = HashingEncoder().encode_query("golden retriever swimming")
    query = SearchQuery.parse("alice", "golden retriever swimming", 5)
    where, params = query.where()
    exact = sem_store._searcher._exact_dense(vector, where, params, 5)
    via_chroma = sem_store._searcher._dense(query, vector, 5)
    assert [s for _, s in exact] == pytest.approx([s for _, s in via_chroma], abs=1e-5)
    # Equal scores (here: 0.0 give or take float error, no shared feature) may come in any
    # order; the rest may not.
    assert [i for i, s in exact if s > 1e-4] == [i for i, s in via_chroma if s > 1e-4]


def test_search_works_while_chroma_is_still_loading(sem_open, monkeypatch) -> None:
    """Until the background loader has opened Chroma, dense search scans libSQL exactly."""
    import threading

    from aico.ai.memory.semantic import _core as loader_module

    sem_open().add_segments(corpus_segments())
    release = threading.Event()
    real = loader_module.ChromaIndex

    class SlowIndex(real):  # type: ignore[misc,valid-type]
        def __init__(self, *args, **kwargs) -> None:
            assert release.wait(30)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(loader_module, "ChromaIndex", SlowIndex)
    store = sem_open()
    assert store._index_if_ready() is None
    while_loading = store.search("alice", "golden retriever swimming", k=10)
    release.set()
    store._index.count(store._collection_name("alice"))  # wait for the loader
    assert store._index_if_ready() is not None
    loaded = store.search("alice", "golden retriever swimming", k=10)
    # Same segments with the same scores (all ten of alice's, so equal scores, which the two
    # paths may order differently, cannot push different segments past k).
    assert {h.segment_id: round(h.score, 5) for h in while_loading} == {
        h.segment_id: round(h.score, 5) for h in loaded
    }
    assert while_loading[0].segment_id == loaded[0].segment_id == "alice-000"


def test_frequent_terms_are_pruned_in_large_stores(sem_open) -> None:
    config = SemanticConfig(bm25_max_df=0.5, bm25_prune_min_segments=4)
    store = sem_open(config=config)
    texts = ["dog walk", "dog food", "dog park", "dog toy", "cat nap biscuit"]
    store.add_segments([Segment("alice", t, T0, segment_id=f"s{i}") for i, t in enumerate(texts)])
    # "dog" is in 4 of 5 segments (> 50%): BM25 keeps only the rarer term.
    assert ranked_ids(store, "alice", "dog biscuit", mode="bm25") == ["s4"]
    # A query of frequent terms only keeps its rarest one instead of matching nothing.
    assert len(ranked_ids(store, "alice", "dog", mode="bm25", k=10)) == 4
    exact = sem_open(config=SemanticConfig(bm25_max_df=None))
    assert len(ranked_ids(exact, "alice", "dog biscuit", mode="bm25", k=10)) == 5


def test_retagging_follows_updates(
    sem_store: SemanticMemoryStore, sem_core: EncryptedLibSQLConnection
) -> None:
    sem_store.add_segments(corpus_segments())
    sem_core.execute(
        "UPDATE semantic_segments SET conversation_id = 'c9', roles = 'assistant,user' "
        "WHERE segment_id = 'alice-002'"
    )
    assert ranked_ids(sem_store, "alice", "cello", mode="bm25", conversation_id="c9") == [
        "alice-002"
    ]
    assert ranked_ids(sem_store, "alice", "cello", mode="bm25", conversation_id="c1") == []
    assert ranked_ids(sem_store, "alice", "cello", mode="bm25", role="assistant") == ["alice-002"]
    sem_core.execute("UPDATE semantic_segments SET user_id = 'bob' WHERE segment_id = 'alice-002'")
    assert ranked_ids(sem_store, "alice", "cello", mode="bm25") == []
    assert ranked_ids(sem_store, "bob", "cello", mode="bm25") == ["alice-002"]
    sem_store.process_outbox()
    assert sem_store.verify_index().ok
    assert ranked_ids(sem_store, "bob", "cello", mode="dense")[0] == "alice-002"
    assert "alice-002" not in ranked_ids(sem_store, "alice", "cello", mode="dense")


@pytest.mark.slow
def test_freed_plaintext_does_not_surface_in_chroma_files(
    tmp_path: Path, sem_store: SemanticMemoryStore
) -> None:
    """chromadb writes uninitialized memory into data_level0.bin (we found its own SQL and
    metadata there). Stress the risk: long texts that go through malloc and are freed right
    before Chroma allocates and persists; none may reach its files."""
    import gc

    marker = "ZQXPLAINTEXTMARKER"
    long_texts = [Segment("alice", f"{marker}{i:04d} " * 200, T0 + i) for i in range(300)]
    sem_store.add_segments(long_texts)
    del long_texts
    gc.collect()
    sem_store.add_segments([Segment("alice", f"short {i}", T0 + i) for i in range(300)])
    sem_store.rebuild()
    sem_store.close()
    assert scan_for(tmp_path / "chroma", [marker.encode()]) == []


def test_chroma_loads_after_the_first_search_or_when_needed(sem_open) -> None:
    """Chroma's load holds the GIL, so opening never starts it; the first search answers
    from libSQL and then starts it; writes and ``wait_ready`` load it on demand."""
    sem_open().add_segments(corpus_segments())
    store = sem_open()
    assert store._index_future is None
    first = store.search("alice", "golden retriever swimming", mode="dense")
    assert store._index_future is not None
    assert store.wait_ready(timeout=60)
    again = store.search("alice", "golden retriever swimming", mode="dense")
    # Exact scan then Chroma: the same scores (equal ones may come in another order).
    assert {h.segment_id: round(h.score, 5) for h in first} == {
        h.segment_id: round(h.score, 5) for h in again
    }
    writer = sem_open()
    writer.add_segments([Segment("alice", "a new note about kayaks", T0)])
    assert writer._index_if_ready() is not None and writer.verify_index().ok


def test_a_second_users_segments_end_the_sole_user_shortcut(sem_store) -> None:
    # One user: BM25 leaves the user tag out (remembered for a moment). Another user's
    # segments, added through the store, must be tagged out again at once.
    filler = [Segment("alice", f"alice note {i} about sailing", T0 + i) for i in range(3)]
    sem_store.add_segments(filler)
    assert len(sem_store.search("alice", "sailing", k=10, mode="bm25")) == 3
    sem_store.add_segments(
        [Segment("bob", f"bob sailing sailing sailing {i}", T0 + i) for i in range(60)]
    )
    hits = sem_store.search("alice", "sailing", k=3, mode="bm25")
    assert len(hits) == 3 and all(h.text.startswith("alice") for h in hits)
