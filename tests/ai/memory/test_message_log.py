"""The conversations database as the one message log: the specification's columns in use."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from coordinator_support import OTHER, USER, create, open_manager

from aico.data.repositories.conversations import Attachment, ConversationLog
from aico.errors import InvalidInput, NotFound


@pytest.fixture
def memory(tmp_path: Path):
    create(tmp_path / "data")
    m = open_manager(tmp_path / "data")
    yield m
    m.close()


def test_conversation_and_message_columns_are_filled(memory) -> None:
    log = memory.store.connection("conversations")
    first = memory.store_message(
        USER,
        "s1",
        "user",
        "What should I cook tonight?",
        conversation_id="c1",
        title="Dinner ideas",
        provider="local-llm",
        model="tiny-7b",
        tokens=7,
        cost=0.25,
        metadata={"lang": "en"},
    )
    memory.store_message(
        USER,
        "s1",
        "assistant",
        "A lentil soup.",
        conversation_id="c1",
        tokens=5,
        cost=0.5,
        tool_calls=[{"name": "recipes", "args": {"q": "lentil"}}],
        tool_results=[{"ok": True}],
    )
    conv = log.fetch_one("SELECT * FROM conversations WHERE id = 'c1'")
    assert conv["title"] == "Dinner ideas" and conv["provider"] == "local-llm"
    assert conv["model"] == "tiny-7b" and conv["user_id"] == USER
    assert conv["total_tokens"] == 12 and conv["total_cost"] == pytest.approx(0.75)
    assert conv["status"] == "active"
    row = log.fetch_one("SELECT * FROM messages WHERE id = ?", (first,))
    assert row["role"] == "user" and row["tokens"] == 7 and row["cost"] == 0.25
    assert json.loads(row["metadata"]) == {"lang": "en"} and row["session_id"] == "s1"
    reply = ConversationLog(log).messages_of_session("s1")[1]
    assert reply.tool_calls == [{"name": "recipes", "args": {"q": "lentil"}}]
    assert reply.tool_results == [{"ok": True}]
    session = log.fetch_one("SELECT * FROM session_metadata WHERE session_id = 's1'")
    assert session["message_count"] == 2 and session["conversation_id"] == "c1"


def test_attachments_are_stored_encrypted_with_the_message(memory, tmp_path: Path) -> None:
    secret = b"zqattachment-bytes \x00\x01\x02 binary"
    mid = memory.store_message(
        USER, "s", "user", "see the file", attachments=[Attachment("file", secret, "notes.txt")]
    )
    log = memory.store.connection("conversations")
    got = ConversationLog(log).attachments(mid)
    assert [(a.type, a.content, a.path) for a in got] == [("file", secret, "notes.txt")]
    row = log.fetch_one("SELECT size_bytes, content_hash FROM message_attachments")
    assert row["size_bytes"] == len(secret) and len(row["content_hash"]) == 64
    pages = b"".join(r["data"] for r in log.fetch_all("SELECT data FROM sqlite_dbpage"))
    assert b"zqattachment-bytes" in pages  # there, decrypted ...
    log.checkpoint("TRUNCATE")
    raw = b"".join(p.read_bytes() for p in (tmp_path / "data").rglob("*") if p.is_file())
    assert b"zqattachment-bytes" not in raw  # ... and never on disk in the clear
    with pytest.raises(InvalidInput):
        Attachment("video", b"x")


def test_compaction_history_is_written_at_every_consolidation(memory) -> None:
    ids = [
        memory.store_message(USER, "s", role, text)
        for role, text in [("user", "one two three"), ("assistant", "four five"), ("user", "six")]
    ]
    assert memory.end_session("s") == 2
    log = memory.store.connection("conversations")
    row = log.fetch_one("SELECT * FROM compaction_history WHERE session_id = 's'")
    assert row["status"] == "done" and row["trigger_type"] == "session_end"
    assert row["original_message_count"] == 3 and row["compacted_message_count"] == 2
    assert json.loads(row["preserved_messages"]) == ids
    assert row["tokens_saved"] is not None and row["user_id"] == USER
    assert memory.consolidate("s") == 0  # nothing left to claim: exactly once
    assert log.fetch_value("SELECT count(*) FROM compaction_history") == 1


def test_ownership_and_bad_input_store_nothing(memory) -> None:
    memory.store_message(USER, "mine", "user", "hello", conversation_id="conv-mine")
    log = memory.store.connection("conversations")
    before = log.fetch_value("SELECT count(*) FROM messages")
    with pytest.raises(InvalidInput, match="session_id belongs to another user"):
        memory.store_message(OTHER, "mine", "user", "let me in")
    with pytest.raises(InvalidInput, match="conversation_id belongs to another user"):
        memory.store_message(OTHER, "theirs", "user", "let me in", conversation_id="conv-mine")
    with pytest.raises(NotFound):
        memory.store_message("nobody", "new", "user", "hello")
    for bad in (
        {"content": "keep this\x00SECRET"},
        {"content": "\ud800 lone surrogate"},
        {"timestamp": float("inf")},
        {"timestamp": float("nan")},
        {"timestamp": "abc"},
        {"tokens": -1},
        {"cost": float("nan")},
        {"session_id": "s\x00x"},
        {"metadata": ["not", "a", "mapping"]},
    ):
        args = {"user_id": USER, "session_id": "s2", "role": "user", "content": "fine"} | bad
        with pytest.raises(InvalidInput) as caught:
            memory.store_message(**args)
        assert "SECRET" not in str(caught.value)
    assert log.fetch_value("SELECT count(*) FROM messages") == before
    assert memory.working.message_ids() == [("mine", m) for _, m in memory.working.message_ids()]


def test_verify_index_sees_segments_nothing_would_index(memory) -> None:
    memory.store_message(USER, "s", "user", "a thought about zqorphan owls")
    memory.end_session("s")
    memory.semantic.process_outbox()  # end_session defers a small batch to the outbox pass
    assert memory.semantic.verify_index().ok
    core = memory.store.connection("core")
    # What the old outbox race left behind: no vector and no queued work.
    core.execute("UPDATE semantic_segments SET vector = NULL, vector_fingerprint = NULL")
    report = memory.semantic.verify_index()
    assert report.unindexed_count == 1 and not report.ok
    assert memory.repair().segments_requeued == 1
    memory.semantic.process_outbox()
    assert memory.semantic.verify_index().ok
