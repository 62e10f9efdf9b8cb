"""``aico users create|list|show|delete``: user profiles (``UserService``)."""

from __future__ import annotations

import click

from aico.cli._common import CliState, handle_errors, pass_state
from aico.cli.admin import _output as out
from aico.cli.admin._open import open_manager, require_user, users
from aico.cli.admin.forget import confirm_or_abort, echo_report
from aico.data.repositories import USER_TYPES, FactRepository, UserProfile
from aico.validation import check_id


@click.group("users")
def users_group() -> None:
    """The companion's users: create, list, show, delete (everything of theirs)."""


@users_group.command("create")
@click.argument("display_name")
@click.option("--id", "user_id", default=None, help="The user's id (default: a new random one).")
@click.option("--nickname", default=None)
@click.option("--type", "user_type", type=click.Choice(USER_TYPES), default="person")
@click.option("--json", "as_json", is_flag=True)
@pass_state
@handle_errors
def create_cmd(
    state: CliState,
    display_name: str,
    user_id: str | None,
    nickname: str | None,
    user_type: str,
    as_json: bool,
) -> None:
    """Create a user; prints the new user's id."""
    with open_manager(state, write=True) as manager:
        profile = users(manager).create_user(
            display_name, user_id=user_id, nickname=nickname, user_type=user_type
        )
    if as_json:
        out.emit(profile)
        return
    out.line(f"created user {profile.user_id}")


@users_group.command("list")
@click.option("--all", "include_inactive", is_flag=True, help="Include inactive users.")
@click.option("--json", "as_json", is_flag=True)
@pass_state
@handle_errors
def list_cmd(state: CliState, include_inactive: bool, as_json: bool) -> None:
    """Every user, oldest first."""
    with open_manager(state, write=False) as manager:
        profiles = users(manager).list_users(include_inactive=include_inactive)
    if as_json:
        out.emit(profiles)
        return
    if not profiles:
        out.line("no users")
        return
    out.table(
        ["user_id", "type", "active", "created", "name"],
        ((p.user_id, p.user_type, p.is_active, out.when(p.created_at), _name(p)) for p in profiles),
    )


@users_group.command("show")
@click.argument("user_id")
@click.option("--json", "as_json", is_flag=True)
@pass_state
@handle_errors
def show_cmd(state: CliState, user_id: str, as_json: bool) -> None:
    """One user's profile and how much the companion holds of them."""
    with open_manager(state, write=False) as manager:
        profile = users(manager).get_profile(user_id)
        counts = {
            "facts": FactRepository(manager.store.connection("core")).count(user_id),
            "conversations": manager.log.conversation_count(user_id),
            "sessions": len(manager.log.sessions_of_user(user_id)),
            "messages": manager.log.count(user_id),
        }
    if as_json:
        out.emit({**out.as_json(profile), "counts": counts})
        return
    out.fields(
        [
            ("user_id", profile.user_id),
            ("name", profile.display_name),
            ("nickname", profile.nickname),
            ("type", profile.user_type),
            ("active", profile.is_active),
            ("created", out.when(profile.created_at)),
            ("updated", out.when(profile.updated_at)),
            *counts.items(),
        ]
    )


@users_group.command("delete")
@click.argument("user_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--json", "as_json", is_flag=True)
@pass_state
@handle_errors
def delete_cmd(state: CliState, user_id: str, yes: bool, as_json: bool) -> None:
    """Delete a user and everything of theirs, from every store (as forget --user)."""
    check_id(user_id, "user_id")
    with open_manager(state, write=True) as manager:
        require_user(manager, user_id)
        confirm_or_abort(yes, "Delete this user and forget everything of theirs, everywhere?")
        report = manager.forget(user_id)
    echo_report(report, as_json=as_json)


def _name(profile: UserProfile) -> str:
    if profile.nickname:
        return f"{profile.display_name} ({profile.nickname})"
    return profile.display_name
