"""The knowledge repositories on a real encrypted store: every CHECK of the specification is
``InvalidInput`` before anything is written, missing or foreign ids are ``NotFound``."""

from __future__ import annotations

import math

import pytest

from aico.data.repositories.knowledge import (
    ComponentRepository,
    DecisionRepository,
    DocumentationRepository,
    EffectivenessRepository,
    PatternRepository,
    RelevanceRepository,
    measure,
)
from aico.errors import InvalidInput, NotFound

SURROGATE = "bad \udc80 text"


def test_components_round_trip_and_list_filters(knowledge, maya, clock):
    first = knowledge.add_component(
        maya,
        "semantic store",
        "module",
        description="FTS5 + Chroma",
        confidence=0.9,
        evidence=["aico/ai/memory/semantic"],
        metadata={"lines": 4000},
    )
    clock.now += 1
    knowledge.add_component(maya, "backend", "service")
    assert knowledge.get("component", maya, first.id) == first
    assert first.evidence == ["aico/ai/memory/semantic"] and first.metadata == {"lines": 4000}
    assert first.last_updated == clock.now - 1
    assert [c.component for c in knowledge.list("component", maya)] == ["backend", "semantic store"]
    assert [c.component for c in knowledge.list("component", maya, type="module")] == [
        "semantic store"
    ]


@pytest.mark.parametrize(
    ("table", "call"),
    [
        # The specification's CHECKs, each one side out of range.
        ("project_components", lambda k, u: k.add_component(u, "c", "t", confidence=1.01)),
        ("project_components", lambda k, u: k.add_component(u, "c", "t", confidence=-0.01)),
        ("project_components", lambda k, u: k.add_component(u, "c", "t", confidence=math.nan)),
        (
            "conversation_effectiveness",
            lambda k, u: k.record_effectiveness(u, "c1", user_satisfaction=0),
        ),
        (
            "conversation_effectiveness",
            lambda k, u: k.record_effectiveness(u, "c1", user_satisfaction=6),
        ),
        (
            "conversation_effectiveness",
            lambda k, u: k.record_effectiveness(u, "c1", user_satisfaction=True),
        ),
        (
            "conversation_effectiveness",
            lambda k, u: k.record_effectiveness(u, "c1", success_score=1.5),
        ),
        (
            "context_relevance_feedback",
            lambda k, u: k.record_context_feedback(u, "fact:f1", True, relevance_score=2.0),
        ),
        (
            "context_relevance_feedback",
            lambda k, u: k.record_context_feedback(u, "fact:f1", True, usefulness=1.2),
        ),
        ("project_decisions", lambda k, u: k.list("decision", u, status="paused")),
        # NOT NULL columns and JSON columns.
        ("project_components", lambda k, u: k.add_component(u, "", "module")),
        ("project_components", lambda k, u: k.add_component(u, "c", None)),
        ("project_components", lambda k, u: k.add_component(u, "c", "t", evidence={"x": math.inf})),
        ("project_components", lambda k, u: k.add_component(u, "c", "t", evidence="not json")),
        ("project_components", lambda k, u: k.add_component(u, "c", "t", metadata={"x": object()})),
        ("project_decisions", lambda k, u: k.add_decision(u, "  ", "storage")),
        ("project_decisions", lambda k, u: k.add_decision(u, "t", "storage", tags=[SURROGATE])),
        ("project_decisions", lambda k, u: k.add_decision(u, "t\x00", "storage")),
        ("documentation_files", lambda k, u: k.add_documentation(u, "")),
        ("documentation_files", lambda k, u: k.add_documentation(u, "a" * 4097)),
        ("success_patterns", lambda k, u: k.add_pattern(u, "p", confidence_score=1.5)),
        ("success_patterns", lambda k, u: k.add_pattern(u, "p", effectiveness_rating=-1)),
        ("context_relevance_feedback", lambda k, u: k.record_context_feedback(u, "nope:1", True)),
        ("context_relevance_feedback", lambda k, u: k.record_context_feedback(u, "fact:f1", "yes")),
        (
            "context_relevance_feedback",
            lambda k, u: k.record_context_feedback(u, "fact:f1", True, usefulness=0.2),
        ),
        (
            "context_relevance_feedback",
            lambda k, u: k.record_context_feedback(u, "fact:f1", True, source="guess"),
        ),
    ],
)
def test_every_check_is_invalid_input_and_writes_nothing(knowledge, maya, rows, table, call):
    before = rows(table)
    with pytest.raises(InvalidInput) as info:
        call(knowledge, maya)
    assert rows(table) == before == 0
    # Refused by the Python checks, not by the schema's backstop after the store was touched.
    assert "the knowledge store refused" not in str(info.value)


def test_unknown_user_is_not_found_and_never_echoed(knowledge, rows):
    ghost = "ghost-7f3a"
    for call in (
        lambda: knowledge.add_component(ghost, "c", "t"),
        lambda: knowledge.add_decision(ghost, "t", "d"),
        lambda: knowledge.add_documentation(ghost, "README.md"),
        lambda: knowledge.add_pattern(ghost, "p"),
        lambda: knowledge.record_effectiveness(ghost, "c1"),
        lambda: knowledge.record_context_feedback(ghost, "fact:f1", True),
        lambda: knowledge.list("decision", ghost),
    ):
        with pytest.raises(NotFound) as info:
            call()
        assert ghost not in str(info.value)
        assert str(info.value) == "no user with this user_id"
    assert rows("project_decisions") == 0


def test_missing_and_foreign_ids_are_the_same_not_found(knowledge, maya, bob):
    mine = knowledge.add_pattern(maya, "ask-before-refactor")
    for kind in ("component", "documentation", "decision", "pattern", "effectiveness", "feedback"):
        with pytest.raises(NotFound) as missing:
            knowledge.get(kind, maya, "no-such-id-123")
        assert "no-such-id-123" not in str(missing.value)
    with pytest.raises(NotFound) as foreign:
        knowledge.get("pattern", bob, mine.id)
    assert str(foreign.value) == "no pattern with this id for this user"
    assert mine.id not in str(foreign.value)
    with pytest.raises(NotFound):
        knowledge.delete("pattern", bob, mine.id)
    assert knowledge.get("pattern", maya, mine.id) == mine
    with pytest.raises(InvalidInput):
        knowledge.get("widget", maya, mine.id)  # type: ignore[arg-type]


def test_documentation_path_once_per_user_replace_keeps_id(knowledge, maya, bob, rows, clock):
    doc = knowledge.add_documentation(
        maya, "docs/architecture.md", doc_type="design", sections=["Keys", "Forget path"]
    )
    with pytest.raises(InvalidInput) as info:
        knowledge.add_documentation(maya, "docs/architecture.md")
    assert "architecture" not in str(info.value)
    # Another user may document the same path; the refusal above told maya nothing about bob.
    theirs = knowledge.add_documentation(bob, "docs/architecture.md")
    assert theirs.id != doc.id and rows("documentation_files") == 2
    clock.now += 60
    again = knowledge.add_documentation(
        maya, "docs/architecture.md", title="Architecture", content_hash="abc", replace=True
    )
    assert again.id == doc.id and again.title == "Architecture" and again.sections is None
    assert again.last_analyzed == clock.now
    assert knowledge.documentation.by_path(maya, "docs/architecture.md") == again


def test_patterns_count_uses(knowledge, maya, clock):
    pattern = knowledge.add_pattern(maya, "small-steps", success_indicators=["tests pass"])
    assert pattern.usage_count == 0 and pattern.last_successful is None
    clock.now += 10
    used = knowledge.record_pattern_use(maya, pattern.id, successful=True)
    clock.now += 10
    failed = knowledge.record_pattern_use(maya, pattern.id, successful=False)
    assert (used.usage_count, used.last_successful) == (1, clock.now - 10)
    assert (failed.usage_count, failed.last_successful) == (2, clock.now - 10)
    with pytest.raises(InvalidInput):
        knowledge.record_pattern_use(maya, pattern.id, successful=1)


def test_constraint_backstop_maps_driver_errors_to_invalid_input(manager, maya, rows):
    """A value the Python checks missed (here: written past them) is still InvalidInput."""
    conn = manager.store.connection("knowledge")
    repos = {
        "project_components": (ComponentRepository(conn), {"confidence": 7.0}),
        "project_decisions": (DecisionRepository(conn), {"status": "paused"}),
        "conversation_effectiveness": (EffectivenessRepository(conn), {"user_satisfaction": 9}),
        "context_relevance_feedback": (RelevanceRepository(conn), {"actual_usefulness": -3.0}),
    }
    base = {
        "project_components": {"component": "c", "type": "t"},
        "project_decisions": {"decision_type": "d", "title": "t"},
        "conversation_effectiveness": {},
        "context_relevance_feedback": {"file_path": "k"},
    }
    for table, (repo, bad) in repos.items():
        with pytest.raises(InvalidInput) as info:
            repo._insert({"id": "x1", "user_id": maya, **base[table], **bad})
        assert str(info.value) == f"the knowledge store refused this {repo.noun} (a schema check)"
        assert rows(table) == 0
    docs = DocumentationRepository(conn)
    docs._insert({"id": "d1", "user_id": maya, "file_path": "a.md"})
    with pytest.raises(InvalidInput):
        docs._insert({"id": "d2", "user_id": maya, "file_path": "a.md"})  # UNIQUE
    assert PatternRepository(conn).count(maya) == 0 and rows("documentation_files") == 1


def test_limits_and_offsets_are_checked(knowledge, maya):
    for limit in (0, 10_001, True, 1.5):
        with pytest.raises(InvalidInput):
            knowledge.list("component", maya, limit=limit)
    with pytest.raises(InvalidInput):
        knowledge.list("component", maya, offset=-1)
    with pytest.raises(InvalidInput):
        knowledge.list("component", maya, status="active")


def test_measure_of_nothing_is_zero():
    empty = measure([])
    assert (empty.message_count, empty.turn_count, empty.duration_seconds) == (0, 0, 0.0)
    assert empty.tokens_used is None and empty.completion_time_minutes == 0


def test_row_reprs_leave_user_text_out(knowledge, maya):
    secret = "quokka-lantern-9931"
    rows = [
        knowledge.add_component(maya, secret, "module", description=secret, evidence=[secret]),
        knowledge.add_documentation(maya, f"{secret}.md", title=secret, sections=[secret]),
        knowledge.add_decision(maya, secret, "d", rationale=secret, tags=[secret]),
        knowledge.add_pattern(maya, "p", description=secret, context={"k": secret}),
        knowledge.record_context_feedback(maya, f"file:{secret}.md", True),
    ]
    for row in rows:
        assert secret not in repr(row), type(row).__name__
        assert row.id in repr(row)
