"""``aico knowledge``: the knowledge store (``knowledge.db``), thin verbs over ``Knowledge``.

    aico knowledge list KIND --user U          rows of one kind, newest first
    aico knowledge show KIND ID --user U       one row
    aico knowledge add KIND --user U ...       component | documentation | decision |
                                               pattern | effectiveness | feedback
    aico knowledge supersede ID --user U --title T ...   a new decision replaces an active one
    aico knowledge revert ID --user U          an active decision is undone
    aico knowledge history ID --user U         a decision's supersession chain
    aico knowledge delete KIND ID --user U     one row

Only the databases are opened (no working memory, no semantic index, no model). Read verbs
open them read-only; writing verbs refuse ``--read-only`` before anything is opened and
bring the schemas to head first, as ``MemoryManager.open`` does.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import click

from aico.ai.memory.knowledge import KINDS, Kind, Knowledge, KnowledgeRow
from aico.ai.memory.stores import open_data_store
from aico.ai.memory.upgrade import upgrade_store
from aico.cli._common import CliState, handle_errors, pass_state
from aico.cli.admin import _output as out
from aico.data.repositories.knowledge import (
    CONTEXT_TYPES,
    DECISION_STATUSES,
    FEEDBACK_SOURCES,
    Component,
    ContextFeedback,
    ConversationEffectiveness,
    Decision,
    DocumentationFile,
    SuccessPattern,
)
from aico.errors import ReadOnly

__all__ = ["knowledge_group", "register"]

_UNIT = click.FloatRange(0.0, 1.0)
_KIND = click.Choice(KINDS)
_NEEDED = ("core", "conversations", "knowledge")


class _Json(click.ParamType[Any]):
    """A JSON list or object given on the command line (``--evidence '["a", "b"]'``)."""

    name = "json"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        try:
            parsed = json.loads(value)
        except ValueError:
            self.fail("is not valid JSON", param, ctx)
        if not isinstance(parsed, list | dict):
            self.fail("must be a JSON list or object", param, ctx)
        return parsed


_JSON = _Json()


@contextmanager
def open_knowledge(state: CliState, *, write: bool) -> Iterator[Knowledge]:
    """The data dir's ``Knowledge`` over its databases only, closed when the verb is done."""
    if write:
        state.require_writable()
    store = open_data_store(
        state.layout, config=state.config, read_only=state.read_only or not write
    )
    try:
        if write:
            upgrade_store(store)
        else:
            behind = sorted(
                d.database
                for d in store.status()
                if d.database in _NEEDED and (not d.exists or any(s.pending for s in d.schemas))
            )
            if behind:
                raise ReadOnly(
                    f"the data dir's schemas are behind this code ({', '.join(behind)}); "
                    "open it writable once to migrate (aico db migrate)"
                )
        yield Knowledge.from_store(store)
    finally:
        store.close()


def _user_option(func: Any) -> Any:
    return click.option("--user", "user_id", required=True, help="The aico user.")(func)


def _json_option(func: Any) -> Any:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON.")(func)


@click.group("knowledge")
def knowledge_group() -> None:
    """The knowledge store: components, documentation, decisions, patterns, feedback."""


# ---- reads ------------------------------------------------------------------------------


@knowledge_group.command("list")
@click.argument("kind", type=_KIND)
@_user_option
@click.option("--type", "type_", default=None, help="Only rows of this type.")
@click.option("--status", type=click.Choice(DECISION_STATUSES), default=None, help="Decisions.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
@_json_option
@pass_state
@handle_errors
def list_cmd(
    state: CliState,
    kind: Kind,
    user_id: str,
    type_: str | None,
    status: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """The user's rows of KIND, newest first."""
    with open_knowledge(state, write=False) as knowledge:
        rows = knowledge.list(kind, user_id, type=type_, status=status, limit=limit)
    if as_json:
        out.emit(rows)
    elif not rows:
        out.line(f"no {kind} rows")
    else:
        _table(kind, rows)


@knowledge_group.command("show")
@click.argument("kind", type=_KIND)
@click.argument("item_id")
@_user_option
@_json_option
@pass_state
@handle_errors
def show_cmd(state: CliState, kind: Kind, item_id: str, user_id: str, as_json: bool) -> None:
    """One row of KIND."""
    with open_knowledge(state, write=False) as knowledge:
        row = knowledge.get(kind, user_id, item_id)
    if as_json:
        out.emit(row)
        return
    out.fields((name, _cell(value)) for name, value in out.as_json(row).items())


@knowledge_group.command("history")
@click.argument("decision_id")
@_user_option
@_json_option
@pass_state
@handle_errors
def history_cmd(state: CliState, decision_id: str, user_id: str, as_json: bool) -> None:
    """A decision's chain of supersessions, oldest first."""
    with open_knowledge(state, write=False) as knowledge:
        chain = knowledge.decision_history(user_id, decision_id)
    if as_json:
        out.emit(chain)
        return
    _table("decision", chain)


# ---- writes -----------------------------------------------------------------------------


@knowledge_group.group("add")
def add_group() -> None:
    """Record a component, documentation file, decision, pattern, effectiveness or feedback."""


def _added(kind: str, row: KnowledgeRow, as_json: bool) -> None:
    if as_json:
        out.emit(row)
    else:
        out.line(f"added {kind} {row.id}")


@add_group.command("component")
@_user_option
@click.argument("name")
@click.option("--type", "type_", required=True, help="module, service, library, ...")
@click.option("--description", default=None)
@click.option("--confidence", type=_UNIT, default=None)
@click.option("--evidence", type=_JSON, default=None, help="JSON list or object.")
@click.option("--metadata", type=_JSON, default=None, help="JSON list or object.")
@_json_option
@pass_state
@handle_errors
def add_component_cmd(
    state: CliState,
    user_id: str,
    name: str,
    type_: str,
    description: str | None,
    confidence: float | None,
    evidence: Any,
    metadata: Any,
    as_json: bool,
) -> None:
    """Record a component of a project."""
    with open_knowledge(state, write=True) as knowledge:
        row = knowledge.add_component(
            user_id,
            name,
            type_,
            description=description,
            confidence=confidence,
            evidence=evidence,
            metadata=metadata,
        )
    _added("component", row, as_json)


@add_group.command("documentation")
@_user_option
@click.argument("file_path")
@click.option("--doc-type", default=None)
@click.option("--title", default=None)
@click.option("--purpose", default=None)
@click.option("--sections", type=_JSON, default=None, help="JSON list or object.")
@click.option("--cross-refs", type=_JSON, default=None, help="JSON list or object.")
@click.option("--content-hash", default=None)
@click.option("--replace", is_flag=True, help="Overwrite what is known about this path.")
@_json_option
@pass_state
@handle_errors
def add_documentation_cmd(
    state: CliState,
    user_id: str,
    file_path: str,
    doc_type: str | None,
    title: str | None,
    purpose: str | None,
    sections: Any,
    cross_refs: Any,
    content_hash: str | None,
    replace: bool,
    as_json: bool,
) -> None:
    """Record a documentation file (once per path; --replace after a re-analysis)."""
    with open_knowledge(state, write=True) as knowledge:
        row = knowledge.add_documentation(
            user_id,
            file_path,
            doc_type=doc_type,
            title=title,
            purpose=purpose,
            sections=sections,
            cross_refs=cross_refs,
            content_hash=content_hash,
            replace=replace,
        )
    _added("documentation", row, as_json)


def _decision_options(func: Any) -> Any:
    for option in reversed(
        (
            click.option("--description", default=None),
            click.option("--rationale", default=None),
            click.option("--alternative", "alternatives", multiple=True, help="Repeatable."),
            click.option("--impact", default=None, help="Impact assessment."),
            click.option("--tag", "tags", multiple=True, help="Repeatable."),
        )
    ):
        func = option(func)
    return func


def _decision_fields(
    description: str | None,
    rationale: str | None,
    alternatives: Sequence[str],
    impact: str | None,
    tags: Sequence[str],
) -> dict[str, Any]:
    return {
        "description": description,
        "rationale": rationale,
        "alternatives_considered": list(alternatives) or None,
        "impact_assessment": impact,
        "tags": list(tags) or None,
    }


@add_group.command("decision")
@_user_option
@click.option("--title", required=True)
@click.option("--type", "type_", required=True, help="architecture, process, ...")
@_decision_options
@_json_option
@pass_state
@handle_errors
def add_decision_cmd(
    state: CliState,
    user_id: str,
    title: str,
    type_: str,
    description: str | None,
    rationale: str | None,
    alternatives: tuple[str, ...],
    impact: str | None,
    tags: tuple[str, ...],
    as_json: bool,
) -> None:
    """Record a new, active decision."""
    fields = _decision_fields(description, rationale, alternatives, impact, tags)
    with open_knowledge(state, write=True) as knowledge:
        row = knowledge.add_decision(user_id, title, type_, **fields)
    _added("decision", row, as_json)


@add_group.command("pattern")
@_user_option
@click.option("--type", "type_", required=True, help="The pattern's type.")
@click.option("--description", default=None)
@click.option("--success-indicator", "successes", multiple=True, help="Repeatable.")
@click.option("--failure-indicator", "failures", multiple=True, help="Repeatable.")
@click.option("--confidence", type=_UNIT, default=None)
@click.option("--effectiveness", type=_UNIT, default=None)
@_json_option
@pass_state
@handle_errors
def add_pattern_cmd(
    state: CliState,
    user_id: str,
    type_: str,
    description: str | None,
    successes: tuple[str, ...],
    failures: tuple[str, ...],
    confidence: float | None,
    effectiveness: float | None,
    as_json: bool,
) -> None:
    """Record a success pattern."""
    with open_knowledge(state, write=True) as knowledge:
        row = knowledge.add_pattern(
            user_id,
            type_,
            description=description,
            success_indicators=list(successes) or None,
            failure_indicators=list(failures) or None,
            confidence_score=confidence,
            effectiveness_rating=effectiveness,
        )
    _added("pattern", row, as_json)


@add_group.command("effectiveness")
@_user_option
@click.option("--conversation", "conversation_id", required=True)
@click.option("--satisfaction", type=click.IntRange(1, 5), default=None, help="1-5.")
@click.option("--success-score", type=_UNIT, default=None)
@click.option("--task-type", default=None)
@click.option("--lessons", default=None, help="Lessons learned.")
@_json_option
@pass_state
@handle_errors
def add_effectiveness_cmd(
    state: CliState,
    user_id: str,
    conversation_id: str,
    satisfaction: int | None,
    success_score: float | None,
    task_type: str | None,
    lessons: str | None,
    as_json: bool,
) -> None:
    """Measure a conversation from the message log and record how it went."""
    with open_knowledge(state, write=True) as knowledge:
        row = knowledge.record_effectiveness(
            user_id,
            conversation_id,
            user_satisfaction=satisfaction,
            success_score=success_score,
            task_type=task_type,
            lessons_learned=lessons,
        )
    _added("effectiveness", row, as_json)


@add_group.command("feedback")
@_user_option
@click.option(
    "--item",
    required=True,
    help=f"<kind>:<id>, kind one of {', '.join(CONTEXT_TYPES)}; or source:id as "
    "'aico context --json' prints them (fact:, memory:, recent:).",
)
@click.option("--useful/--not-useful", required=True)
@click.option("--usefulness", type=_UNIT, default=None, help="A grade in [0, 1].")
@click.option("--conversation", "conversation_id", default=None)
@click.option("--source", type=click.Choice(FEEDBACK_SOURCES), default="explicit")
@_json_option
@pass_state
@handle_errors
def add_feedback_cmd(
    state: CliState,
    user_id: str,
    item: str,
    useful: bool,
    usefulness: float | None,
    conversation_id: str | None,
    source: str,
    as_json: bool,
) -> None:
    """Record whether a context item was useful."""
    with open_knowledge(state, write=True) as knowledge:
        row = knowledge.record_context_feedback(
            user_id,
            item,
            useful,
            usefulness=usefulness,
            conversation_id=conversation_id,
            source=source,
        )
    _added("feedback", row, as_json)


@knowledge_group.command("supersede")
@click.argument("decision_id")
@_user_option
@click.option("--title", required=True, help="The new decision's title.")
@click.option("--type", "type_", default=None, help="Default: the old decision's type.")
@_decision_options
@_json_option
@pass_state
@handle_errors
def supersede_cmd(
    state: CliState,
    decision_id: str,
    user_id: str,
    title: str,
    type_: str | None,
    description: str | None,
    rationale: str | None,
    alternatives: tuple[str, ...],
    impact: str | None,
    tags: tuple[str, ...],
    as_json: bool,
) -> None:
    """Replace an active decision by a new one."""
    fields = _decision_fields(description, rationale, alternatives, impact, tags)
    with open_knowledge(state, write=True) as knowledge:
        old, new = knowledge.supersede_decision(
            user_id, decision_id, title, decision_type=type_, **fields
        )
    if as_json:
        out.emit({"superseded": old, "by": new})
        return
    out.line(f"superseded decision {old.id} by {new.id}")


@knowledge_group.command("revert")
@click.argument("decision_id")
@_user_option
@_json_option
@pass_state
@handle_errors
def revert_cmd(state: CliState, decision_id: str, user_id: str, as_json: bool) -> None:
    """Mark an active decision reverted."""
    with open_knowledge(state, write=True) as knowledge:
        row = knowledge.revert_decision(user_id, decision_id)
    if as_json:
        out.emit(row)
        return
    out.line(f"reverted decision {row.id}")


@knowledge_group.command("delete")
@click.argument("kind", type=_KIND)
@click.argument("item_id")
@_user_option
@_json_option
@pass_state
@handle_errors
def delete_cmd(state: CliState, kind: Kind, item_id: str, user_id: str, as_json: bool) -> None:
    """Delete one row of KIND."""
    with open_knowledge(state, write=True) as knowledge:
        knowledge.delete(kind, user_id, item_id)
    if as_json:
        out.emit({"deleted": item_id, "kind": kind})
        return
    out.line(f"deleted {kind} {item_id}")


# ---- output -----------------------------------------------------------------------------


def _cell(value: Any) -> Any:
    """A list or mapping column as compact JSON text; everything else as the table shows it."""
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return value


def _table(kind: str, rows: Sequence[KnowledgeRow]) -> None:
    if kind == "component":
        components = [r for r in rows if isinstance(r, Component)]
        out.table(
            ["id", "type", "conf", "updated", "component"],
            (
                (c.id, c.type, c.confidence, out.when(c.last_updated), c.component)
                for c in components
            ),
        )
    elif kind == "documentation":
        docs = [r for r in rows if isinstance(r, DocumentationFile)]
        out.table(
            ["id", "doc_type", "analyzed", "title", "file_path"],
            ((d.id, d.doc_type, out.when(d.last_analyzed), d.title, d.file_path) for d in docs),
        )
    elif kind == "decision":
        decisions = [r for r in rows if isinstance(r, Decision)]
        out.table(
            ["id", "status", "type", "made", "superseded_by", "title"],
            (
                (d.id, d.status, d.decision_type, out.when(d.made_at), d.superseded_by, d.title)
                for d in decisions
            ),
        )
    elif kind == "pattern":
        patterns = [r for r in rows if isinstance(r, SuccessPattern)]
        out.table(
            ["id", "type", "uses", "conf", "last_success", "description"],
            (
                (
                    p.id,
                    p.pattern_type,
                    p.usage_count,
                    p.confidence_score,
                    out.when(p.last_successful),
                    p.description,
                )
                for p in patterns
            ),
        )
    elif kind == "effectiveness":
        records = [r for r in rows if isinstance(r, ConversationEffectiveness)]
        out.table(
            ["id", "conversation", "msgs", "turns", "min", "tokens", "sat", "task"],
            (
                (
                    e.id,
                    e.conversation_id,
                    e.message_count,
                    e.turn_count,
                    e.completion_time_minutes,
                    e.tokens_used,
                    e.user_satisfaction,
                    e.task_type,
                )
                for e in records
            ),
        )
    else:
        feedback = [r for r in rows if isinstance(r, ContextFeedback)]
        out.table(
            ["id", "type", "useful", "score", "recorded", "item"],
            (
                (
                    f.id,
                    f.context_type,
                    f.actual_usefulness,
                    f.relevance_score,
                    out.when(f.recorded_at),
                    f.item_key,
                )
                for f in feedback
            ),
        )


def register(cli: click.Group) -> None:
    """Add this module's commands to the ``aico`` group."""
    cli.add_command(knowledge_group)
