"""Schema version 4: every segment has a source (a conversation, or a file of the file index).

Real encrypted core database, real FTS5 and Chroma: search filters by source in both halves
and reports it on each hit, a file's segments are found by their ``source_ref`` (the file
index's id, never the path), rollback to version 3 keeps conversation segments searchable,
and a store over a version-3 database reads conversations only instead of failing.
"""

from __future__ import annotations

import pytest
from semantic_support import T0

from aico.ai.memory.semantic import Segment
from aico.data.libsql import EncryptedLibSQLConnection
from aico.data.schema import Migrator
from aico.errors import InvalidInput, SemanticMemoryError


def _segments() -> list[Segment]:
    return [
        Segment("alice", "I keep my sourdough starter in the fridge.", T0, segment_id="talk"),
        Segment(
            "alice",
            "Sourdough notes: feed the starter twice a day at room temperature.",
            T0 + 10,
            segment_id="note-1",
            source="file",
            source_ref="file-a",
        ),
        Segment(
            "alice",
            "Starter ratio 1:1:1 flour water starter.",
            T0 + 20,
            segment_id="note-2",
            source="file",
            source_ref="file-a",
        ),
    ]


@pytest.mark.parametrize("mode", ["bm25", "dense", "hybrid"])
def test_search_filters_by_source_in_every_mode(sem_store, mode) -> None:
    sem_store.add_segments(_segments())
    both = sem_store.search("alice", "sourdough starter", mode=mode)
    assert {h.segment_id for h in both} == {"talk", "note-1", "note-2"}
    files = sem_store.search("alice", "sourdough starter", mode=mode, source="file")
    assert {h.segment_id for h in files} == {"note-1", "note-2"}
    assert all(h.source == "file" and h.source_ref == "file-a" for h in files)
    talks = sem_store.search("alice", "sourdough starter", mode=mode, source="conversation")
    assert [(h.segment_id, h.source, h.source_ref) for h in talks] == [
        ("talk", "conversation", None)
    ]


def test_segments_of_a_source_are_found_and_deleted_by_its_ref(sem_store) -> None:
    sem_store.add_segments(_segments())
    ids = sem_store.segments_of_source("alice", "file", "file-a")
    assert sorted(ids) == ["note-1", "note-2"]
    assert sem_store.segments_of_source("bob", "file", "file-a") == []
    assert sem_store.delete_segments(ids, user_id="alice") == 2
    assert [h.segment_id for h in sem_store.search("alice", "starter")] == ["talk"]


def test_a_bad_source_is_refused_before_any_store_is_touched(sem_store) -> None:
    with pytest.raises(InvalidInput, match="source must be one of"):
        Segment("alice", "text", T0, source="email")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="source must be one of"):
        sem_store.search("alice", "text", source="email")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="source_ref"):
        Segment("alice", "text", T0, source="file", source_ref="x" * 129)
    assert sem_store.count("alice") == 0


def test_rollback_to_version_3_keeps_conversations_and_refuses_files(
    sem_core: EncryptedLibSQLConnection, sem_open
) -> None:
    store = sem_open()
    store.add_segments(_segments())
    store.close()
    Migrator(sem_core, "core").downgrade(schema="semantic", to=3)
    # The rollback dropped the columns; the file segments' rows stay as conversation rows
    # would (the file index is what removes them), and nothing fails.
    old = sem_open()
    hits = old.search("alice", "sourdough starter", mode="bm25")
    assert hits and all(h.source == "conversation" and h.source_ref is None for h in hits)
    assert old.search("alice", "sourdough starter", source="file") == []
    assert old.search("alice", "sourdough starter", source="conversation")
    old.add_segments([Segment("alice", "a new conversation segment", T0 + 30)])
    with pytest.raises(SemanticMemoryError, match="aico db upgrade"):
        old.add_segments([Segment("alice", "a file", T0, source="file", source_ref="f")])
    old.close()
    Migrator(sem_core, "core").upgrade(schema="semantic")
    new = sem_open()
    assert new.search("alice", "new conversation segment", source="conversation")
