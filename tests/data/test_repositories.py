"""Repositories over a real initialized store: users, facts (memory album), feedback, logs."""

from __future__ import annotations

import pytest

from aico.data.repositories import FactRepository, FeedbackRepository, LogRepository, UserService
from aico.errors import InvalidInput, NotFound


@pytest.fixture
def core(store):
    return store.connection("core")


@pytest.fixture
def alice(core):
    return UserService(core).create_user("Alice", nickname="Al", preferences={"tone": "warm"})


def test_user_crud(core, alice):
    users = UserService(core)
    assert users.get_profile(alice.user_id) == alice
    assert alice.preferences == {"tone": "warm"} and alice.is_active
    updated = users.update_user(alice.user_id, display_name="Alice B.", is_active=False)
    assert updated.display_name == "Alice B." and not updated.is_active
    assert updated.updated_at >= alice.updated_at
    assert users.list_users() == []
    assert [u.user_id for u in users.list_users(include_inactive=True)] == [alice.user_id]
    users.delete_user(alice.user_id)
    with pytest.raises(NotFound):
        users.get_profile(alice.user_id)
    with pytest.raises(NotFound):
        users.delete_user(alice.user_id)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"display_name": ""}, "display_name must not be empty"),
        ({"display_name": "x" * 201}, "limit of 200"),
        ({"display_name": "ok", "user_type": "root"}, "user_type"),
        ({"display_name": "ok", "preferences": ["not", "a", "dict"]}, "mapping"),
        ({"display_name": 42}, "must be a string"),
    ],
)
def test_user_bad_input(core, kwargs, match):
    with pytest.raises(InvalidInput, match=match):
        UserService(core).create_user(**kwargs)


def test_duplicate_user_id_and_bad_update(core, alice):
    users = UserService(core)
    with pytest.raises(InvalidInput, match="already exists"):
        users.create_user("Other", user_id=alice.user_id)
    with pytest.raises(InvalidInput, match="cannot update"):
        users.update_user(alice.user_id, user_id="evil")
    with pytest.raises(NotFound):
        users.update_user("nobody", display_name="x")


def test_memory_album(core, alice):
    facts = FactRepository(core)
    first = facts.remember(alice.user_id, "Loves rainy mornings", category="likes", confidence=0.9)
    second = facts.remember(alice.user_id, "Sister is called Maya", is_favorite=True)
    assert {f.fact_id for f in facts.list(alice.user_id)} == {first.fact_id, second.fact_id}
    assert [f.fact_id for f in facts.list(alice.user_id, favorites_only=True)] == [second.fact_id]
    assert [f.fact_id for f in facts.list(alice.user_id, category="likes")] == [first.fact_id]
    changed = facts.update(first.fact_id, content="Loves rainy evenings", confidence=1)
    assert changed.content == "Loves rainy evenings" and changed.confidence == 1.0
    revisited = facts.revisit(first.fact_id)
    revisited = facts.revisit(first.fact_id)
    assert revisited.revisit_count == 2 and revisited.last_revisited_at is not None
    facts.delete(second.fact_id)
    assert facts.count(alice.user_id) == 1
    with pytest.raises(NotFound):
        facts.get(second.fact_id)


def test_fact_bad_input_and_unknown_user(core, alice):
    facts = FactRepository(core)
    with pytest.raises(InvalidInput, match="confidence"):
        facts.remember(alice.user_id, "x", confidence=1.5)
    with pytest.raises(InvalidInput, match="content must not be empty"):
        facts.remember(alice.user_id, "   ")
    with pytest.raises(NotFound, match="no user"):
        facts.remember("ghost", "text")
    with pytest.raises(InvalidInput, match="limit"):
        facts.list(alice.user_id, limit=0)


def test_deleting_a_user_cascades(core, alice):
    FactRepository(core).remember(alice.user_id, "a secret")
    FeedbackRepository(core).record(alice.user_id, "thumbs_up")
    UserService(core).delete_user(alice.user_id)
    assert core.fetch_value("SELECT count(*) FROM facts") == 0
    assert core.fetch_value("SELECT count(*) FROM feedback_events") == 0


def test_feedback(core, alice):
    fb = FeedbackRepository(core)
    fb.record(alice.user_id, "rating", rating=4, message_id="m1")
    fb.record(alice.user_id, "rating", rating=2)
    fb.record(alice.user_id, "correction", comment="It was Tuesday")
    assert len(fb.list_for_user(alice.user_id)) == 3
    summary = fb.summary(alice.user_id)
    assert summary["counts"]["rating"] == 2 and summary["mean_rating"] == 3.0
    with pytest.raises(InvalidInput, match="needs a rating"):
        fb.record(alice.user_id, "rating")
    with pytest.raises(InvalidInput, match="1 to 5"):
        fb.record(alice.user_id, "rating", rating=6)
    with pytest.raises(InvalidInput, match="event_type"):
        fb.record(alice.user_id, "meh")
    with pytest.raises(NotFound):
        fb.record("ghost", "thumbs_up")


def test_logs(core):
    logs = LogRepository(core, clock=iter([1.0, 2.0, 3.0]).__next__)
    logs.insert_log(level="info", message="started")
    logs.insert_log(level="ERROR", message="failed", extra={"code": 7}, user_id="u1")
    logs.insert_log(level="DEBUG", message="noise")
    assert [e.message for e in logs.recent()] == ["noise", "failed", "started"]
    assert [e.message for e in logs.recent(level="warning")] == ["failed"]
    assert logs.recent(level="error")[0].extra == {"code": 7}
    assert logs.purge(older_than=2.5) == 2
    assert logs.delete_for_user("u1") == 0
    with pytest.raises(InvalidInput, match="level"):
        logs.insert_log(level="LOUD", message="x")
