"""MemoryManager end to end: real encrypted libSQL, real LMDB, real Chroma, the real MiniLM."""

from __future__ import annotations

from pathlib import Path

import pytest

from aico.ai.memory import MemoryManager
from aico.data.repositories import FactRepository, UserService
from aico.errors import InvalidInput, NotFound

PASSPHRASE = "manager test passphrase"
HOUR = 3600.0
MARKER = "quokka-lantern-9931"


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def manager(tmp_path: Path, test_config, onnx_encoder, clock):
    m = MemoryManager.initialize(
        tmp_path / "data", PASSPHRASE, config=test_config, encoder=onnx_encoder, clock=clock
    )
    yield m
    m.close()


def talk(manager, clock, user_id, session_id, turns):
    for role, text in turns:
        clock.now += 30
        manager.store_message(user_id, session_id, role, text)


RUNNING = [
    ("user", "I ran fourteen kilometres this morning, my longest run before the half marathon."),
    ("assistant", "Great milestone! How did your knees feel after the long run?"),
    ("user", "A bit sore. My physio said to add strength training twice a week."),
]
COOKING = [
    ("user", "I tried a new lentil soup recipe with smoked paprika tonight."),
    ("assistant", "That sounds cosy. Did you add lemon at the end?"),
]


@pytest.mark.slow
def test_store_consolidate_and_assemble_context(manager, clock):
    core = manager.store.connection("core")
    maya = UserService(core).create_user("Maya").user_id
    FactRepository(core).remember(maya, "Maya is training for a half marathon in October.")
    FactRepository(core).remember(maya, "Maya dislikes cilantro.")
    talk(manager, clock, maya, "s-run", RUNNING)
    talk(manager, clock, maya, "s-cook", COOKING)
    assert manager.end_session("s-run") >= 1
    assert manager.end_session("s-cook") >= 1
    log = manager.store.connection("conversations")
    assert (
        log.fetch_value("SELECT status FROM session_metadata WHERE session_id = 's-run'")
        == "consolidated"
    )
    compaction = log.fetch_one("SELECT * FROM compaction_history WHERE session_id = 's-run'")
    assert compaction["status"] == "done" and compaction["original_message_count"] == 3

    clock.now += 2 * HOUR
    manager.store_message(maya, "s-today", "user", "Should I run again tomorrow or rest my knees?")
    bundle = manager.assemble_context(
        maya, "s-today", "knee pain after my long run before the half marathon"
    )
    assert [m.content for m in bundle.working] == ["Should I run again tomorrow or rest my knees?"]
    assert bundle.memories, "hybrid search found nothing"
    assert "fourteen kilometres" in bundle.memories[0].text
    assert all("lentil" not in m.text for m in bundle.memories[:1])
    assert [f.content for f in bundle.facts] == ["Maya is training for a half marathon in October."]
    assert bundle.token_estimate <= bundle.max_tokens
    rendered = bundle.render()
    assert "Recent conversation:" in rendered and "half marathon" in rendered


@pytest.mark.slow
def test_budget_trims_memories_before_recent_turns(manager, clock):
    core = manager.store.connection("core")
    user = UserService(core).create_user("Tom").user_id
    talk(manager, clock, user, "old", RUNNING)
    manager.end_session("old")
    talk(manager, clock, user, "now", [("user", "My knees hurt after running, what should I do?")])
    tiny = manager.assemble_context(user, "now", "knees running", max_tokens=15)
    assert len(tiny.working) == 1 and tiny.memories == () and tiny.dropped >= 1
    assert tiny.token_estimate <= 15


@pytest.mark.slow
def test_maintenance_sweeps_and_consolidates_idle_sessions(manager, clock):
    user = UserService(manager.store.connection("core")).create_user("Ida").user_id
    talk(manager, clock, user, "idle", COOKING)
    report = manager.maintenance()
    assert report.consolidated_sessions == 0 and report.swept == 0
    clock.now += 25 * HOUR  # past the idle threshold and the 24-hour TTL
    report = manager.maintenance()
    assert report.consolidated_sessions == 1 and report.segments_created >= 1
    assert report.swept == len(COOKING)
    assert manager.working.recent("idle", 10) == []
    hits = manager.semantic.search(user, "lentil soup paprika", 3)
    assert hits and "lentil" in hits[0].text
    assert manager.maintenance().consolidated_sessions == 0  # idempotent


@pytest.mark.slow
def test_forget_user_removes_everything(manager, clock, tmp_path):
    core = manager.store.connection("core")
    users = UserService(core)
    gone, kept = users.create_user("Gone").user_id, users.create_user("Kept").user_id
    FactRepository(core).remember(gone, f"secret fact {MARKER}")
    talk(manager, clock, gone, "g1", [("user", f"my secret is {MARKER}"), ("assistant", "ok")])
    manager.end_session("g1")
    talk(manager, clock, gone, "g2", [("user", f"still {MARKER} in working memory")])
    talk(manager, clock, kept, "k1", [("user", "I keep my memories, thank you.")])
    manager.end_session("k1")

    report = manager.forget_user(gone)
    assert report.segments >= 1 and report.messages == 3 and report.working_entries >= 1
    assert manager.semantic.search(gone, MARKER, 5) == []
    assert manager.working.recent("g2", 5) == []
    log = manager.store.connection("conversations")
    for conn, table, column in [
        (log, "messages", "content"),
        (core, "facts", "content"),
        (core, "semantic_segments", "text"),
    ]:
        assert (
            conn.fetch_value(
                f"SELECT count(*) FROM {table} WHERE {column} LIKE ?", (f"%{MARKER}%",)
            )
            == 0
        )
    assert log.fetch_value("SELECT count(*) FROM session_metadata WHERE user_id = ?", (gone,)) == 0
    assert manager.semantic.search(kept, "keep my memories", 3)
    for path in (tmp_path / "data").rglob("*"):
        if path.is_file():
            assert MARKER.encode() not in path.read_bytes(), path


def test_store_message_rejects_bad_input_and_leaves_no_row(tmp_path, test_config, clock):
    from aico.ai.embeddings import HashingEncoder

    with MemoryManager.initialize(
        tmp_path / "d", PASSPHRASE, config=test_config, encoder=HashingEncoder(), clock=clock
    ) as m:
        users = UserService(m.store.connection("core"))
        users.create_user("Alice", user_id="alice")
        users.create_user("Mallory", user_id="mallory")
        with pytest.raises(NotFound, match="create the user first"):
            m.store_message("nobody", "s0", "user", "hello")
        m.store_message("alice", "shared", "user", "hello")
        core = m.store.connection("conversations")
        with pytest.raises(InvalidInput):
            m.store_message("mallory", "shared", "user", "let me in")  # someone else's session
        with pytest.raises(InvalidInput, match="role"):
            m.store_message("alice", "shared", "narrator", "x")
        with pytest.raises(InvalidInput, match="content"):
            m.store_message("alice", "shared", "user", "   ")
        assert core.fetch_value("SELECT count(*) FROM messages") == 1
        assert (
            core.fetch_value(
                "SELECT message_count FROM session_metadata WHERE session_id = 'shared'"
            )
            == 1
        )
