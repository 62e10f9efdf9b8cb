"""Operational care: map growth, several processes on one environment, fork safety."""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
from pathlib import Path

import pytest

from aico.ai.memory.working import WorkingMemoryStore, status
from aico.security import MasterKey

# The suite imports test modules with importlib (no sys.path entry); the helpers must be
# importable by name, also in spawned child processes, so their folder goes on sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from working_memory_support import (
    FakeClock,
    append_and_read_worker,
    grow_worker,
    reopen_worker,
)

TINY_MAP = 64 * 1024


def test_map_grows_from_a_tiny_size(tmp_path: Path, master_key: MasterKey) -> None:
    path = tmp_path / "wm"
    clock = FakeClock()
    with WorkingMemoryStore(path, master_key, clock=clock, map_size=TINY_MAP, sync=False) as store:
        start = status(store)["map_size"]
        for i in range(3000):
            clock.advance(0.001)
            store.append("u", f"s{i % 7}", "user", f"message {i} " + "x" * 200)
            if i % 500 == 0:
                store.put_value(f"s{i % 7}", f"k{i}", {"i": i, "pad": "y" * 300})
        info = status(store)
        assert info["map_size"] > start
        assert info["messages"] == 3000
        total = sum(len(store.recent(f"s{j}", 10_000)) for j in range(7))
        assert total == 3000
        assert store.get_value("s0", "k0") == {"i": 0, "pad": "y" * 300}
    # Reopened with the tiny size again: the map covers the data and grows on demand.
    with WorkingMemoryStore(path, master_key, clock=clock, map_size=TINY_MAP) as store:
        assert len(store.recent("s3", 10_000)) == len(range(3, 3000, 7))
        for i in range(200):
            store.append("u", "s3", "user", "y" * 2000 + str(i))
        assert status(store)["messages"] == 3200


def test_threads_share_the_store_while_the_map_grows(tmp_path: Path, master_key: MasterKey) -> None:
    errors: list[BaseException] = []
    with WorkingMemoryStore(tmp_path / "wm", master_key, map_size=TINY_MAP, sync=False) as store:

        def work(tag: str) -> None:
            try:
                for i in range(150):
                    store.append("u", tag, "user", f"{tag} {i} " + "x" * 400)
                    assert store.recent(tag, 5)[0].content.startswith(f"{tag} {i} ")
                    store.recent(f"t{(int(tag[1:]) + 1) % 4}", 20)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(f"t{n}",)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert status(store)["map_size"] > TINY_MAP
        assert [len(store.recent(f"t{n}", 1000)) for n in range(4)] == [150] * 4


def test_map_size_limit_is_a_typed_error(tmp_path: Path, master_key: MasterKey) -> None:
    from aico.errors import WorkingMemoryError

    with WorkingMemoryStore(
        tmp_path / "wm", master_key, map_size=TINY_MAP, max_map_size=TINY_MAP * 2, sync=False
    ) as store:
        with pytest.raises(WorkingMemoryError, match="maximum map size"):
            for i in range(10_000):
                store.append("u", "s", "user", "x" * 500 + str(i))
        assert store.recent("s", 1)  # what fitted is still readable


@pytest.mark.slow
def test_two_processes_append_and_read_concurrently(tmp_path: Path, master_key: MasterKey) -> None:
    lmdb_path = tmp_path / "wm"
    db_path = tmp_path / "aico.db"
    count = 300
    ctx = multiprocessing.get_context("spawn")
    children = []
    for tag in ("alpha", "beta"):
        error_file = tmp_path / f"{tag}.err"
        child = ctx.Process(
            target=append_and_read_worker,
            args=(
                str(lmdb_path),
                str(db_path),
                master_key.expose_bytes(),
                "shared-session",
                tag,
                count,
                TINY_MAP,  # both processes grow the map while the other is using it
                str(error_file),
            ),
        )
        children.append((child, error_file))
    for child, _ in children:
        child.start()
    for child, error_file in children:
        child.join(300)
        details = error_file.read_text() if error_file.exists() else ""
        assert child.exitcode == 0, details

    with WorkingMemoryStore(lmdb_path, master_key) as store:
        messages = store.recent("shared-session", 10 * count, newest_first=False)
        assert len(messages) == 2 * count
        assert len({m.id for m in messages}) == 2 * count
        for tag in ("alpha", "beta"):
            mine = [m.content.split()[0] for m in messages if m.content.startswith(tag)]
            assert mine == [f"{tag}-{i:05d}" for i in range(count)]  # each in its own order
        created = [m.created_at for m in messages]
        assert created == sorted(created)


@pytest.mark.slow
def test_opening_while_another_process_grows_the_map(tmp_path: Path, master_key: MasterKey) -> None:
    path = tmp_path / "wm"
    WorkingMemoryStore(path, master_key, map_size=TINY_MAP, sync=False).close()
    ctx = multiprocessing.get_context("spawn")
    jobs = [(grow_worker, 6000), (reopen_worker, 150)]
    children = []
    for n, (target, count) in enumerate(jobs):
        error_file = tmp_path / f"{n}.err"
        key = master_key.expose_bytes()
        child = ctx.Process(target=target, args=(str(path), key, count, str(error_file)))
        child.start()
        children.append((child, error_file))
    for child, error_file in children:
        child.join(300)
        details = error_file.read_text() if error_file.exists() else ""
        assert child.exitcode == 0, details


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork() is POSIX-only")
def test_forked_child_reopens_instead_of_sharing(tmp_path: Path, master_key: MasterKey) -> None:
    path = tmp_path / "wm"
    store = WorkingMemoryStore(path, master_key, sync=False)
    store.append("u", "s", "user", "from the parent")
    parent_env = store._shared
    pid = os.fork()
    if pid == 0:  # child: must not touch the parent's handle; the store reopens by itself
        code = 1
        try:
            store.append("u", "s", "user", "from the child")
            ok = store._shared is not parent_env and len(store.recent("s")) == 2
            store.close()
            code = 0 if ok else 2
        finally:
            os._exit(code)
    for _ in range(200):  # the parent keeps working while the child runs
        assert store.recent("s", 1)
    _, wait_status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(wait_status) == 0
    assert store._shared is parent_env
    assert [m.content for m in store.recent("s", newest_first=False)] == [
        "from the parent",
        "from the child",
    ]
    store.append("u", "s", "user", "parent again")
    assert len(store.recent("s")) == 3
    store.close()
