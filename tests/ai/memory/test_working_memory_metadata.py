"""session_metadata kept in step with LMDB, and repaired by reconcile after a crash."""

from __future__ import annotations

import multiprocessing
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aico.ai.memory.working import WorkingMemoryStore, reconcile, sweep
from aico.data.libsql import EncryptedLibSQLConnection
from aico.errors import InvalidInput
from aico.security import MasterKey

# The suite imports test modules with importlib (no sys.path entry); the helpers must be
# importable by name, also in spawned child processes, so their folder goes on sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from working_memory_support import (
    DAY,
    T0,
    FakeClock,
    crash_between_writes_worker,
    open_core,
)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def paths(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "memory" / "working", tmp_path / "db" / "core" / "aico.db"


@pytest.fixture
def core(paths: tuple[Path, Path], master_key: MasterKey) -> Iterator[EncryptedLibSQLConnection]:
    conn = open_core(paths[1], master_key)
    yield conn
    conn.close()


@pytest.fixture
def wm(
    paths: tuple[Path, Path],
    master_key: MasterKey,
    core: EncryptedLibSQLConnection,
    clock: FakeClock,
) -> Iterator[WorkingMemoryStore]:
    store = WorkingMemoryStore(paths[0], master_key, metadata=core, clock=clock, sync=False)
    yield store
    store.close()


def row(core: EncryptedLibSQLConnection, session_id: str) -> dict[str, Any] | None:
    return core.fetch_one("SELECT * FROM session_metadata WHERE session_id = ?", (session_id,))


def test_append_keeps_the_row_in_step(
    wm: WorkingMemoryStore, core: EncryptedLibSQLConnection, clock: FakeClock
) -> None:
    wm.append("u", "s", "user", "first", conversation_id="c1")
    clock.advance(30)
    last = wm.append("u", "s", "assistant", "second")
    found = row(core, "s")
    assert found is not None
    assert found["user_id"] == "u" and found["conversation_id"] == "c1"
    assert found["message_count"] == 2
    assert found["status"] == "active"
    assert found["started_at"] == pytest.approx(T0)
    assert found["last_activity_at"] == pytest.approx(last.created_at)
    assert found["working_memory_expires_at"] == pytest.approx(last.expires_at)


def test_value_that_outlives_the_messages_extends_the_row(
    wm: WorkingMemoryStore, core: EncryptedLibSQLConnection
) -> None:
    wm.append("u", "s", "user", "hi")
    wm.put_value("s", "k", 1, ttl=3 * DAY)
    found = row(core, "s")
    assert found is not None
    assert found["working_memory_expires_at"] == pytest.approx(T0 + 3 * DAY)
    assert found["message_count"] == 1


def test_end_then_resume(
    wm: WorkingMemoryStore, core: EncryptedLibSQLConnection, clock: FakeClock
) -> None:
    wm.append("u", "s", "user", "hi")
    assert wm.end_session("s") is True
    assert row(core, "s")["status"] == "ended"  # type: ignore[index]
    assert [m.content for m in wm.recent("s")] == ["hi"]  # memory lives out its TTL
    assert wm.end_session("unknown") is False
    clock.advance(5)
    wm.append("u", "s", "user", "back again")
    assert row(core, "s")["status"] == "active"  # type: ignore[index]


def test_sweep_marks_rows_expired(
    wm: WorkingMemoryStore, core: EncryptedLibSQLConnection, clock: FakeClock
) -> None:
    wm.append("u", "old", "user", "old")
    clock.advance(12 * 3600)
    wm.append("u", "new", "user", "new")
    clock.now = T0 + DAY + 1
    assert sweep(wm) == 1
    assert row(core, "old")["status"] == "expired"  # type: ignore[index]
    assert row(core, "new")["status"] == "active"  # type: ignore[index]


def test_count_continues_after_the_working_memory_expired(
    wm: WorkingMemoryStore, core: EncryptedLibSQLConnection, clock: FakeClock
) -> None:
    for i in range(3):
        wm.append("u", "s", "user", f"m{i}")
    clock.advance(DAY + 1)
    sweep(wm)
    wm.append("u", "s", "user", "a day later")
    found = row(core, "s")
    assert found is not None
    assert (found["message_count"], found["status"]) == (4, "active")


def test_session_ids_stay_with_their_user(
    wm: WorkingMemoryStore, core: EncryptedLibSQLConnection, clock: FakeClock
) -> None:
    wm.append("alice", "s", "user", "alice's")
    clock.advance(DAY + 1)
    sweep(wm)  # LMDB forgot the session; session_metadata still knows its owner
    with pytest.raises(InvalidInput):
        wm.append("bob", "s", "user", "bob's")
    assert wm.recent("s") == []
    assert row(core, "s")["user_id"] == "alice"  # type: ignore[index]


def test_deletes_remove_rows(wm: WorkingMemoryStore, core: EncryptedLibSQLConnection) -> None:
    wm.append("alice", "a1", "user", "x")
    wm.append("alice", "a2", "user", "y")
    wm.append("bob", "b1", "user", "z")
    core.execute("UPDATE session_metadata SET summary = 'private summary' WHERE user_id = 'alice'")
    assert wm.delete_session("a1") == 1
    assert row(core, "a1") is None
    assert wm.delete_user("alice") == 1
    assert row(core, "a2") is None
    assert row(core, "b1") is not None


def test_delete_user_reaches_sessions_only_libsql_remembers(
    wm: WorkingMemoryStore, core: EncryptedLibSQLConnection, clock: FakeClock
) -> None:
    wm.append("alice", "s", "user", "x")
    clock.advance(DAY + 1)
    sweep(wm)  # the LMDB record is gone, the row stays
    wm.put_value("s", "k", "a value with no live session record")
    assert wm.delete_user("alice") == 1
    assert wm.get_value("s", "k") is None
    assert row(core, "s") is None


def test_reconcile_after_losing_the_cache(
    paths: tuple[Path, Path],
    master_key: MasterKey,
    core: EncryptedLibSQLConnection,
    clock: FakeClock,
) -> None:
    with WorkingMemoryStore(paths[0], master_key, metadata=core, clock=clock) as store:
        store.append("u", "s1", "user", "x")
        store.append("u", "s2", "user", "y")
        store.end_session("s2")
    shutil.rmtree(paths[0])  # LMDB is a cache: losing it loses nothing libSQL needs
    with WorkingMemoryStore(paths[0], master_key, metadata=core, clock=clock) as store:
        assert store.last_reconcile == {"rows_created": 0, "rows_updated": 0, "rows_expired": 1}
        assert store.recent("s1") == []
    assert row(core, "s1")["status"] == "expired"  # type: ignore[index]
    assert row(core, "s2")["status"] == "ended"  # type: ignore[index]
    assert row(core, "s1")["message_count"] == 1  # type: ignore[index]


def test_reconcile_recreates_a_missing_row(
    wm: WorkingMemoryStore, core: EncryptedLibSQLConnection, clock: FakeClock
) -> None:
    for i in range(4):
        wm.append("u", "s", "user", f"m{i}", conversation_id="c")
    core.execute("DELETE FROM session_metadata")
    assert reconcile(wm) == {"rows_created": 1, "rows_updated": 0, "rows_expired": 0}
    found = row(core, "s")
    assert found is not None
    assert (found["user_id"], found["conversation_id"], found["message_count"]) == ("u", "c", 4)
    assert reconcile(wm) == {"rows_created": 0, "rows_updated": 0, "rows_expired": 0}


def _crash(paths: tuple[Path, Path], master_key: MasterKey, session_id: str, normal: int) -> None:
    ctx = multiprocessing.get_context("spawn")
    child = ctx.Process(
        target=crash_between_writes_worker,
        args=(str(paths[0]), str(paths[1]), master_key.expose_bytes(), session_id, normal),
    )
    child.start()
    child.join(120)
    assert child.exitcode == 17, "the child did not die between the two writes"


@pytest.mark.slow
def test_kill_between_lmdb_write_and_row_update_is_repaired(
    paths: tuple[Path, Path], master_key: MasterKey, core: EncryptedLibSQLConnection
) -> None:
    # A: the row is behind (the 4th append's update is lost). B: the row was never written.
    _crash(paths, master_key, "behind", normal=3)
    _crash(paths, master_key, "missing", normal=0)
    assert row(core, "behind")["message_count"] == 3  # type: ignore[index]
    assert row(core, "missing") is None

    with WorkingMemoryStore(paths[0], master_key, metadata=core) as store:
        assert store.last_reconcile == {"rows_created": 1, "rows_updated": 1, "rows_expired": 0}
        for session_id, count in (("behind", 4), ("missing", 1)):
            messages = store.recent(session_id, 10)
            assert len(messages) == count
            found = row(core, session_id)
            assert found is not None
            assert found["message_count"] == count
            assert found["status"] == "active"
            assert found["last_activity_at"] == pytest.approx(messages[0].created_at, abs=1e-6)
            assert found["working_memory_expires_at"] == pytest.approx(
                messages[0].expires_at, abs=1e-6
            )
        assert store.reconcile() == {"rows_created": 0, "rows_updated": 0, "rows_expired": 0}
