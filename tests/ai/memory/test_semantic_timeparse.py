"""Relative time in queries: windows resolved against the query's time, a soft boost.

dateparser is what reads the expressions; every window below is checked at a fixed query
time (Wednesday 2026-06-17 12:00 UTC) so the result is the same on every day and machine.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from semantic_support import T0

from aico.ai.memory.semantic import Message, SemanticConfig
from aico.ai.memory.semantic.timeparse import TimeWindow, available, find_window, time_boost
from aico.errors import InvalidInput

pytest.importorskip("dateparser")

NOW = datetime(2026, 6, 17, 12, 0, tzinfo=UTC)  # a Wednesday


def day(y: int, m: int, d: int) -> float:
    return datetime(y, m, d, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("query", "start", "end", "period"),
    [
        ("what did I cook yesterday", day(2026, 6, 16), day(2026, 6, 17), "day"),
        ("where was I last weekend", day(2026, 6, 13), day(2026, 6, 15), "weekend"),
        ("anything from last week?", day(2026, 6, 8), day(2026, 6, 15), "week"),
        ("who did I meet on Friday", day(2026, 6, 12), day(2026, 6, 13), "day"),
        ("what did I say 3 days ago", day(2026, 6, 14), day(2026, 6, 15), "day"),
        ("who was at tennis in March", day(2026, 3, 1), day(2026, 4, 1), "month"),
        ("what did I buy last year", day(2025, 1, 1), day(2026, 1, 1), "year"),
        ("my plans in 2024", day(2024, 1, 1), day(2025, 1, 1), "year"),
    ],
)
def test_calendar_windows(query: str, start: float, end: float, period: str) -> None:
    assert find_window(query, NOW) == TimeWindow(start, end, period)


def test_ago_is_centred_on_the_date() -> None:
    window = find_window("what did I eat two weeks ago", NOW)
    assert window is not None and window.period == "week"
    centre = (NOW - timedelta(days=14)).timestamp()
    assert window.start == pytest.approx(centre - 3.5 * 86400)
    assert window.end == pytest.approx(centre + 3.5 * 86400)


def test_this_weekend_on_a_saturday_is_the_current_one() -> None:
    saturday = datetime(2026, 6, 20, 10, 0, tzinfo=UTC)
    assert find_window("what did we do this weekend", saturday) == TimeWindow(
        day(2026, 6, 20), day(2026, 6, 22), "weekend"
    )
    assert find_window("what did we do last weekend", saturday) == TimeWindow(
        day(2026, 6, 13), day(2026, 6, 15), "weekend"
    )


@pytest.mark.parametrize(
    "query",
    ["how do I commute to work", "may I ask which car I drive", "locker code 48213", "", "week"],
)
def test_no_expression_no_window(query: str) -> None:
    assert find_window(query, NOW) is None


def test_unix_seconds_are_read_in_local_time() -> None:
    local = datetime(2026, 6, 17, 12, 0).astimezone()
    window = find_window("yesterday", local.timestamp())
    assert window is not None
    assert datetime.fromtimestamp(window.start).astimezone() == datetime(2026, 6, 16).astimezone()


def test_the_boost_is_one_inside_and_decays_outside() -> None:
    window = TimeWindow(day(2026, 6, 16), day(2026, 6, 17), "day")
    inside = time_boost(window, day(2026, 6, 16) + 3600, day(2026, 6, 16) + 7200)
    overlapping = time_boost(window, day(2026, 6, 15), day(2026, 6, 16) + 1)
    near = time_boost(window, day(2026, 6, 17) + 6 * 3600, day(2026, 6, 17) + 6 * 3600)
    far = time_boost(window, day(2026, 6, 19), day(2026, 6, 19))
    assert inside == overlapping == 1.0
    assert near == pytest.approx(2.718281828**-1)  # six hours out = a quarter of the day
    assert 0.0 < far < near < 1.0


def test_search_boosts_the_segment_in_the_window_and_filters_nothing(sem_open) -> None:
    assert available()
    store = sem_open()
    now = datetime.fromtimestamp(T0, UTC) + timedelta(days=30)
    ids = []
    for days_back in (1, 9, 20):  # the same words on three days
        when = (now - timedelta(days=days_back)).timestamp()
        ids += store.add_messages("alice", [Message("user", "I went to the dentist.", when)])
    query = "what happened at the dentist yesterday"
    hits = store.search("alice", query, now=now)
    assert hits[0].segment_id == ids[0]
    assert hits[0].time_boost == 1.0 and all(h.time_boost < 0.01 for h in hits[1:])
    assert {h.segment_id for h in hits} == set(ids)  # a boost, never a filter
    assert hits[0].time_window == find_window(query, now)
    assert all(h.time_window is hits[0].time_window for h in hits)
    # Without the query's time, or with the boost off, nothing is resolved.
    assert all(h.time_window is None and h.time_boost == 0.0 for h in store.search("alice", query))
    off = sem_open(config=SemanticConfig.from_mapping({"fusion_time_weight": 0.0}))
    assert all(h.time_window is None for h in off.search("alice", query, now=now))


def test_the_window_brings_in_segments_neither_list_held(sem_open) -> None:
    store = sem_open(config=SemanticConfig(candidates=2, overfetch=1))
    now = datetime.fromtimestamp(T0, UTC) + timedelta(days=30)
    text = "I had a dentist visit."
    for i in range(6):
        when = (now - timedelta(days=40 + i)).timestamp()
        store.add_messages("alice", [Message("user", text, when)])
    (recent,) = store.add_messages(
        "alice", [Message("user", text, (now - timedelta(days=1)).timestamp())]
    )
    query = "dentist visit yesterday"
    # Each retriever keeps max(candidates, k * overfetch) = 3 of seven equal segments.
    assert recent not in {h.segment_id for h in store.search("alice", query, k=3)}
    hits = store.search("alice", query, k=3, now=now)
    assert hits[0].segment_id == recent and hits[0].time_boost == 1.0


def test_now_is_validated(sem_store) -> None:
    with pytest.raises(InvalidInput):
        sem_store.search("alice", "yesterday", now=float("nan"))
    with pytest.raises(InvalidInput):
        sem_store.search("alice", "yesterday", now="yesterday")  # type: ignore[arg-type]
