"""A forget reaches the other stores too: the file index, knowledge.db and the analytics copy.

Real encrypted stores, the fast fake encoder, the real DuckDB copy. After each forget every
**decrypted** page of every libSQL database (``sqlite_dbpage`` with the key) is scanned for
the forgotten user's markers, and the analytics copy is asked through its own SQL.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from coordinator_support import OTHER, USER, create, open_manager

from aico.ai.memory import MemoryManager

GONE, KEPT = USER, OTHER


def _decrypted_pages(memory: MemoryManager) -> bytes:
    out = bytearray()
    for name in memory.store.databases:
        if not memory.store.path_of(name).exists():
            continue
        conn = memory.store.connection(name)
        for row in conn.fetch_all("SELECT data FROM sqlite_dbpage"):
            out += row["data"]
    return bytes(out)


def _fill(memory: MemoryManager, folder: Path, user: str, tag: str) -> list[bytes]:
    """Markers of ``user`` in the log, the file index, knowledge.db (and, after an export,
    the analytics copy)."""
    notes = folder / f"notes-{tag}"
    notes.mkdir(parents=True)
    (notes / f"garden-zq{tag}path.md").write_text(f"# Garden\n\nzq{tag}file tomatoes\n")
    memory.files.index(user, notes)
    for i in range(3):
        memory.store_message(
            user, f"{tag}-s", "user", f"zq{tag}msg{i} about tomatoes", conversation_id=f"{tag}-c"
        )
    memory.end_session(f"{tag}-s")
    memory.knowledge.add_decision(user, f"zq{tag}decision to grow tomatoes", "technical")
    memory.knowledge.record_effectiveness(user, f"{tag}-c", user_satisfaction=4)
    return [f"zq{tag}{kind}".encode() for kind in ("path", "file", "msg0", "decision")]


def _knowledge_rows(memory: MemoryManager, user: str) -> int:
    conn = memory.store.connection("knowledge")
    tables = [
        r["name"]
        for r in conn.fetch_all(
            "SELECT m.name FROM sqlite_master m JOIN pragma_table_info(m.name) c "
            "WHERE m.type = 'table' AND c.name = 'user_id'"
        )
    ]
    return sum(
        int(conn.fetch_value(f"SELECT count(*) FROM {t} WHERE user_id = ?", (user,)))
        for t in tables
    )


def _analytics_messages(memory: MemoryManager, user: str) -> int:
    rows = memory.analytics.sql(f"SELECT count(*) AS n FROM a.messages WHERE user_id = '{user}'")
    return int(rows.dicts()[0]["n"])


@pytest.mark.slow
def test_forget_user_leaves_nothing_in_the_other_stores(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    create(data_dir)
    with open_manager(data_dir) as memory:
        gone = _fill(memory, tmp_path, GONE, "gone")
        kept = _fill(memory, tmp_path, KEPT, "kept")
        memory.semantic.process_outbox()
        memory.analytics.export()
        assert _analytics_messages(memory, GONE) == 3
        pages = _decrypted_pages(memory)
        assert all(m in pages for m in gone + kept)  # control: the scan sees them

        report = memory.forget(GONE)
        assert report.details["files"] == 1 and report.details["knowledge"] >= 2
        assert report.details["analytics"] > 0
        pages = _decrypted_pages(memory)
        assert [m for m in gone if m in pages] == []
        assert all(m in pages for m in kept)
        assert memory.files.list_files(GONE) == []
        for name in memory.store.databases:  # no purged page waits in a WAL
            wal = memory.store.path_of(name).with_name(memory.store.path_of(name).name + "-wal")
            assert not wal.exists() or wal.stat().st_size == 0, name
        assert _knowledge_rows(memory, GONE) == 0 and _knowledge_rows(memory, KEPT) >= 2
        assert _analytics_messages(memory, GONE) == 0
        assert _analytics_messages(memory, KEPT) == 3
        assert [h.source for h in memory.search(KEPT, "tomatoes", source="file")] == ["file"]


@pytest.mark.slow
def test_forget_conversation_reaches_knowledge_and_the_analytics_copy(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    create(data_dir)
    with open_manager(data_dir) as memory:
        _fill(memory, tmp_path, GONE, "gone")
        memory.analytics.export()
        assert memory.knowledge.counts(GONE)["effectiveness"] == 1
        report = memory.forget(GONE, conversation_id="gone-c")
        assert report.details["knowledge"] == 1
        assert memory.knowledge.counts(GONE)["effectiveness"] == 0
        assert memory.knowledge.counts(GONE)["decision"] == 1  # not of that conversation
        assert _analytics_messages(memory, GONE) == 0
        assert b"zqgonemsg0" not in _decrypted_pages(memory)
        assert memory.files.list_files(GONE)  # the user's files stay
