"""How an admin verb opens the data dir, and the existence checks the verbs share."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from aico.ai.memory import MemoryManager
from aico.cli._common import CliState
from aico.data.repositories import UserService
from aico.errors import NotFound
from aico.validation import check_id


@contextmanager
def open_manager(state: CliState, *, write: bool) -> Iterator[MemoryManager]:
    """The data dir's ``MemoryManager``, closed (and sealed) when the verb is done.

    A verb that writes refuses ``--read-only`` before anything is opened. A verb that
    only reads always opens read-only (read verbs never migrate, repair or write): a data
    dir whose schemas are behind asks for one writable command first (``aico db migrate``).
    """
    if write:
        state.require_writable()
    manager = MemoryManager.open(
        state.layout.root, config=state.config, read_only=state.read_only or not write
    )
    try:
        yield manager
    finally:
        manager.close()


def users(manager: MemoryManager) -> UserService:
    return UserService(manager.store.connection("core"))


def require_user(manager: MemoryManager, user_id: str) -> None:
    """``NotFound`` for an unknown user: an empty answer would look like "no memories"."""
    if not users(manager).exists(user_id):
        raise NotFound("no user with this user_id")


def require_conversation(
    manager: MemoryManager, conversation_id: str, *, user_id: str | None = None
) -> None:
    """``NotFound`` unless the conversation exists (and, given ``user_id``, is theirs)."""
    owner = manager.log.conversation_owner(check_id(conversation_id, "conversation_id"))
    if owner is None or (user_id is not None and owner != user_id):
        mine = "" if user_id is None else " for this user"
        raise NotFound(f"no conversation with this conversation_id{mine}")
