"""A data dir written by the code before the message log moved (ff8ca57) opens intact.

The fixture (``tests/fixtures/legacy-ff8ca57.tar.gz``) was made by
``scripts/make_legacy_fixture.py`` run against that commit: two users, twelve messages
each in three sessions (two consolidated, one still open), facts, segments in FTS5 and
Chroma, working memory. Opening it under today's code must move every message and session
row into the conversations database, drop the retired core tables, keep every segment and
fact, and leave the stores agreeing with the log.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from aico.ai.embeddings import HashingEncoder
from aico.ai.memory import MemoryManager
from aico.ai.memory.upgrade import move_legacy_log
from aico.data.repositories import FactRepository

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "legacy-ff8ca57.tar.gz"


@pytest.fixture
def legacy(tmp_path: Path) -> tuple[Path, dict]:
    with tarfile.open(FIXTURE) as tar:
        tar.extractall(tmp_path, filter="data")
    data_dir = tmp_path / "data"
    expected = json.loads((data_dir / "expected.json").read_text())
    (data_dir / "expected.json").unlink()
    return data_dir, expected


def _open(data_dir: Path, expected: dict, test_config, now: float | None = None) -> MemoryManager:
    clock = now if now is not None else expected["clock"] + 60.0
    return MemoryManager.open(
        data_dir,
        passphrase=expected["passphrase"],
        config=test_config,
        encoder=HashingEncoder(),
        clock=lambda: clock,
    )


def _tables(conn) -> set[str]:
    rows = conn.fetch_all("SELECT name FROM sqlite_master WHERE type = 'table'")
    return {r["name"] for r in rows}


def test_every_message_segment_and_fact_survives(legacy, test_config) -> None:
    data_dir, expected = legacy
    with _open(data_dir, expected, test_config) as memory:
        core = memory.store.connection("core")
        log = memory.store.connection("conversations")
        assert not {"memory_messages", "session_metadata"} & _tables(core)
        assert not {"sessions", "session_cache"} & _tables(memory.store.connection("sessions"))
        assert all(s.at_head for db in memory.store.status() for s in db.schemas)
        for user_id, want in expected["users"].items():
            rows = {
                r["id"]: r
                for r in log.fetch_all("SELECT * FROM messages WHERE user_id = ?", (user_id,))
            }
            assert set(rows) == {m["id"] for m in want["messages"]}
            for m in want["messages"]:
                assert rows[m["id"]]["content"] == m["text"]
                assert rows[m["id"]]["session_id"] == m["session"]
            assert memory.semantic.count(user_id) == want["segments"]
            assert [f.content for f in FactRepository(core).list(user_id)] == want["facts"]
            # The old consolidated sessions stay consolidated: nothing is segmented twice.
            done = [m for m in want["messages"] if not m["session"].endswith("-2")]
            assert all(rows[m["id"]]["consolidated_at"] is not None for m in done)
            counts = log.fetch_all(
                "SELECT session_id, message_count FROM session_metadata WHERE user_id = ?",
                (user_id,),
            )
            assert sorted(c["message_count"] for c in counts) == [4, 4, 4]
            # Old messages still reachable by search and their sources recorded.
            marker = want["messages"][0]["text"].split()[-1]
            hits = memory.search(user_id, marker, 3, mode="bm25")
            assert hits and marker in hits[0].text
            assert memory.semantic.segments_of_messages([want["messages"][0]["id"]])
            # The open session's messages are in working memory (within their TTL).
            open_session = next(
                m["session"] for m in want["messages"] if m["session"].endswith("-2")
            )
            assert len(memory.recent(user_id, open_session, 10)) == 4
        # The open session consolidates once, later, like any other.
        for user_id, want in expected["users"].items():
            session = next(m["session"] for m in want["messages"] if m["session"].endswith("-2"))
            assert memory.end_session(session) >= 1
            assert memory.semantic.count(user_id) > want["segments"]
        sources = core.fetch_all(
            "SELECT message_id, count(*) AS n FROM semantic_segment_messages GROUP BY message_id"
        )
        assert sources and all(r["n"] == 1 for r in sources)
        assert memory.semantic.verify_index().ok
    # A second open finds nothing more to move.
    with _open(data_dir, expected, test_config) as memory:
        assert memory.last_repair.total == 0
        total = sum(len(w["messages"]) for w in expected["users"].values())
        assert memory.store.connection("conversations").fetch_value(
            "SELECT count(*) FROM messages"
        ) == total


def test_forget_of_one_legacy_message_finds_its_segment(legacy, test_config) -> None:
    data_dir, expected = legacy
    with _open(data_dir, expected, test_config) as memory:
        user_id, want = next(iter(expected["users"].items()))
        first = want["messages"][0]
        marker = first["text"].split()[-1]
        report = memory.forget(user_id, message_id=first["id"])
        assert report.messages == 1 and report.segments == 1
        assert all(marker not in h.text for h in memory.search(user_id, marker, 10, mode="bm25"))
        # Its reply shared the segment: consolidated again, alone, into a new one.
        reply = want["messages"][1]
        new = memory.semantic.segments_of_messages([reply["id"]])
        assert len(new) == 1
        text = memory.store.connection("core").fetch_value(
            "SELECT text FROM semantic_segments WHERE segment_id = ?", (new[0],)
        )
        assert reply["text"] in text and first["text"] not in text


def test_the_move_is_idempotent_and_the_drop_refuses_while_rows_remain(legacy, test_config) -> None:
    """A crash between the copy and the core migration repeats the copy harmlessly."""
    from aico.ai.memory.stores import open_data_store
    from aico.errors import AicoError

    data_dir, expected = legacy
    store = open_data_store(data_dir, passphrase=expected["passphrase"], config=test_config)
    try:
        store.migrate(database="conversations")
        store.migrate(schema="semantic")
        # The core version that drops the old tables refuses while they hold rows.
        with pytest.raises(AicoError):
            store.migrate(schema="memory")
        core, log = store.connection("core"), store.connection("conversations")
        assert core.fetch_value("SELECT count(*) FROM memory_messages") == 24
        first = move_legacy_log(core, log)
        # As if the deletes had not happened: copy again.
        assert first == 24
        assert move_legacy_log(core, log) == 0
        assert log.fetch_value("SELECT count(*) FROM messages") == 24
    finally:
        store.close()
    with _open(data_dir, expected, test_config) as memory:
        assert memory.store.connection("conversations").fetch_value(
            "SELECT count(*) FROM messages"
        ) == 24
