"""``ConversationViews``: conversations and their messages, as the API shows them.

The reads are ``ConversationLog``'s (the same the admin CLI uses). The ``MemoryManager``
writes the log (``store_message``) and forgets from it, but has no verb to start an empty
conversation or to name and archive one: those two small writes are here, and touch only
the ``conversations`` row, which ``store_message`` upserts and ``forget`` deletes; nothing
derived depends on its title or status. A conversation's id is always made here, so no
client can pick one that is another user's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aico.data.repositories import ConversationLog, UserService
from aico.data.repositories._base import Clock, Connection, new_id, now
from aico.errors import InvalidInput, NotFound
from aico.validation import check_count, check_id, check_text

__all__ = ["CONVERSATION_STATUSES", "Conversation", "ConversationViews", "MessageView"]

CONVERSATION_STATUSES = ("active", "archived")
_MAX_PAGE = 500
_NO_CONVERSATION = "no conversation with this conversation_id"


@dataclass(frozen=True)
class Conversation:
    id: str
    user_id: str
    title: str | None
    status: str
    provider: str
    model: str | None
    total_tokens: int
    created_at: float
    updated_at: float
    message_count: int

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Conversation:
        return cls(
            id=str(row["id"]),
            user_id=str(row["user_id"]),
            title=row["title"],
            status=str(row["status"] or "active"),
            provider=str(row["provider"]),
            model=row["model"],
            total_tokens=int(row["total_tokens"] or 0),
            created_at=float(row["created_at"]),
            updated_at=float(row["updated_at"]),
            message_count=int(row["message_count"] or 0),
        )


@dataclass(frozen=True)
class MessageView:
    id: str
    conversation_id: str | None
    session_id: str
    role: str
    content: str
    timestamp: float
    tokens: int | None
    metadata: dict[str, Any]
    consolidated: bool


class ConversationViews:
    """Owners, conversations and pages of messages for the API (see the module doc)."""

    def __init__(self, conn: Connection, users: UserService, *, clock: Clock | None = None) -> None:
        self.conn = conn
        self.log = ConversationLog(conn)
        self.users = users
        self.clock = clock

    # -- owners: how every endpoint decides what a token may see ---------------------------

    def owner(self, conversation_id: str) -> str | None:
        return self.log.conversation_owner(check_id(conversation_id, "conversation_id"))

    def session_owner(self, session_id: str) -> str | None:
        return self.log.session_owner(check_id(session_id, "session_id"))

    def owners(self, conversation_id: str, session_id: str) -> tuple[str | None, str | None]:
        """The owners of a conversation and of a session, in one call (an append's checks)."""
        return self.owner(conversation_id), self.session_owner(session_id)

    def message_owner(self, message_id: str) -> str | None:
        value = self.conn.fetch_value(
            "SELECT user_id FROM messages WHERE id = ?", (check_id(message_id, "message_id"),)
        )
        return None if value is None else str(value)

    # -- conversations -------------------------------------------------------------------

    def create(self, user_id: str, *, title: str | None = None) -> Conversation:
        """A new, empty conversation of an existing user, with an id made here."""
        if title is not None:
            check_text(title, "title", limit=500)
        if not self.users.exists(user_id):
            raise NotFound("no user with this user_id")
        conversation_id = new_id()
        ts = now(self.clock)
        self.conn.execute(
            "INSERT INTO conversations (id, user_id, title, created_at, updated_at, provider, "
            "model, total_tokens, total_cost, status) "
            "VALUES (?, ?, ?, ?, ?, 'aico', NULL, 0, 0.0, 'active')",
            (conversation_id, user_id, title, ts, ts),
        )
        return self.get(conversation_id)

    def get(self, conversation_id: str) -> Conversation:
        row = self.log.conversation(check_id(conversation_id, "conversation_id"))
        if row is None or row["user_id"] is None:
            raise NotFound(_NO_CONVERSATION)
        return Conversation.from_row(row)

    def for_user(self, user_id: str, *, limit: int = 50, offset: int = 0) -> list[Conversation]:
        """The user's conversations, most recently active first."""
        check_id(user_id, "user_id")
        check_count(limit, "limit", minimum=1, maximum=_MAX_PAGE)
        check_count(offset, "offset")
        rows = self.log.conversations_of_user(user_id, limit=limit, offset=offset)
        return [Conversation.from_row(r) for r in rows]

    def update(
        self, conversation_id: str, *, title: str | None = None, status: str | None = None
    ) -> Conversation:
        """Rename or archive a conversation (None leaves a field as it is)."""
        check_id(conversation_id, "conversation_id")
        if title is not None:
            check_text(title, "title", limit=500)
        if status is not None and status not in CONVERSATION_STATUSES:
            raise InvalidInput(f"status must be one of {', '.join(CONVERSATION_STATUSES)}")
        result = self.conn.execute(
            "UPDATE conversations SET title = coalesce(?, title), status = coalesce(?, status),"
            " updated_at = ? WHERE id = ? AND user_id IS NOT NULL",
            (title, status, now(self.clock), conversation_id),
        )
        if result.rowcount == 0:
            raise NotFound(_NO_CONVERSATION)
        return self.get(conversation_id)

    def messages(
        self, conversation_id: str, *, limit: int = 50, offset: int = 0
    ) -> tuple[list[MessageView], int | None]:
        """A page of the conversation's messages, oldest first, and the next page's offset."""
        check_id(conversation_id, "conversation_id")
        check_count(limit, "limit", minimum=1, maximum=_MAX_PAGE)
        check_count(offset, "offset")
        rows = self.log.messages_of_conversation(conversation_id, limit=limit + 1, offset=offset)
        page = [
            MessageView(
                id=m.id,
                conversation_id=m.conversation_id,
                session_id=m.session_id,
                role=m.role,
                content=m.content,
                timestamp=m.timestamp,
                tokens=m.tokens,
                metadata=m.metadata,
                consolidated=m.consolidated_at is not None,
            )
            for m in rows[:limit]
        ]
        return page, (offset + limit if len(rows) > limit else None)
