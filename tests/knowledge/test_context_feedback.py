"""Context relevance feedback on the items of a really assembled context."""

from __future__ import annotations

import pytest

from aico.ai.memory.knowledge import ContextItem
from aico.data.repositories import FactRepository
from aico.errors import InvalidInput, NotFound

T0 = 1_800_000_000.0


@pytest.fixture
def bundle(manager, maya, clock):
    """Maya's context: a fact, a consolidated memory of c-old, a recent turn of c-now."""
    FactRepository(manager.store.connection("core")).remember(
        maya, "Maya's sister Ingrid visits Gothenburg every June.", conversation_id=None
    )
    for role, text in (
        ("user", "Ingrid is coming to Gothenburg in June again."),
        ("assistant", "Lovely, will you take her to the archipelago?"),
    ):
        clock.now += 30
        manager.store_message(maya, "s-old", role, text, conversation_id="c-old")
    assert manager.end_session("s-old") >= 1
    clock.now += 3600
    manager.store_message(
        maya, "s-now", "user", "What should Ingrid and I do?", conversation_id="c-now"
    )
    bundle = manager.assemble_context(maya, "s-now", "Ingrid Gothenburg June")
    assert bundle.facts and bundle.memories and bundle.working
    return bundle


def test_items_of_a_bundle_and_feedback_on_each(knowledge, maya, bundle, rows):
    items = knowledge.context_items(bundle)
    assert [i.kind for i in items] == (
        ["fact"] * len(bundle.facts) + ["segment"] * len(bundle.memories) + ["message"]
    )
    fact, memory, turn = bundle.facts[0], bundle.memories[0], bundle.working[0]
    on_fact = knowledge.record_context_feedback(maya, fact, True)
    on_memory = knowledge.record_context_feedback(maya, memory, False, source="implicit")
    on_turn = knowledge.record_context_feedback(
        maya, ContextItem.of(turn).ref, True, usefulness=0.6
    )
    assert (on_fact.context_type, on_fact.item_key, on_fact.actual_usefulness) == (
        "fact",
        fact.fact_id,
        1.0,
    )
    assert on_fact.relevance_score is None and on_fact.conversation_id is None
    assert (on_memory.context_type, on_memory.item_key) == ("segment", memory.segment_id)
    assert on_memory.relevance_score == pytest.approx(memory.score)
    assert on_memory.conversation_id == "c-old" and on_memory.feedback_source == "implicit"
    assert on_memory.actual_usefulness == 0.0
    # A ref string carries no conversation; the turn's feedback names the one given, if any.
    assert (on_turn.context_type, on_turn.item_key, on_turn.actual_usefulness) == (
        "message",
        turn.id,
        0.6,
    )
    assert rows("context_relevance_feedback") == 3
    summary = {s.context_type: s for s in knowledge.feedback_summary(maya)}
    assert (summary["segment"].count, summary["segment"].useful) == (1, 0)
    assert summary["message"].mean_usefulness == pytest.approx(0.6)
    assert [f.id for f in knowledge.relevance.for_item(maya, "fact", fact.fact_id)] == [on_fact.id]


def test_another_users_items_are_not_found(knowledge, maya, bob, bundle, rows):
    for item in (bundle.facts[0], bundle.memories[0], bundle.working[0]):
        with pytest.raises(NotFound) as info:
            knowledge.record_context_feedback(bob, item, True)
        assert str(info.value).startswith("no ") and "for this user" in str(info.value)
    for ref in ("fact:nope", "segment:nope", "message:nope"):
        with pytest.raises(NotFound):
            knowledge.record_context_feedback(maya, ref, False)
    with pytest.raises(NotFound):  # the conversation must be maya's too
        knowledge.record_context_feedback(maya, bundle.facts[0], True, conversation_id="c-bob")
    with pytest.raises(InvalidInput):
        knowledge.record_context_feedback(maya, bundle.facts[0], True, usefulness=0.4)
    assert rows("context_relevance_feedback") == 0


def test_refs_as_aico_context_prints_them(knowledge, maya, bundle):
    memory, turn = bundle.memories[0], bundle.working[0]
    assert ContextItem.parse(f"memory:{memory.segment_id}") == ContextItem(
        "segment", memory.segment_id
    )
    on_turn = knowledge.record_context_feedback(maya, f"recent:{turn.id}", False)
    assert (on_turn.context_type, on_turn.item_key) == ("message", turn.id)
    for bad in ("fact", "fact:", ":x", "widget:x", "fact:\x00"):
        with pytest.raises(InvalidInput):
            ContextItem.parse(bad)


def test_file_items_are_recorded_by_path(knowledge, maya):
    feedback = knowledge.record_context_feedback(maya, "file:notes/june trip.md", True)
    assert (feedback.context_type, feedback.item_key) == ("file", "notes/june trip.md")
    assert "june" not in repr(ContextItem.parse("file:notes/june trip.md"))
    assert "abc123" in repr(ContextItem.parse("fact:abc123"))
