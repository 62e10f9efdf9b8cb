"""Conversation effectiveness measured from a generated conversation in the message log."""

from __future__ import annotations

import pytest

from aico.data.repositories.conversations import LoggedMessage
from aico.data.repositories.knowledge import measure
from aico.errors import InvalidInput, NotFound

T0 = 1_800_000_000.0  # the clock fixture's start (conftest.T0)

# (role, seconds after T0, tokens, cost). Hand-computed below.
SCRIPT = [
    ("user", 0, 12, 0.0),
    ("assistant", 30, 40, 0.002),
    ("user", 95, 8, 0.0),
    ("user", 100, None, 0.0),  # same turn as the previous user line; tokens estimated
    ("assistant", 160, 55, 0.003),
    ("tool", 170, None, 0.0),
    ("assistant", 200, 20, 0.001),
    ("user", 430, 5, 0.0),
]
# message_count 8; user turns: runs of user lines = [0], [95,100], [430] -> 3
# duration 430 s -> 7.1666 min -> 7; cost 0.006; tokens 12+40+8+55+20+5 = 140, plus the
# store's estimate (len/4, rounded up) for the two lines given none: "user line at 100" 4,
# "tool line at 170" 4 -> 148


def talk(manager, user, conversation, session, script=SCRIPT):
    for role, at, tokens, cost in script:
        manager.store_message(
            user,
            session,
            role,
            f"{role} line at {at}",
            conversation_id=conversation,
            timestamp=T0 + at,
            tokens=tokens,
            cost=cost,
        )


def test_metrics_come_from_the_log(manager, knowledge, maya, clock):
    talk(manager, maya, "c1", "s1")
    clock.now = T0 + 1000
    record = knowledge.record_effectiveness(
        maya,
        "c1",
        user_satisfaction=4,
        success_score=0.75,
        task_type="planning",
        key_factors={"clear goal": True},
        lessons_learned="ask about dates early",
    )
    assert (record.message_count, record.turn_count) == (8, 3)
    assert record.duration_seconds == 430.0 and record.completion_time_minutes == 7
    assert record.tokens_used == 148 and record.cost == pytest.approx(0.006)
    assert (record.user_satisfaction, record.success_score, record.task_type) == (
        4,
        0.75,
        "planning",
    )
    assert record.key_factors == {"clear goal": True} and record.recorded_at == T0 + 1000
    assert knowledge.effectiveness.for_conversation(maya, "c1") == record


def test_recording_again_remeasures_and_keeps_one_row(manager, knowledge, maya, rows, clock):
    talk(manager, maya, "c1", "s1", SCRIPT[:2])
    first = knowledge.record_effectiveness(maya, "c1")
    assert (first.message_count, first.turn_count, first.duration_seconds) == (2, 1, 30.0)
    assert first.user_satisfaction is None and first.tokens_used == 52
    talk(manager, maya, "c1", "s1", SCRIPT[2:])
    clock.now += 5
    second = knowledge.record_effectiveness(maya, "c1", user_satisfaction=2)
    assert second.id == first.id and rows("conversation_effectiveness") == 1
    assert (second.message_count, second.turn_count, second.user_satisfaction) == (8, 3, 2)


def test_measure_counts_unknown_tokens_as_unknown_and_rounds_minutes():
    def msg(role, at, tokens):
        return LoggedMessage(f"m{at}", "u", "s", "c", role, "x", T0 + at, tokens=tokens)

    unknown = measure([msg("assistant", 89, None), msg("user", 0, None)])  # any order
    assert unknown.tokens_used is None and unknown.completion_time_minutes == 1  # 89 s
    assert (unknown.turn_count, unknown.user_messages, unknown.assistant_messages) == (1, 1, 1)
    assert measure([msg("user", 0, 3), msg("user", 90, None)]).completion_time_minutes == 2
    assert measure([msg("user", 0, 3), msg("user", 89.9, None)]).tokens_used == 3


def test_conversation_must_be_the_users(manager, knowledge, maya, bob, rows):
    talk(manager, maya, "c1", "s1", SCRIPT[:2])
    for user, conversation in ((bob, "c1"), (maya, "c-missing")):
        with pytest.raises(NotFound) as info:
            knowledge.record_effectiveness(user, conversation)
        assert str(info.value) == "no conversation with this conversation_id for this user"
    with pytest.raises(InvalidInput):
        knowledge.record_effectiveness(maya, "c1", user_satisfaction=5.0)
    assert rows("conversation_effectiveness") == 0
