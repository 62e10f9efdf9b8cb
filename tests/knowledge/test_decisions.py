"""Decisions: active -> superseded (linked to the successor, atomically) or reverted."""

from __future__ import annotations

import pytest

from aico.data.repositories.knowledge import DecisionRepository
from aico.errors import InvalidInput, NotFound


def test_supersede_links_old_to_new_in_one_step(knowledge, maya, clock):
    first = knowledge.add_decision(
        maya,
        "Store vectors in Chroma",
        "storage",
        rationale="fast ANN",
        alternatives_considered=["FAISS", "pgvector"],
        tags=["vectors"],
    )
    assert (first.status, first.superseded_by, first.status_changed_at) == ("active", None, None)
    clock.now += 100
    old, new = knowledge.supersede_decision(maya, first.id, "Vectors in libSQL, Chroma derived")
    assert (old.id, old.status, old.superseded_by, old.status_changed_at) == (
        first.id,
        "superseded",
        new.id,
        clock.now,
    )
    assert (new.status, new.decision_type, new.made_at) == ("active", "storage", clock.now)
    assert old.title == first.title and old.rationale == "fast ANN"  # the old one is kept
    assert [d.id for d in knowledge.list("decision", maya, status="active")] == [new.id]
    assert [d.id for d in knowledge.list("decision", maya, status="superseded")] == [first.id]


def test_history_follows_the_chain_from_any_link(knowledge, maya):
    a = knowledge.add_decision(maya, "A", "api")
    _, b = knowledge.supersede_decision(maya, a.id, "B")
    _, c = knowledge.supersede_decision(maya, b.id, "C", decision_type="api-v2")
    unrelated = knowledge.add_decision(maya, "X", "api")
    for start in (a.id, b.id, c.id):
        assert [d.title for d in knowledge.decision_history(maya, start)] == ["A", "B", "C"]
    assert [d.status for d in knowledge.decision_history(maya, c.id)] == [
        "superseded",
        "superseded",
        "active",
    ]
    assert knowledge.decision_history(maya, c.id)[-1].decision_type == "api-v2"
    assert [d.id for d in knowledge.decision_history(maya, unrelated.id)] == [unrelated.id]


def test_revert_is_terminal_and_only_active_decisions_move(knowledge, maya, rows):
    a = knowledge.add_decision(maya, "A", "process")
    _, new = knowledge.supersede_decision(maya, a.id, "B")
    for call in (
        lambda: knowledge.supersede_decision(maya, a.id, "again"),
        lambda: knowledge.revert_decision(maya, a.id),
    ):
        with pytest.raises(InvalidInput) as info:
            call()
        assert str(info.value).endswith("this one is superseded")
    reverted = knowledge.revert_decision(maya, new.id)
    assert (reverted.status, reverted.superseded_by) == ("reverted", None)
    for call in (
        lambda: knowledge.supersede_decision(maya, new.id, "C"),
        lambda: knowledge.revert_decision(maya, new.id),
    ):
        with pytest.raises(InvalidInput) as info:
            call()
        assert str(info.value).endswith("this one is reverted")
    assert rows("project_decisions") == 2  # no successor was written by the refusals


def test_another_users_decision_cannot_be_moved(knowledge, maya, bob):
    mine = knowledge.add_decision(maya, "A", "process")
    with pytest.raises(NotFound):
        knowledge.supersede_decision(bob, mine.id, "hijack")
    with pytest.raises(NotFound):
        knowledge.revert_decision(bob, mine.id)
    with pytest.raises(NotFound):
        knowledge.decision_history(bob, mine.id)
    assert knowledge.get("decision", maya, mine.id).status == "active"


def test_a_failure_after_the_successor_is_written_rolls_back_both(
    knowledge, maya, rows, monkeypatch
):
    """Supersede is one transaction: if marking the old one fails, the new one is not kept."""
    a = knowledge.add_decision(maya, "A", "process")

    def lost_race(self, decision_id, user_id, status, successor):
        raise InvalidInput("only an active decision can change status; this one changed")

    monkeypatch.setattr(DecisionRepository, "_leave_active", lost_race)
    with pytest.raises(InvalidInput):
        knowledge.supersede_decision(maya, a.id, "B")
    monkeypatch.undo()
    assert rows("project_decisions") == 1
    assert knowledge.get("decision", maya, a.id).status == "active"


def test_invalid_successor_changes_nothing(knowledge, maya, rows):
    a = knowledge.add_decision(maya, "A", "process")
    with pytest.raises(InvalidInput):
        knowledge.supersede_decision(maya, a.id, "")
    with pytest.raises(InvalidInput):
        knowledge.supersede_decision(maya, a.id, "B", tags={"x": float("nan")})
    assert rows("project_decisions") == 1
    assert knowledge.get("decision", maya, a.id).status == "active"
