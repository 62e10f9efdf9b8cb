"""Every documented view against values computed by hand from the generated history."""

from __future__ import annotations

import json
import statistics
import time
from collections import Counter, defaultdict
from datetime import UTC, date, datetime

import numpy as np
import pytest
from history import DAY, START, USERS, write_history

from aico.ai.memory import MemoryManager
from aico.analytics import VIEWS
from aico.data.repositories import FactRepository, FeedbackRepository, TaskRepository
from aico.errors import InvalidInput, NotFound


def _day(ts: float) -> date:
    return datetime.fromtimestamp(ts, UTC).date()


def _table(rows: list[dict], keys: tuple[str, ...], value: str) -> dict:
    return {tuple(r[k] for k in keys): r[value] for r in rows}


def test_activity_usage_and_sessions(memory: MemoryManager) -> None:
    history = write_history(memory, USERS, messages=1_203, per_session=7, days=20)
    report = memory.analytics.export()
    assert report.added["messages"] == 1_203
    a = memory.analytics

    daily = Counter((m["user"], _day(m["ts"]), m["role"]) for m in history.messages)
    got = _table(a.view("activity_daily").dicts(), ("user_id", "day", "role"), "messages")
    assert got == dict(daily)

    weekly: Counter[tuple[str, date, str]] = Counter()
    for m in history.messages:
        d = _day(m["ts"])
        weekly[(m["user"], date.fromordinal(d.toordinal() - d.weekday()), m["role"])] += 1
    got = _table(a.view("activity_weekly").dicts(), ("user_id", "week", "role"), "messages")
    assert got == dict(weekly)

    sessions = Counter((s["user"], _day(s["started"])) for s in history.sessions.values())
    got = _table(a.view("sessions_daily").dicts(), ("user_id", "day"), "sessions")
    assert got == dict(sessions)

    heat = Counter(
        (m["user"], _day(m["ts"]).isoweekday(), datetime.fromtimestamp(m["ts"], UTC).hour)
        for m in history.messages
    )
    got = _table(a.view("hour_heatmap").dicts(), ("user_id", "weekday", "hour"), "messages")
    assert got == dict(heat)

    lengths = Counter(
        (m["user"], m["conversation"] or f"session:{m['session']}") for m in history.messages
    )
    got = _table(a.view("conversation_lengths").dicts(), ("user_id", "conversation"), "messages")
    assert got == dict(lengths)

    per_model: dict[tuple[str, str, str], list[float]] = defaultdict(lambda: [0, 0, 0.0])
    for conv in history.conversations.values():
        key = (conv["user"], conv["provider"], conv["model"] or "(none)")
        per_model[key][0] += 1
        per_model[key][1] += conv["tokens"]
        per_model[key][2] += conv["cost"]
    rows = a.view("usage_by_model").dicts()
    assert {(r["user_id"], r["provider"], r["model"]): r["conversations"] for r in rows} == {
        k: v[0] for k, v in per_model.items()
    }
    for r in rows:
        want = per_model[(r["user_id"], r["provider"], r["model"])]
        assert r["tokens"] == want[1]
        assert r["cost"] == pytest.approx(want[2])

    cost_day: dict[tuple[date, str], float] = defaultdict(float)
    for m in history.messages:
        provider = m["provider"] if m["conversation"] else "(none)"
        cost_day[(_day(m["ts"]), provider)] += m["cost"]
    got_cost: dict[tuple[date, str], float] = defaultdict(float)
    for r in a.view("usage_daily").dicts():
        got_cost[(r["day"], r["provider"])] += r["cost"]
    assert got_cost.keys() == cost_day.keys()
    for key, want in cost_day.items():
        assert got_cost[key] == pytest.approx(want)

    ana = a.view("activity_daily", user_id="ana").dicts()
    assert {r["user_id"] for r in ana} == {"ana"}
    assert sum(r["messages"] for r in ana) == sum(m["user"] == "ana" for m in history.messages)


def test_memory_views(memory: MemoryManager) -> None:
    clock = [START]
    a = memory.analytics
    a._clock = lambda: clock[0]
    write_history(memory, USERS, messages=40, per_session=4, days=2)
    core = memory.store.connection("core")
    facts = FactRepository(core, clock=lambda: clock[0])
    kept = facts.remember("ana", "ana likes tea", category="taste")
    gone = facts.remember("ana", "ana lives in Oslo", category="place")
    facts.remember("ben", "ben plays chess", category="hobby")
    feedback = FeedbackRepository(core, clock=lambda: clock[0])
    for rating in (5, 3, 4):
        feedback.record("ana", "rating", rating=rating)
    feedback.record("ben", "thumbs_up")
    a.export()

    clock[0] = START + DAY
    facts.revisit(kept.fact_id)
    facts.revisit(kept.fact_id)
    facts.delete(gone.fact_id)
    a.export()

    day0, day1 = _day(START), _day(START + DAY)
    got = {
        (r["user_id"], r["day"]): (r["added"], r["revisited"], r["deleted"])
        for r in a.view("facts_daily").dicts()
    }
    assert got == {("ana", day0): (2, 0, 0), ("ana", day1): (0, 2, 1), ("ben", day0): (1, 0, 0)}

    fb = {(r["user_id"], r["event_type"]): r for r in a.view("feedback_daily").dicts()}
    assert fb[("ana", "rating")]["events"] == 3
    assert fb[("ana", "rating")]["avg_rating"] == pytest.approx(4.0)
    assert fb[("ben", "thumbs_up")]["events"] == 1

    # Consolidation: real end_session with the fake encoder; savings from the log's rows.
    session = next(iter(memory.log.sessions_of_user("cy")))
    memory.end_session(session)
    a.export()
    done = memory.store.connection("conversations").fetch_all(
        "SELECT original_message_count AS n, tokens_saved AS t FROM compaction_history "
        "WHERE status = 'done'"
    )
    rows = a.view("consolidation").dicts()
    assert sum(r["consolidations"] for r in rows) == len(done) == 1
    assert sum(r["messages_in"] for r in rows) == sum(d["n"] for d in done)
    assert sum(r["tokens_saved"] for r in rows) == sum(d["t"] for d in done)


def test_retrievals_and_latency(memory: MemoryManager) -> None:
    write_history(memory, ["ana"], messages=12, per_session=6, days=1)
    for session in memory.log.sessions_of_user("ana"):
        memory.end_session(session)
    FactRepository(memory.store.connection("core")).remember("ana", "message facts", category="c")
    a = memory.analytics
    latencies = [0.004, 0.010, 0.002, 0.030, 0.008]
    seen: Counter[str] = Counter()
    fact_seen = 0
    for latency in latencies:
        before = _events(memory)
        bundle = memory.assemble_context("ana", "q-session", "message of h")
        if _events(memory) > before:  # assemble_context records itself once wired
            _drop_last_event(memory)
        a.record_context("ana", bundle, latency)
        seen.update(h.segment_id for h in bundle.memories)
        fact_seen += len(bundle.facts)
    assert seen, "the history must give the search something to find"
    a.export()
    got = {r["segment_id"]: r["retrievals"] for r in a.view("retrieved_segments").dicts()}
    assert got == dict(seen)
    facts = a.view("retrieved_facts").dicts()
    assert sum(r["retrievals"] for r in facts) == fact_seen
    (lat,) = a.view("search_latency").dicts()
    ms = [x * 1000 for x in latencies]
    assert lat["contexts"] == len(latencies)
    assert lat["p50_ms"] == pytest.approx(statistics.median(ms))
    assert lat["p95_ms"] == pytest.approx(float(np.percentile(ms, 95)))
    (ctx,) = a.view("contexts_daily").dicts()
    assert ctx["contexts"] == len(latencies)
    assert ctx["memories"] == sum(seen.values())


def _events(memory: MemoryManager) -> int:
    core = memory.store.connection("core")
    if not core.fetch_value("SELECT 1 FROM sqlite_master WHERE name = 'analytics_context_events'"):
        return 0
    return int(core.fetch_value("SELECT count(*) FROM analytics_context_events"))


def _drop_last_event(memory: MemoryManager) -> None:
    """Keep only the events with the latencies this test chose."""
    core = memory.store.connection("core")
    core.execute(
        "DELETE FROM analytics_context_events WHERE id = "
        "(SELECT max(id) FROM analytics_context_events)"
    )


def test_system_views(memory: MemoryManager) -> None:
    write_history(memory, ["ana"], messages=10, days=1)
    tasks = TaskRepository(memory.store.connection("core"))
    job = tasks.schedule("maintenance", "maintenance", every=3600)
    now = time.time()
    tasks.record_run(
        job, status="completed", started_at=now - 2.5, finished_at=now, result={"swept": 3}
    )
    tasks.record_run(job, status="failed", started_at=now - 1, finished_at=now, error="boom")
    a = memory.analytics
    a.export()
    a.export()
    runs = a.view("task_runs").dicts()
    assert sorted((r["status"], r["duration_s"]) for r in runs) == [
        ("completed", pytest.approx(2.5)),
        ("failed", pytest.approx(1.0)),
    ]
    results = [json.loads(r["result"]) for r in runs if r["result"] is not None]
    assert results == [{"swept": 3}]
    sizes = a.view("store_sizes").dicts()
    assert len({r["measured"] for r in sizes}) == 2  # one snapshot per export
    libsql = [r["bytes"] for r in sizes if r["store"] == "libsql"]
    want = sum(p.stat().st_size for p in memory.store.layout.root.glob("db/**/*.db"))
    assert 0 < libsql[-1] <= want * 2
    assert len(a.view("exports").dicts()) == 2


def test_every_view_runs_and_unknown_ones_are_refused(memory: MemoryManager) -> None:
    with pytest.raises(NotFound):
        memory.analytics.view("activity_daily")  # nothing exported yet
    write_history(memory, ["ana"], messages=5, days=1)
    memory.analytics.export()
    for view in VIEWS:
        memory.analytics.view(view.name)
    with pytest.raises(InvalidInput):
        memory.analytics.view("messages; drop table a.messages")
