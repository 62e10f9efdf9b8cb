"""``MemoryManager.search`` and ``assemble_context``: the query's time and the source filter.

Real encrypted stores, the fast fake encoder: what is checked is the manager's wiring (the
clock as the query's time, the source passed through), not retrieval quality.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from aico.ai.embeddings import HashingEncoder
from aico.ai.memory import MemoryManager
from aico.ai.memory.semantic import Segment
from aico.data.repositories import UserService

DAY = 86400.0
# A Wednesday at noon, local time: "yesterday" is the Tuesday.
NOW = datetime(2026, 6, 17, 12, 0).timestamp()


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def manager(tmp_path: Path, test_config):
    m = MemoryManager.initialize(
        tmp_path / "data", "pw", config=test_config, encoder=HashingEncoder(), clock=Clock(NOW)
    )
    UserService(m.store.connection("core")).create_user("Maya", user_id="maya")
    yield m
    m.close()


def _remember(manager: MemoryManager) -> None:
    manager.semantic.add_segments(
        [
            Segment("maya", "we talked about the garden plans", NOW - 30 * DAY, segment_id="old"),
            Segment("maya", "we talked about the garden plans", NOW - DAY, segment_id="yesterday"),
            Segment(
                "maya",
                "garden plans: tomatoes by the south fence",
                NOW - 60 * DAY,
                segment_id="note",
                source="file",
                source_ref="file-1",
            ),
        ]
    )


def test_search_resolves_relative_time_against_the_managers_clock(manager) -> None:
    _remember(manager)
    hits = manager.search("maya", "what did we say about the garden yesterday", mode="bm25")
    assert hits[0].segment_id == "yesterday"
    assert hits[0].time_window is not None and hits[0].time_boost == 1.0
    by_id = {h.segment_id: h for h in hits}
    assert by_id["old"].time_boost < 0.01
    # An explicit ``now`` wins over the clock: 30 days earlier, "yesterday" is the old one.
    earlier = manager.search(
        "maya", "what did we say about the garden yesterday", mode="bm25", now=NOW - 29 * DAY
    )
    assert earlier[0].segment_id == "old"


def test_assemble_context_boosts_by_the_managers_clock(manager) -> None:
    _remember(manager)
    bundle = manager.assemble_context("maya", "s1", "the garden yesterday", k=1)
    assert [m.segment_id for m in bundle.memories] == ["yesterday"]


def test_search_keeps_one_source_when_asked(manager) -> None:
    _remember(manager)
    assert {h.segment_id for h in manager.search("maya", "garden plans")} == {
        "yesterday",
        "old",
        "note",
    }
    files = manager.search("maya", "garden plans", source="file")
    assert [(h.segment_id, h.source_ref) for h in files] == [("note", "file-1")]
    talks = manager.search("maya", "garden plans", source="conversation")
    assert {h.segment_id for h in talks} == {"yesterday", "old"}


def test_end_session_defers_a_small_batch_to_the_outbox_pass(manager) -> None:
    manager.store_message("maya", "s1", "user", "the plum tree needs pruning in winter")
    assert manager.end_session("s1") == 1
    assert manager.semantic.pending_outbox() == 1  # libSQL and BM25 only, for now
    assert [h.segment_id for h in manager.search("maya", "plum tree", mode="bm25")]
    assert manager.search("maya", "plum tree", mode="dense") == []
    manager.maintenance()  # the outbox pass (the backend runs it every minute)
    assert manager.semantic.pending_outbox() == 0
    assert manager.search("maya", "plum tree", mode="dense")


def test_end_session_embeds_at_once_when_configured(tmp_path: Path, test_config) -> None:
    from aico.config import load_config

    config = load_config(
        env={},
        overrides={
            "security": dict(test_config.section("security")),
            "memory": {"consolidation": {"index_on_end": "now"}},
        },
    )
    with MemoryManager.initialize(
        tmp_path / "d", "pw", config=config, encoder=HashingEncoder()
    ) as m:
        UserService(m.store.connection("core")).create_user("Maya", user_id="maya")
        m.store_message("maya", "s1", "user", "the plum tree needs pruning in winter")
        assert m.end_session("s1") == 1
        assert m.semantic.pending_outbox() == 0
        assert m.search("maya", "plum tree", mode="dense")


def test_record_context_use_records_file_access_and_the_retrieval(manager, tmp_path) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "garden.md").write_text("# Garden\n\nThe quince tree needs netting in August.\n")
    manager.files.index("maya", notes)
    manager.semantic.process_outbox()
    bundle = manager.assemble_context("maya", "s1", "when does the quince tree need netting")
    assert [m.source for m in bundle.memories] == ["file"]
    assert "From the user's own files:" in bundle.render()
    core = manager.store.connection("core")
    file_index = manager.store.connection("file_index")
    assert file_index.fetch_value("SELECT count(*) FROM file_access_patterns") == 0  # a read

    manager.record_context_use("maya", bundle, seconds=0.012, context_id="ctx-1")
    (access,) = file_index.fetch_all("SELECT access_type, context_id FROM file_access_patterns")
    assert dict(access) == {"access_type": "context_inclusion", "context_id": "ctx-1"}
    assert core.fetch_value("SELECT count(*) FROM analytics_context_events") == 1
    (ranked, *_) = manager.files.rank_for_context("maya", store=False)
    assert ranked.score.frequency > 0


def test_record_context_use_refuses_bad_input_before_writing(manager) -> None:
    from aico.errors import InvalidInput

    bundle = manager.assemble_context("maya", "s1", "anything")
    with pytest.raises(InvalidInput):
        manager.record_context_use("maya", "not a bundle")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        manager.record_context_use("maya", bundle, seconds=float("nan"))
