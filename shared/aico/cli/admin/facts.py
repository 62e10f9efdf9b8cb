"""``aico facts add|list|edit|delete``: the memory album (``FactRepository``)."""

from __future__ import annotations

from typing import Any

import click

from aico.ai.memory import MemoryManager
from aico.cli._common import CliState, handle_errors, pass_state
from aico.cli.admin import _output as out
from aico.cli.admin._open import open_manager, require_user
from aico.data.repositories import Fact, FactRepository

_CONFIDENCE = click.FloatRange(0.0, 1.0)


def _facts(manager: MemoryManager) -> FactRepository:
    return FactRepository(manager.store.connection("core"))


@click.group("facts")
def facts_group() -> None:
    """The memory album: facts the companion keeps about a user."""


@facts_group.command("add")
@click.option("--user", "user_id", required=True)
@click.argument("content")
@click.option("--category", default="general", show_default=True)
@click.option("--confidence", type=_CONFIDENCE, default=1.0, show_default=True)
@click.option("--favorite", is_flag=True, help="Mark it a favourite (always in the context).")
@click.option("--json", "as_json", is_flag=True)
@pass_state
@handle_errors
def add_cmd(
    state: CliState,
    user_id: str,
    content: str,
    category: str,
    confidence: float,
    favorite: bool,
    as_json: bool,
) -> None:
    """Remember a fact about a user; prints its id."""
    with open_manager(state, write=True) as manager:
        fact = _facts(manager).remember(
            user_id, content, category=category, confidence=confidence, is_favorite=favorite
        )
    if as_json:
        out.emit(fact)
        return
    out.line(f"added fact {fact.fact_id}")


@facts_group.command("list")
@click.option("--user", "user_id", required=True)
@click.option("--category", default=None, help="Only this category.")
@click.option("--favorites", is_flag=True, help="Only favourites.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@pass_state
@handle_errors
def list_cmd(
    state: CliState,
    user_id: str,
    category: str | None,
    favorites: bool,
    limit: int,
    as_json: bool,
) -> None:
    """A user's facts, newest first."""
    with open_manager(state, write=False) as manager:
        require_user(manager, user_id)
        facts = _facts(manager).list(
            user_id, category=category, favorites_only=favorites, limit=limit
        )
    if as_json:
        out.emit(facts)
        return
    if not facts:
        out.line("no facts")
        return
    _table(facts)


@facts_group.command("edit")
@click.argument("fact_id")
@click.option("--content", default=None)
@click.option("--category", default=None)
@click.option("--confidence", type=_CONFIDENCE, default=None)
@click.option("--favorite/--no-favorite", default=None)
@click.option("--json", "as_json", is_flag=True)
@pass_state
@handle_errors
def edit_cmd(
    state: CliState,
    fact_id: str,
    content: str | None,
    category: str | None,
    confidence: float | None,
    favorite: bool | None,
    as_json: bool,
) -> None:
    """Change a fact's content, category, confidence or favourite mark."""
    changes: dict[str, Any] = {
        name: value
        for name, value in (
            ("content", content),
            ("category", category),
            ("confidence", confidence),
            ("is_favorite", favorite),
        )
        if value is not None
    }
    if not changes:
        raise click.UsageError(
            "nothing to change: give --content, --category, --confidence "
            "or --favorite/--no-favorite"
        )
    with open_manager(state, write=True) as manager:
        fact = _facts(manager).update(fact_id, **changes)
    if as_json:
        out.emit(fact)
        return
    _table([fact])


@facts_group.command("delete")
@click.argument("fact_id")
@click.option("--json", "as_json", is_flag=True)
@pass_state
@handle_errors
def delete_cmd(state: CliState, fact_id: str, as_json: bool) -> None:
    """Delete one fact."""
    with open_manager(state, write=True) as manager:
        _facts(manager).delete(fact_id)
    if as_json:
        out.emit({"deleted": fact_id})
        return
    out.line(f"deleted fact {fact_id}")


def _table(facts: list[Fact]) -> None:
    out.table(
        ["fact_id", "category", "fav", "conf", "content"],
        (
            (
                f.fact_id,
                f.category,
                "*" if f.is_favorite else "",
                f"{f.confidence:.2f}",
                f.content,
            )
            for f in facts
        ),
    )
