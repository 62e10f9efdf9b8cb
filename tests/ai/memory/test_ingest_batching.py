"""Ingest batching: consolidating many sessions shares its commits, and the outbox pass after
it embeds every session's segments together; a failure between batches is replayed once.

Commits are counted by the databases' own commit counter (``PRAGMA user_version``, bumped by
every commit of the connection), so a batch is proved by what the files saw.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from coordinator_support import PASSPHRASE, USER, check_invariants, config

from aico.ai.embeddings import HashingEncoder
from aico.ai.memory import MemoryManager, _faults, consolidation
from aico.ai.memory.consolidation import Consolidator
from aico.data.repositories import UserService

SESSIONS = 30
MESSAGES = 4  # two exchanges: two segments per session


class RecordingEncoder(HashingEncoder):
    """The fake encoder, noting how many texts each ``encode`` call was given."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[int] = []

    def encode(self, texts: Sequence[str], *, batch_size: int = 32) -> Any:
        self.calls.append(len(texts))
        return super().encode(texts, batch_size=batch_size)


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def encoder() -> RecordingEncoder:
    return RecordingEncoder()


@pytest.fixture
def memory(tmp_path: Path, clock: Clock, encoder: RecordingEncoder) -> Iterator[MemoryManager]:
    manager = MemoryManager.initialize(
        tmp_path / "data", PASSPHRASE, config=config(), encoder=encoder, clock=clock
    )
    UserService(manager.store.connection("core")).create_user("One", user_id=USER)
    yield manager
    manager.close()


def talk(memory: MemoryManager, clock: Clock, sessions: int, tag: str = "s") -> dict[str, Any]:
    """``sessions`` sessions of ``MESSAGES`` messages, each ended without consolidating;
    returns what ``check_invariants`` expects of every message."""
    acked: dict[str, tuple[str, str, str]] = {}
    for s in range(sessions):
        session = f"{tag}{s}"
        for i in range(MESSAGES):
            clock.now += 1.0
            role = ("user", "assistant")[i % 2]
            marker = f"zq{tag}x{s}x{i}"
            mid = memory.store_message(USER, session, role, f"note {i} about {marker} and tea")
            acked[mid] = (session, marker, role)
        memory.end_session(session, consolidate=False)
    return acked


def commits(memory: MemoryManager) -> dict[str, int]:
    """Each database's commit counter: +1 per commit."""
    return {
        name: int(memory.store.connection(name).fetch_value("PRAGMA user_version") or 0) % 2**32
        for name in ("conversations", "core")
    }


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {name: after[name] - before[name] for name in before}


def consolidator(memory: MemoryManager) -> Consolidator:
    return Consolidator(
        memory.store.connection("conversations"),
        memory.store.connection("core"),
        memory.semantic,
        memory.clock,
    )


def sessions_to_consolidate(memory: MemoryManager) -> list[str]:
    return memory.log.sessions_to_consolidate(memory.clock())


def test_many_sessions_share_one_claim_one_segment_and_one_done_commit(
    memory: MemoryManager, clock: Clock
) -> None:
    acked = talk(memory, clock, SESSIONS)
    sessions = sessions_to_consolidate(memory)
    assert len(sessions) == SESSIONS
    before = commits(memory)
    made = consolidator(memory).consolidate_many(sessions)
    assert made == SESSIONS * MESSAGES // 2
    # Claim and done in the log, the segments in the core database: not three per session.
    assert delta(before, commits(memory)) == {"conversations": 2, "core": 1}
    log = memory.store.connection("conversations")
    done = log.fetch_all("SELECT status, count(*) AS n FROM compaction_history GROUP BY status")
    assert done == [{"status": "done", "n": SESSIONS}]  # still one claim per session
    assert sessions_to_consolidate(memory) == []
    assert consolidator(memory).consolidate_many(sessions) == 0  # exactly once
    memory.maintenance()
    check_invariants(memory, acked)


def test_batches_are_bounded_by_claimed_messages(
    memory: MemoryManager, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(consolidation, "BATCH_MESSAGES", 4 * MESSAGES)
    acked = talk(memory, clock, SESSIONS)
    before = commits(memory)
    consolidator(memory).consolidate_many(sessions_to_consolidate(memory))
    batches = -(-SESSIONS // 4)  # four sessions fill a batch
    assert delta(before, commits(memory)) == {"conversations": 2 * batches, "core": batches}
    memory.maintenance()
    check_invariants(memory, acked)


def test_maintenance_commits_and_encoder_calls_do_not_grow_with_the_sessions(
    memory: MemoryManager, clock: Clock, encoder: RecordingEncoder
) -> None:
    seen = []
    for tag, sessions in (("a", 3), ("b", SESSIONS)):
        talk(memory, clock, sessions, tag)
        encoder.calls.clear()
        before = commits(memory)
        report = memory.maintenance()
        assert report.consolidated_sessions == sessions
        assert report.outbox_remaining == 0
        # The outbox pass embeds every session's segments in one call (one outbox batch).
        assert encoder.calls == [sessions * MESSAGES // 2]
        seen.append(delta(before, commits(memory)))
    assert seen[0] == seen[1], seen


@pytest.mark.parametrize("point", ["after_claim", "after_segments"])
def test_a_failure_between_batches_is_replayed_exactly_once(
    memory: MemoryManager, clock: Clock, monkeypatch: pytest.MonkeyPatch, point: str
) -> None:
    monkeypatch.setattr(consolidation, "BATCH_MESSAGES", 4 * MESSAGES)
    acked = talk(memory, clock, SESSIONS)
    fired = {"n": 0}

    def hook(name: str) -> None:
        if name == point:
            fired["n"] += 1
            if fired["n"] == 2:  # the first batch is done, the second half way
                raise RuntimeError("injected fault")

    _faults.set_fault_hook(hook)
    try:
        with pytest.raises(RuntimeError, match="injected fault"):
            consolidator(memory).consolidate_many(sessions_to_consolidate(memory))
    finally:
        _faults.set_fault_hook(None)
    log = memory.store.connection("conversations")
    statuses = {
        r["status"]: r["n"]
        for r in log.fetch_all(
            "SELECT status, count(*) AS n FROM compaction_history GROUP BY status"
        )
    }
    assert statuses == {"done": 4, "pending": 4}
    check_invariants(memory, acked, settled=False)
    memory.repair()  # replays the pending claims
    memory.maintenance()  # consolidates the sessions never claimed
    check_invariants(memory, acked)


def test_pending_claims_are_replayed_together(memory: MemoryManager, clock: Clock) -> None:
    acked = talk(memory, clock, SESSIONS)

    def hook(name: str) -> None:
        if name == "after_claim":
            raise RuntimeError("injected fault")

    _faults.set_fault_hook(hook)
    try:
        with pytest.raises(RuntimeError):
            consolidator(memory).consolidate_many(sessions_to_consolidate(memory))
    finally:
        _faults.set_fault_hook(None)
    log = memory.store.connection("conversations")
    pending = log.fetch_value("SELECT count(*) FROM compaction_history WHERE status = 'pending'")
    assert pending == SESSIONS
    before = commits(memory)
    assert consolidator(memory).finish_pending() == SESSIONS * MESSAGES // 2
    assert delta(before, commits(memory)) == {"conversations": 1, "core": 1}
    memory.maintenance()
    check_invariants(memory, acked)


def test_index_due_once_a_full_outbox_batch_is_queued(memory: MemoryManager, clock: Clock) -> None:
    worker = consolidator(memory)
    batch = memory.semantic.config.outbox_batch_size
    assert not worker.index_due()
    for s, exchanges in enumerate((batch - 2, 1, 1)):
        for i in range(2 * exchanges):
            clock.now += 1.0
            memory.store_message(USER, f"s{s}", ("user", "assistant")[i % 2], f"line {i}")
    queued = []
    for s in range(3):
        worker.consolidate(f"s{s}")
        queued.append((memory.semantic.pending_outbox(), worker.index_due()))
    assert queued == [(batch - 2, False), (batch - 1, False), (batch, True)]
    memory.semantic.process_outbox()
    assert not worker.index_due()
