"""``aico conversations list|show`` and ``aico messages add``: the message log."""

from __future__ import annotations

import sys
from typing import Any

import click

from aico.ai.memory.manager import ROLES
from aico.cli._common import CliState, handle_errors, pass_state
from aico.cli.admin import _output as out
from aico.cli.admin._open import open_manager, require_conversation, require_user


@click.group("conversations")
def conversations_group() -> None:
    """A user's conversations in the message log."""


@conversations_group.command("list")
@click.option("--user", "user_id", required=True)
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--offset", type=click.IntRange(0), default=0)
@click.option("--json", "as_json", is_flag=True)
@pass_state
@handle_errors
def list_cmd(state: CliState, user_id: str, limit: int, offset: int, as_json: bool) -> None:
    """A user's conversations, most recently updated first."""
    with open_manager(state, write=False) as manager:
        require_user(manager, user_id)
        rows = manager.log.conversations_of_user(user_id, limit=limit, offset=offset)
    if as_json:
        out.emit(rows)
        return
    if not rows:
        out.line("no conversations")
        return
    out.table(
        ["conversation_id", "messages", "status", "updated", "title"],
        (
            (r["id"], r["message_count"], r["status"], out.when(r["updated_at"]), r["title"])
            for r in rows
        ),
    )


@conversations_group.command("show")
@click.argument("conversation_id")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
@click.option("--offset", type=click.IntRange(0), default=0)
@click.option("--json", "as_json", is_flag=True)
@pass_state
@handle_errors
def show_cmd(state: CliState, conversation_id: str, limit: int, offset: int, as_json: bool) -> None:
    """A conversation and a page of its messages, oldest first (decrypted: key holder only)."""
    with open_manager(state, write=False) as manager:
        require_conversation(manager, conversation_id)
        info = manager.log.conversation(conversation_id)
        messages = manager.log.messages_of_conversation(conversation_id, limit=limit, offset=offset)
    assert info is not None  # require_conversation found it, in this same open
    if as_json:
        out.emit({"conversation": info, "messages": messages})
        return
    out.fields(
        [
            ("conversation_id", info["id"]),
            ("user_id", info["user_id"]),
            ("title", info["title"]),
            ("status", info["status"]),
            ("created", out.when(info["created_at"])),
            ("updated", out.when(info["updated_at"])),
            ("provider", info["provider"]),
            ("model", info["model"]),
            ("tokens", info["total_tokens"]),
            ("messages", info["message_count"]),
        ]
    )
    if not messages:
        out.line("no messages" if offset == 0 else "no messages on this page")
        return
    out.table(
        ["time", "role", "message_id", "content"],
        ((out.when(m.timestamp), m.role, m.id, m.content) for m in messages),
    )
    shown = offset + len(messages)
    if offset or shown < int(info["message_count"]):
        out.line(f"messages {offset + 1}-{shown} of {info['message_count']} (--offset for more)")


@click.group("messages")
def messages_group() -> None:
    """The message log's write path: store a message as the companion does."""


@messages_group.command("add")
@click.option("--user", "user_id", required=True)
@click.option("--session", "session_id", required=True, help="The session it belongs to.")
@click.option("--conversation", "conversation_id", default=None)
@click.option("--role", type=click.Choice(ROLES), default="user", show_default=True)
@click.option("--title", default=None, help="The conversation's title (with --conversation).")
@click.option(
    "--end-session",
    is_flag=True,
    help="Then end the session and consolidate it into long-term memory now.",
)
@click.argument("content")
@click.option("--json", "as_json", is_flag=True)
@pass_state
@handle_errors
def add_cmd(
    state: CliState,
    user_id: str,
    session_id: str,
    conversation_id: str | None,
    role: str,
    title: str | None,
    end_session: bool,
    content: str,
    as_json: bool,
) -> None:
    """Store one message (CONTENT, or - to read it from stdin); prints its id.

    The id is printed once the log has committed it: the message is durable.
    """
    if content == "-":
        content = sys.stdin.read()
    if title is not None and conversation_id is None:
        raise click.UsageError("--title needs --conversation")
    with open_manager(state, write=True) as manager:
        message_id = manager.store_message(
            user_id, session_id, role, content, conversation_id=conversation_id, title=title
        )
        segments = manager.end_session(session_id) if end_session else None
    if as_json:
        result: dict[str, Any] = {"message_id": message_id, "session_id": session_id}
        if segments is not None:
            result["segments"] = segments
        out.emit(result)
        return
    out.line(f"stored message {message_id}")
    if segments is not None:
        out.line(f"ended the session: {segments} long-term segments made")
