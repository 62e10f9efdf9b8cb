"""The coordinator under crashes: SIGKILL at random moments, a kill at every commit point,
and a real disk-full run. After each, reopening makes every store agree with the log.

Each child stores messages in a loop and prints an id only after ``store_message``
returned; the parent then reopens the data dir and checks (``check_invariants``): no
acknowledged message missing from the log, from BM25 and hybrid search after consolidation,
or from working memory within its TTL; no phantom; no message in two segments or in none;
FTS5 and Chroma hold exactly the segments; ``session_metadata`` equals the log.
"""

from __future__ import annotations

import contextlib
import random
from pathlib import Path

import pytest
from coordinator_support import (
    Acks,
    check_invariants,
    create,
    open_manager,
    run_writer,
    settle,
)

from aico.ai.memory import _faults

pytestmark = pytest.mark.slow


def _reopen_and_check(data_dir: Path, acks: Acks, kind: str = "fake", cache: str = "") -> dict:
    with open_manager(data_dir, kind, cache or None) as memory:
        # Before settling: what a crash left is already consistent (nothing settled yet).
        check_invariants(memory, acks.messages, settled=False)
        settle(memory)
        return check_invariants(memory, acks.messages)


def test_sigkill_loop(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    create(data_dir)
    acks = Acks()
    rng = random.Random(11)
    for round_ in range(12):
        lines, code = run_writer(data_dir, f"r{round_}", kill_after=rng.uniform(0.3, 1.5))
        assert code == -9, lines[-5:]
        acks.read(lines)
    assert len(acks.messages) > 50
    report = _reopen_and_check(data_dir, acks)
    assert report["acked"] == len(acks.messages)


def test_sigkill_loop_with_the_real_encoder(
    tmp_path: Path, onnx_encoder, embedding_cache_dir
) -> None:
    data_dir = tmp_path / "data"
    cache = str(embedding_cache_dir)
    create(data_dir, "real", cache)
    acks = Acks()
    rng = random.Random(5)
    for round_ in range(10):
        lines, code = run_writer(
            data_dir, f"e{round_}", kill_after=rng.uniform(1.0, 3.0), kind="real", cache=cache
        )
        assert code == -9, lines[-5:]
        acks.read(lines)
    assert len(acks.messages) > 20
    _reopen_and_check(data_dir, acks, "real", cache)


@pytest.mark.parametrize(
    "point",
    [p for p in _faults.POINTS if not p.startswith("after_forget")],
)
def test_kill_at_each_commit_point(tmp_path: Path, point: str) -> None:
    data_dir = tmp_path / "data"
    create(data_dir)
    acks = Acks()
    for after in (1, 3):
        lines, code = run_writer(
            data_dir,
            f"{point[:8]}{after}",
            kill_after=None,
            fault_point=point,
            env={"AICO_FAULT_AFTER": str(after)},
            timeout=60,
        )
        assert code == 17, f"the fault point {point} was never reached: {lines[-3:]}"
        acks.read(lines)
    _reopen_and_check(data_dir, acks)


@pytest.mark.parametrize("point", list(_faults.POINTS))
def test_a_raise_at_each_commit_point_is_repaired(tmp_path: Path, point: str) -> None:
    """In process: the hook raises once; the manager stays usable and repairs itself."""
    data_dir = tmp_path / "data"
    create(data_dir)
    acks = Acks()
    fired = {"n": 0}

    def hook(name: str) -> None:
        if name == point and fired["n"] == 0:
            fired["n"] += 1
            raise RuntimeError("injected fault")

    with open_manager(data_dir) as memory:
        _faults.set_fault_hook(hook)
        try:
            for i in range(12):
                try:
                    mid = memory.store_message("user-1", f"s{i // 4}", "user", f"fact zqraise{i}")
                    acks.messages[mid] = (f"s{i // 4}", f"zqraise{i}", "user")
                except RuntimeError:
                    pass  # the log may hold it: not acknowledged, not lost either
                if i % 4 == 3:
                    with contextlib.suppress(RuntimeError):
                        memory.end_session(f"s{i // 4}")
            if point.startswith("after_forget"):
                victim = memory.store_message("user-2", "gone", "user", "zqvictim words")
                memory.end_session("gone")
                with contextlib.suppress(RuntimeError):
                    memory.forget("user-2", message_id=victim)
        finally:
            _faults.set_fault_hook(None)
        assert fired["n"] == 1, f"{point} was never reached"
        memory.repair()
        settle(memory)
        check_invariants(memory, acks.messages)
        assert memory.search("user-2", "zqvictim", 5, mode="bm25") == []


def test_disk_full_keeps_every_acknowledged_message(tmp_path: Path) -> None:
    """``ulimit -f``: every file may grow only a little; writes then fail with EFBIG."""
    data_dir = tmp_path / "data"
    create(data_dir)
    with open_manager(data_dir) as memory:  # warm the files up to their working size
        for i in range(20):
            memory.store_message("user-1", "warm", "user", f"warm-up {i}")
        memory.end_session("warm")
    biggest = max(p.stat().st_size for p in data_dir.rglob("*") if p.is_file())
    acks = Acks()
    lines, code = run_writer(
        data_dir, "full", kill_after=None, fsize_limit=biggest + 64 * 1024, timeout=120
    )
    acks.read(lines)
    assert code not in (0, -9), "the writer never hit the file-size limit"
    assert acks.messages, "nothing was stored before the disk filled"
    _reopen_and_check(data_dir, acks)
