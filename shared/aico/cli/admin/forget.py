"""``aico forget --user ID [--conversation ID | --message ID]``: ``MemoryManager.forget``."""

from __future__ import annotations

import click

from aico.ai.memory import ForgetReport
from aico.cli._common import CliState, handle_errors, pass_state
from aico.cli.admin import _output as out
from aico.cli.admin._open import open_manager, require_conversation, require_user
from aico.errors import NotFound
from aico.validation import check_id

# What the readable summary lists, in this order, when not zero.
_COUNTS = (
    ("messages", "messages"),
    ("conversations", "conversations"),
    ("sessions", "sessions"),
    ("working_entries", "working-memory entries"),
    ("segments", "long-term segments"),
    ("facts", "facts"),
    ("feedback", "feedback events"),
    ("attachments", "attachments"),
    ("logs", "log entries"),
)


@click.command("forget")
@click.option("--user", "user_id", required=True, help="Whose data.")
@click.option("--conversation", "conversation_id", default=None, help="Only this conversation.")
@click.option("--message", "message_id", default=None, help="Only this message.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--json", "as_json", is_flag=True)
@pass_state
@handle_errors
def forget_cmd(
    state: CliState,
    user_id: str,
    conversation_id: str | None,
    message_id: str | None,
    yes: bool,
    as_json: bool,
) -> None:
    """Forget a user, one of their conversations, or one message, from every store.

    The log, working memory, long-term segments and their indexes, facts and feedback tied
    to it; a crash part way is finished by the next open. Cannot be undone.
    """
    if conversation_id is not None and message_id is not None:
        raise click.UsageError("give --conversation or --message, not both")
    check_id(user_id, "user_id")
    with open_manager(state, write=True) as manager:
        require_user(manager, user_id)
        if conversation_id is not None:
            require_conversation(manager, conversation_id, user_id=user_id)
            what = "this conversation"
        elif message_id is not None:
            message = manager.log.message(check_id(message_id, "message_id"))
            if message is None or message.user_id != user_id:
                raise NotFound("no message with this message_id for this user")
            what = "this message"
        else:
            what = "this user and everything of theirs"
        confirm_or_abort(yes, f"Forget {what}, from every store?")
        report = manager.forget(user_id, conversation_id=conversation_id, message_id=message_id)
    echo_report(report, as_json=as_json)


def confirm_or_abort(yes: bool, question: str) -> None:
    """Ask before a forget (``--yes`` skips); anything but yes exits 1 with ``Aborted!``."""
    if not yes:
        click.confirm(f"{question} This cannot be undone.", abort=True, err=True)


def echo_report(report: ForgetReport, *, as_json: bool) -> None:
    if as_json:
        out.emit(report)
        return
    counts = [
        f"{getattr(report, name)} {label}" for name, label in _COUNTS if getattr(report, name)
    ]
    summary = ", ".join(counts) if counts else "nothing else was stored"
    profile = "; the user's profile is deleted" if report.facts_and_feedback else ""
    out.line(f"forgot the {report.grain}: {summary}{profile}")
