"""A read-only SemanticMemoryStore writes nothing: status and search, proved on the bytes.

Every test compares ``digests`` (the sha256 of every file, and every directory) of the whole
test directory, which holds the encrypted database, its WAL and the Chroma directory, before
and after the read-only store is opened, used and closed. Real encrypted files, real Chroma.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from semantic_support import (
    T0,
    corpus_segments,
    digests,
    free_port,
    open_core,
    ranked_ids,
    spawn_child,
    start_chroma_server,
    stop_process,
)

from aico.ai.embeddings import HashingEncoder
from aico.ai.memory.semantic import (
    DEFAULT_FTS_TOKENIZER,
    IndexReport,
    Message,
    Segment,
    SemanticConfig,
    SemanticMemoryStore,
)
from aico.data.libsql import EncryptedLibSQLConnection
from aico.errors import ModelMismatch, ReadOnly, StorageError, StoreBusy
from aico.security import MasterKey

QUERIES = ("golden retriever swimming", "wedding in Lisbon", "marathon", "risotto parmesan")


def status(store: SemanticMemoryStore) -> tuple[IndexReport, dict[str, object]]:
    """What ``aico semantic status`` shows: the index report and the store's state."""
    return store.verify_index(), {
        "model": store.model,
        "model_mismatch": store.model_mismatch,
        "model_registered": store.model_registered,
        "tokenizer_mismatch": store.tokenizer_mismatch,
        "segments": store.count(),
        "pending": store.pending_outbox(),
    }


def scores(store: SemanticMemoryStore, query: str, mode: str) -> dict[str, float]:
    """Every hit of alice (k covers all her segments: ties cannot push one out) by score."""
    hits = store.search("alice", query, k=50, mode=mode)  # type: ignore[arg-type]
    return {h.segment_id: round(h.score, 5) for h in hits}


@pytest.fixture
def written(sem_open) -> dict[tuple[str, str], dict[str, float]]:
    """A store with the corpus, one deletion applied and one segment still queued; the
    writable store's results (searched in Chroma) for every query and mode."""
    writer = sem_open()
    writer.add_segments(corpus_segments())
    writer.delete_segments(["bob-012"])
    writer.add_segments([Segment("alice", "a queued note on kayaks", T0)], index=False)
    assert writer._index_if_ready() is not None
    results = {(q, m): scores(writer, q, m) for q in QUERIES for m in ("hybrid", "bm25", "dense")}
    writer.close()
    return results


def test_status_and_search_write_nothing(
    sem_open, written: dict[tuple[str, str], dict[str, float]], tmp_path: Path
) -> None:
    before = digests(tmp_path)
    assert any(name.endswith("aico.db-wal") for name in before)
    assert any(name.startswith("chroma/") for name in before)

    store = sem_open(read_only=True)
    assert store.read_only
    report, shown = status(store)
    assert shown["segments"] == 13 and shown["pending"] == 1
    assert shown["model_registered"] and not shown["model_mismatch"]
    assert not shown["tokenizer_mismatch"]
    assert not report.chroma_checked and not report.ok  # embedded Chroma is not opened
    assert (report.segments, report.vectors, report.unindexed_count) == (13, 12, 0)
    # Dense search is the exact scan over libSQL: the same results as Chroma gave.
    for (query, mode), expected in written.items():
        assert scores(store, query, mode) == expected, (query, mode)
    assert ranked_ids(store, "alice", "kayaks", mode="bm25")  # the queued one: BM25 has it
    assert ranked_ids(store, "alice", "wedding", conversation_id="c2", role="user", start=T0)
    assert len(store.segments_of_conversation("alice", "c3")) == 4
    assert store.wait_ready(timeout=1) and store._index_future is None  # never opened
    store.close()

    assert digests(tmp_path) == before


def test_a_fresh_store_opens_read_only_and_creates_nothing(
    tmp_path: Path, sem_master: MasterKey
) -> None:
    conn = open_core(tmp_path / "db" / "aico.db", sem_master)
    try:
        before = digests(tmp_path)
        chroma = tmp_path / "memory" / "semantic" / "chroma"
        encoder = HashingEncoder()
        with SemanticMemoryStore.open(
            conn, sem_master, encoder, chroma_path=chroma, read_only=True
        ) as store:
            assert not store.model_registered  # no row, and none was written
            assert store.model.fingerprint == encoder.fingerprint
            assert store.search("alice", "anything at all") == []
            report = store.verify_index()
            assert (report.segments, report.chroma_checked) == (0, False)
            assert store.count() == 0 and store.pending_outbox() == 0
        assert digests(tmp_path) == before
        assert not (tmp_path / "memory").exists()  # no Chroma dir, no lock file beside it
        assert conn.fetch_value("SELECT count(*) FROM semantic_model") == 0
        with SemanticMemoryStore.open(conn, sem_master, encoder, chroma_path=chroma) as store:
            assert store.model_registered  # a writable open registers it
    finally:
        conn.close()


def test_without_a_chroma_dir_dense_search_scans_libsql(sem_open, tmp_path: Path) -> None:
    """A master-key rotation deletes the local index; a read-only store does not recreate it."""
    writer = sem_open()
    writer.add_segments(corpus_segments())
    writer.close()
    shutil.rmtree(tmp_path / "chroma")
    before = digests(tmp_path)
    store = sem_open(read_only=True)
    assert ranked_ids(store, "alice", "golden retriever swimming", mode="dense")[0] == "alice-000"
    assert status(store)[1]["segments"] == 13
    store.close()
    assert digests(tmp_path) == before
    assert not (tmp_path / "chroma").exists()


def test_read_only_searches_the_fts_index_as_it_was_built(sem_open, tmp_path: Path) -> None:
    sem_open().add_segments(corpus_segments())
    before = digests(tmp_path)
    unicode61 = SemanticConfig(fts_tokenizer="unicode61")
    store = sem_open(config=unicode61, read_only=True)
    assert store.tokenizer_mismatch
    assert store.fts_tokenizer == DEFAULT_FTS_TOKENIZER != store.config.fts_tokenizer
    # Porter stemming (the stored index) matches "retriever" and "retrievers" alike.
    assert set(ranked_ids(store, "alice", "retrievers", mode="bm25")) == {"alice-000", "alice-001"}
    store.close()
    assert digests(tmp_path) == before
    rebuilt = sem_open(config=unicode61)  # writable: rebuilds the FTS table
    assert not rebuilt.tokenizer_mismatch
    assert ranked_ids(rebuilt, "alice", "retrievers", mode="bm25") == ["alice-001"]


def test_read_only_reports_another_model_without_writing(sem_open, tmp_path: Path) -> None:
    stored = sem_open().model
    sem_open().add_segments(corpus_segments())
    before = digests(tmp_path)
    other = HashingEncoder(256, seed=1)
    with pytest.raises(ModelMismatch):
        sem_open(other, read_only=True)
    store = sem_open(other, read_only=True, check_model=False)
    assert store.model_mismatch and store.model == stored and store.model_registered
    with pytest.raises(ModelMismatch):
        store.search("alice", "dog")
    assert store.verify_index().vectors == 13
    store.close()
    assert digests(tmp_path) == before


def test_read_only_does_not_adopt_a_new_model(
    sem_open, sem_core: EncryptedLibSQLConnection, tmp_path: Path
) -> None:
    """No vector yet: a writable open would switch the registry to the new encoder."""
    sem_open().add_segments(corpus_segments(), index=False)
    before = digests(tmp_path)
    other = HashingEncoder(256, seed=1)
    store = sem_open(other, read_only=True)
    assert store.model.fingerprint == other.fingerprint
    assert not store.model_registered and not store.model_mismatch
    hybrid = ranked_ids(store, "alice", "golden retriever")  # the BM25 half alone
    assert set(hybrid) == {"alice-000", "alice-001"}
    assert store.search("alice", "golden retriever", mode="dense") == []  # nothing embedded
    store.close()
    assert digests(tmp_path) == before
    assert sem_core.fetch_value("SELECT dimension FROM semantic_model") == 384


WRITES: dict[str, Callable[[SemanticMemoryStore], object]] = {
    "add_segments": lambda s: s.add_segments([Segment("alice", "new words", T0)]),
    "add_messages": lambda s: s.add_messages("alice", [Message("user", "hello there", T0)]),
    "process_outbox": lambda s: s.process_outbox(),
    "delete_segments": lambda s: s.delete_segments(["alice-000"]),
    "delete_user": lambda s: s.delete_user("alice"),
    "requeue_unindexed": lambda s: s.requeue_unindexed(),
    "optimize_fts": lambda s: s.optimize_fts(),
    "purge_index": lambda s: s.purge_index(),
    "rebuild": lambda s: s.rebuild(),
    "reembed": lambda s: s.reembed(),
}


def test_every_write_raises_read_only(sem_open, tmp_path: Path) -> None:
    assert issubclass(ReadOnly, StorageError)
    sem_open().add_segments(corpus_segments())
    before = digests(tmp_path)
    store = sem_open(read_only=True)
    for name, write in WRITES.items():
        with pytest.raises(ReadOnly, match=rf"{name}\(\) writes"):
            write(store)
    with pytest.raises(ReadOnly):
        store.add_segments([])  # refused even with nothing to write
    # Beneath the store's own checks, its libSQL handle passes SELECT statements only.
    conn = store._core.conn
    for attempt in (
        lambda: conn.execute("DELETE FROM semantic_segments"),
        lambda: conn.execute_many("DELETE FROM semantic_segments WHERE id = ?", [(1,)]),
        lambda: conn.fetch_all("DELETE FROM semantic_segments RETURNING id"),
        lambda: conn.transaction().__enter__(),
    ):
        with pytest.raises(ReadOnly):
            attempt()
    assert store.count() == 13
    store.close()
    assert digests(tmp_path) == before


@pytest.mark.slow
def test_read_only_works_while_another_process_holds_the_index(
    sem_open, tmp_path: Path, sem_master: MasterKey
) -> None:
    """Embedded Chroma serves one process; a read-only store does not open it, so it does
    not need the hold, and searches (exactly, from libSQL) while the holder runs."""
    writer = sem_open()
    writer.add_segments(corpus_segments())
    writer.close()  # this process lets go of the index; the child takes it
    holder = spawn_child(
        "hold_index_child",
        str(tmp_path / "db" / "aico.db"),
        str(tmp_path / "chroma"),
        sem_master.expose_bytes().hex(),
    )
    try:
        assert holder.stdout is not None and holder.stdin is not None
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(StoreBusy):
            sem_open()
        store = sem_open(read_only=True)
        assert ranked_ids(store, "alice", "golden retriever swimming", mode="dense")[0] == (
            "alice-000"
        )
        assert status(store)[1]["segments"] == 13
        store.close()
    finally:
        if holder.stdin is not None:
            holder.stdin.close()
        holder.wait(60)
    assert holder.returncode == 0


# -- a Chroma server ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    path = tmp_path_factory.mktemp("chroma-server")
    port = free_port()
    process = start_chroma_server(path, port)
    try:
        yield f"http://127.0.0.1:{port}", path
    finally:
        stop_process(process)


@pytest.mark.slow
def test_read_only_over_a_server_reads_chroma_and_writes_nothing(
    sem_open, chroma_server: tuple[str, Path], tmp_path: Path
) -> None:
    url, server_dir = chroma_server
    writer = sem_open(chroma_url=url)
    writer.add_segments(corpus_segments())
    expected = scores(writer, "golden retriever swimming", "dense")
    writer.close()
    before = digests(tmp_path), digests(server_dir)
    store = sem_open(chroma_url=url, read_only=True)
    report = store.verify_index()
    assert report.chroma_checked and report.ok and report.chroma_count == 13
    assert scores(store, "golden retriever swimming", "dense") == expected
    assert store._index_future is not None  # Chroma was read, not the exact scan
    store.close()
    assert (digests(tmp_path), digests(server_dir)) == before
