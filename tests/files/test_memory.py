"""Search beside conversations, context and relevance, the knowledge rows, purge, watch."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from aico.ai.memory import MemoryManager


def test_search_returns_notes_beside_conversations_with_a_filter(
    manager: MemoryManager, tree: Path
) -> None:
    manager.store_message("alice", "s1", "user", "My tomatoes are doing well this year")
    manager.end_session("s1")
    manager.files.index("alice", tree)
    both = manager.search("alice", "tomatoes", 10, mode="bm25")
    assert {h.source for h in both} == {"conversation", "file"}
    only_files = manager.search("alice", "tomatoes", 10, mode="bm25", source="file")
    assert only_files and {h.source for h in only_files} == {"file"}
    hits = manager.files.search("alice", "tomatoes watering", 3, mode="bm25")
    assert hits[0].file is not None and hits[0].file.rel_path == "notes/garden.md"


def test_knowledge_rows_describe_what_was_embedded(manager: MemoryManager, tree: Path) -> None:
    manager.files.index("alice", tree)
    knowledge = manager.store.connection("knowledge")
    chunks = sum(f.chunk_count or 0 for f in manager.files.list_files("alice"))
    rows = knowledge.fetch_all("SELECT * FROM embedding_metadata")
    assert len(rows) == chunks > 0
    assert {r["embedding_model"] for r in rows} == {manager.semantic.model.name}
    assert {r["dimension"] for r in rows} == {384}
    index = knowledge.fetch_one("SELECT * FROM search_indexes WHERE id = 'files/alice'")
    assert index is not None and index["item_count"] == chunks


def test_context_records_access_and_ranking_uses_it(manager: MemoryManager, tree: Path) -> None:
    manager.files.index("alice", tree)
    chosen = manager.files.context("alice", "tomatoes watering", 1, context_id="ctx1")
    assert [h.file.rel_path for h in chosen if h.file] == ["notes/garden.md"]
    conn = manager.store.connection("file_index")
    access = conn.fetch_all("SELECT * FROM file_access_patterns")
    assert [(a["access_type"], a["context_id"]) for a in access] == [("context_inclusion", "ctx1")]
    for _ in range(4):
        manager.files.record_access("alice", "web/app.ts", access_type="read")
    ranked = manager.files.rank_for_context("alice", k=3)
    assert ranked[0].file.rel_path == "web/app.ts"
    top = ranked[0].score
    assert top.frequency > 0 and top.recency > 0.9 and top.success_correlation == 1.0
    core = next(
        r for r in manager.files.rank_for_context("alice", k=20) if r.file.name == "core.py"
    )
    assert core.score.dependency > 0  # util, the test and the notes relate to it
    stored = conn.fetch_value("SELECT count(*) FROM file_relevance_scores")
    assert stored == 8


def test_purge_user_leaves_no_file_row_segment_or_plaintext(
    manager: MemoryManager, tree: Path
) -> None:
    marker = "zanzibarquokka"
    (tree / "notes" / f"{marker}.md").write_text(f"# {marker}\n\n{marker} lives here.\n")
    manager.files.index("alice", tree)
    manager.files.index("bob", tree)
    data = manager.store.layout.root
    for path in data.rglob("*"):  # nothing outside the encrypted databases holds it
        if path.is_file():
            assert marker.encode() not in path.read_bytes(), path.name
    deleted = manager.files.purge_user("alice")
    assert deleted == 9
    assert manager.files.list_files("alice", include_deleted=True) == []
    assert not manager.search("alice", marker, 5, mode="bm25", source="file")
    assert manager.files.search("bob", marker, 5, mode="bm25")
    conn = manager.store.connection("file_index")
    assert conn.fetch_value("SELECT count(*) FROM files WHERE user_id = 'alice'") == 0
    knowledge = manager.store.connection("knowledge")
    bob_chunks = sum(f.chunk_count or 0 for f in manager.files.list_files("bob"))
    assert knowledge.fetch_value("SELECT count(*) FROM embedding_metadata") == bob_chunks
    assert (
        knowledge.fetch_value("SELECT count(*) FROM search_indexes WHERE id = 'files/alice'") == 0
    )


def test_watch_reindexes_on_change_until_stopped(manager: MemoryManager, tree: Path) -> None:
    reports = []
    stop = threading.Event()
    watcher = threading.Thread(
        target=manager.files.watch,
        args=("alice", tree),
        kwargs={"on_report": reports.append, "stop": stop, "debounce_s": 0.1},
    )
    watcher.start()
    try:
        deadline = time.time() + 10
        while not reports and time.time() < deadline:
            time.sleep(0.05)
        (tree / "notes" / "new.md").write_text("# New\n\nfresh note\n")
        while len(reports) < 2 and time.time() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        watcher.join(10)
    assert not watcher.is_alive()
    assert reports[0].created == 8
    assert any(r.created == 1 for r in reports[1:])
    assert "notes/new.md" in {f.rel_path for f in manager.files.list_files("alice")}
