"""``purge_user`` / ``purge_conversation`` and the read-only refusal of every write."""

from __future__ import annotations

import pytest

from aico.ai.embeddings import HashingEncoder
from aico.ai.memory import MemoryManager
from aico.ai.memory.knowledge import KINDS, Knowledge
from aico.ai.memory.stores import open_data_store
from aico.errors import ReadOnly

T0 = 1_800_000_000.0
TABLES = (
    "project_components",
    "documentation_files",
    "project_decisions",
    "success_patterns",
    "conversation_effectiveness",
    "context_relevance_feedback",
)


def fill(manager: MemoryManager, knowledge: Knowledge, user: str, conversation: str) -> None:
    """One row of every kind for ``user`` (two for decisions and feedback)."""
    manager.store_message(user, f"s-{user}", "user", "hello", conversation_id=conversation)
    knowledge.add_component(user, "store", "module")
    knowledge.add_documentation(user, "README.md")
    decision = knowledge.add_decision(user, "A", "process")
    knowledge.supersede_decision(user, decision.id, "B")
    knowledge.add_pattern(user, "small-steps")
    knowledge.record_effectiveness(user, conversation, user_satisfaction=5)
    knowledge.record_context_feedback(user, "file:README.md", True)
    knowledge.record_context_feedback(user, "file:README.md", True, conversation_id=conversation)


def test_purge_user_deletes_everything_of_one_user_only(manager, knowledge, maya, bob, rows):
    fill(manager, knowledge, maya, "c-maya")
    fill(manager, knowledge, bob, "c-bob")
    expected = {kind: 1 for kind in KINDS} | {"decision": 2, "feedback": 2}
    assert knowledge.counts(maya) == expected == knowledge.counts(bob)
    assert knowledge.purge_user(maya) == 8
    assert knowledge.counts(maya) == {kind: 0 for kind in KINDS}
    assert knowledge.counts(bob) == expected
    assert knowledge.purge_user(maya) == 0
    # Works for a user the core database no longer has (the forget path deletes it).
    assert knowledge.purge_user("already-forgotten") == 0
    conn = manager.store.connection("knowledge")
    for table in TABLES:
        assert conn.fetch_value(f"SELECT count(*) FROM {table} WHERE user_id = 'maya'") == 0


def test_purge_conversation_deletes_what_was_recorded_from_it(manager, knowledge, maya):
    fill(manager, knowledge, maya, "c-maya")
    assert knowledge.purge_conversation(maya, "c-maya") == 2
    counts = knowledge.counts(maya)
    assert (counts["effectiveness"], counts["feedback"], counts["decision"]) == (0, 1, 2)


WRITES = [
    lambda k, u: k.add_component(u, "c", "t"),
    lambda k, u: k.add_documentation(u, "a.md"),
    lambda k, u: k.add_decision(u, "t", "d"),
    lambda k, u: k.supersede_decision(u, "some-id", "t"),
    lambda k, u: k.revert_decision(u, "some-id"),
    lambda k, u: k.add_pattern(u, "p"),
    lambda k, u: k.record_pattern_use(u, "some-id", successful=True),
    lambda k, u: k.record_effectiveness(u, "c1"),
    lambda k, u: k.record_context_feedback(u, "file:a.md", True),
    lambda k, u: k.delete("decision", u, "some-id"),
    lambda k, u: k.purge_user(u),
    lambda k, u: k.purge_conversation(u, "c1"),
]


def test_read_only_manager_refuses_every_write(manager, maya, data_dir, test_config):
    manager.knowledge.add_decision(maya, "kept", "process")
    manager.close()
    with MemoryManager.open(
        data_dir,
        passphrase="knowledge test passphrase",
        config=test_config,
        read_only=True,
        encoder=HashingEncoder(dimension=384),
    ) as reader:
        for index, write in enumerate(WRITES):
            with pytest.raises(ReadOnly) as info:
                write(reader.knowledge, maya)
            # Ours, before any store is read: not the connection's refusal of the write.
            assert str(info.value).endswith(
                "writes, and the knowledge store was opened read-only"
            ), index
        [kept] = reader.knowledge.list("decision", maya)  # reads still work
        assert kept.title == "kept"


def test_read_only_store_face_refuses_and_reads(manager, maya, data_dir, test_config):
    manager.knowledge.add_pattern(maya, "small-steps")
    manager.close()
    store = open_data_store(
        data_dir, passphrase="knowledge test passphrase", config=test_config, read_only=True
    )
    try:
        face = Knowledge.from_store(store)
        assert face.read_only
        with pytest.raises(ReadOnly) as info:
            face.add_pattern(maya, "another")
        assert str(info.value) == (
            "add_pattern writes, and the knowledge store was opened read-only"
        )
        assert [p.pattern_type for p in face.list("pattern", maya)] == ["small-steps"]
    finally:
        store.close()
