"""``aico context`` and ``aico search``: what the companion would recall for a message."""

from __future__ import annotations

from typing import Any, cast

import click

from aico.ai.memory import ContextBundle
from aico.ai.memory.semantic import SearchMode, SegmentSource
from aico.cli._common import CliState, handle_errors, pass_state
from aico.cli.admin import _output as out
from aico.cli.admin._open import open_manager, require_user
from aico.validation import check_id

_MODES = ("hybrid", "bm25", "dense")
# A session nobody has: with no session of the user, the context has no recent turns.
_NO_SESSION = "-"


@click.command("context")
@click.option("--user", "user_id", required=True)
@click.argument("message")
@click.option("--session", "session_id", default=None, help="Default: the user's latest session.")
@click.option("--max-tokens", type=click.IntRange(1), default=None, help="Default: the config's.")
@click.option("--prompt", "prompt_only", is_flag=True, help="Print only the prompt block.")
@click.option("--json", "as_json", is_flag=True)
@pass_state
@handle_errors
def context_cmd(
    state: CliState,
    user_id: str,
    message: str,
    session_id: str | None,
    max_tokens: int | None,
    prompt_only: bool,
    as_json: bool,
) -> None:
    """The context a prompt for MESSAGE would get: recent turns, memories, facts.

    Decrypted output, for the key holder only.
    """
    check_id(user_id, "user_id")
    with open_manager(state, write=False) as manager:
        require_user(manager, user_id)
        recent: int | None = None
        if session_id is None:
            session_id = manager.log.latest_session(user_id)
        if session_id is None:
            session_id, recent = _NO_SESSION, 0
        bundle = manager.assemble_context(
            user_id, session_id, message, max_tokens=max_tokens, recent=recent
        )
    items = context_items(bundle)
    if as_json:
        out.emit(
            {
                "session_id": None if session_id == _NO_SESSION else session_id,
                "items": items,
                "token_estimate": bundle.token_estimate,
                "max_tokens": bundle.max_tokens,
                "dropped": bundle.dropped,
                "prompt": bundle.render(),
            }
        )
        return
    if prompt_only:
        click.echo(bundle.render())
        return
    if items:
        out.table(
            ["source", "score", "id", "text"],
            ((i["source"], i["score"], i["id"], i["text"]) for i in items),
        )
    else:
        out.line("nothing to recall")
    session = "no session" if session_id == _NO_SESSION else f"session {session_id}"
    out.line(
        f"{bundle.token_estimate} of {bundle.max_tokens} tokens, "
        f"{bundle.dropped} items dropped ({session})"
    )


def context_items(bundle: ContextBundle) -> list[dict[str, Any]]:
    """Every item in prompt order (facts, memories, recent turns) with source and score."""
    items: list[dict[str, Any]] = [
        {"source": "fact", "id": f.fact_id, "score": None, "text": f.content} for f in bundle.facts
    ]
    items += [
        {
            "source": "memory",
            "id": h.segment_id,
            "score": h.score,
            "text": h.text,
            "conversation_id": h.conversation_id,
        }
        for h in bundle.memories
    ]
    items += [
        {"source": "recent", "id": m.id, "score": None, "role": m.role, "text": m.content}
        for m in bundle.working
    ]
    return items


@click.command("search")
@click.option("--user", "user_id", required=True)
@click.argument("query")
@click.option("-k", "k", type=click.IntRange(1, 1000), default=5, show_default=True)
@click.option("--mode", type=click.Choice(_MODES), default="hybrid", show_default=True)
@click.option(
    "--source",
    type=click.Choice(("conversation", "file")),
    default=None,
    help="Only conversations or only indexed files (default: both).",
)
@click.option("--json", "as_json", is_flag=True)
@pass_state
@handle_errors
def search_cmd(
    state: CliState, user_id: str, query: str, k: int, mode: str, source: str | None, as_json: bool
) -> None:
    """Search a user's long-term memory (decrypted output: for the key holder only)."""
    check_id(user_id, "user_id")
    with open_manager(state, write=False) as manager:
        require_user(manager, user_id)
        hits = manager.search(
            user_id,
            query,
            k,
            mode=cast(SearchMode, mode),
            source=cast(SegmentSource | None, source),
        )
    if as_json:
        out.emit(hits)
        return
    if not hits:
        out.line("no results")
        return
    out.table(
        ["#", "score", "bm25", "dense", "source", "conversation", "text"],
        (
            (n, h.score, h.bm25_rank, h.dense_rank, h.source, h.conversation_id, h.text)
            for n, h in enumerate(hits, 1)
        ),
    )
