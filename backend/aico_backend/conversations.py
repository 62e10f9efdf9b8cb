"""``ConversationViews``: conversations and their messages, as the API shows them.

The ``MemoryManager`` writes the log (``store_message``) and forgets from it; it has no
verb to list conversations, page through one, or name and archive one, so these few reads
and the two small writes (a new, still empty conversation; its title or status) are here,
on the conversations connection. The writes touch only the ``conversations`` row, which
``store_message`` upserts and ``forget`` deletes; nothing derived depends on its title or
status. A conversation's id is always made here, so no client can pick another user's.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from aico.data.repositories import UserService
from aico.data.repositories._base import Clock, Connection, dump_json, load_json, new_id, now
from aico.errors import InvalidInput, NotFound
from aico.validation import check_count, check_id, check_text

__all__ = ["CONVERSATION_STATUSES", "Conversation", "ConversationViews", "MessageView"]

CONVERSATION_STATUSES = ("active", "archived")
_MAX_PAGE = 500


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
    metadata: dict[str, Any]

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
            metadata=load_json(row["metadata"]),
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


_SELECT = (
    "SELECT c.id, c.user_id, c.title, c.status, c.provider, c.model, c.total_tokens, "
    "c.created_at, c.updated_at, c.metadata, "
    "(SELECT count(*) FROM messages m WHERE m.conversation_id = c.id) AS message_count "
    "FROM conversations c"
)


def _cursor(timestamp: float, rowid: int) -> str:
    return base64.urlsafe_b64encode(f"{timestamp!r}:{rowid}".encode()).decode().rstrip("=")


def _parse_cursor(cursor: str) -> tuple[float, int]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        timestamp, rowid = base64.urlsafe_b64decode(padded).decode().split(":")
        return float(timestamp), int(rowid)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("cursor is not one this service gave out") from None


class ConversationViews:
    """Reads of the log for the API, and a conversation's own row (see the module doc)."""

    def __init__(self, conn: Connection, users: UserService, *, clock: Clock | None = None) -> None:
        self.conn = conn
        self.users = users
        self.clock = clock

    def owner(self, conversation_id: str) -> str | None:
        value = self.conn.fetch_value(
            "SELECT user_id FROM conversations WHERE id = ?",
            (check_id(conversation_id, "conversation_id"),),
        )
        return None if value is None else str(value)

    def message_owner(self, message_id: str) -> str | None:
        value = self.conn.fetch_value(
            "SELECT user_id FROM messages WHERE id = ?", (check_id(message_id, "message_id"),)
        )
        return None if value is None else str(value)

    def session_owner(self, session_id: str) -> str | None:
        value = self.conn.fetch_value(
            "SELECT user_id FROM session_metadata WHERE session_id = ?",
            (check_id(session_id, "session_id"),),
        )
        return None if value is None else str(value)

    def create(
        self, user_id: str, *, title: str | None = None, metadata: dict[str, Any] | None = None
    ) -> Conversation:
        """A new, empty conversation of an existing user, with an id made here."""
        if title is not None:
            check_text(title, "title", limit=500)
        if not self.users.exists(user_id):
            raise NotFound("no user with this user_id")
        conversation_id = new_id()
        ts = now(self.clock)
        self.conn.execute(
            "INSERT INTO conversations (id, user_id, title, created_at, updated_at, provider, "
            "model, total_tokens, total_cost, status, metadata) "
            "VALUES (?, ?, ?, ?, ?, 'aico', NULL, 0, 0.0, 'active', ?)",
            (conversation_id, user_id, title, ts, ts, dump_json("metadata", metadata)),
        )
        return self.get(conversation_id)

    def get(self, conversation_id: str) -> Conversation:
        row = self.conn.fetch_one(
            f"{_SELECT} WHERE c.id = ?", (check_id(conversation_id, "conversation_id"),)
        )
        if row is None or row["user_id"] is None:
            raise NotFound("no conversation with this conversation_id")
        return Conversation.from_row(row)

    def for_user(
        self, user_id: str, *, status: str | None = None, limit: int = 50, offset: int = 0
    ) -> list[Conversation]:
        """The user's conversations, most recently active first."""
        check_id(user_id, "user_id")
        check_count(limit, "limit", minimum=1, maximum=_MAX_PAGE)
        check_count(offset, "offset")
        clauses, params = ["c.user_id = ?"], [user_id]
        if status is not None:
            if status not in CONVERSATION_STATUSES:
                raise InvalidInput(f"status must be one of {', '.join(CONVERSATION_STATUSES)}")
            clauses.append("c.status = ?")
            params.append(status)
        rows = self.conn.fetch_all(
            f"{_SELECT} WHERE {' AND '.join(clauses)} "
            "ORDER BY c.updated_at DESC, c.id LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )
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
            raise NotFound("no conversation with this conversation_id")
        return self.get(conversation_id)

    def messages(
        self, conversation_id: str, *, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[MessageView], str | None]:
        """One page of the conversation's messages, oldest first, and the next page's cursor."""
        check_id(conversation_id, "conversation_id")
        check_count(limit, "limit", minimum=1, maximum=_MAX_PAGE)
        after_ts, after_rowid = (float("-inf"), -1) if cursor is None else _parse_cursor(cursor)
        rows = self.conn.fetch_all(
            "SELECT rowid AS _rowid, id, conversation_id, session_id, role, content, timestamp, "
            "tokens, metadata, consolidated_at FROM messages WHERE conversation_id = ? "
            "AND (timestamp > ? OR (timestamp = ? AND rowid > ?)) "
            "ORDER BY timestamp, rowid LIMIT ?",
            (conversation_id, after_ts, after_ts, after_rowid, limit + 1),
        )
        more = len(rows) > limit
        rows = rows[:limit]
        page = [
            MessageView(
                id=str(r["id"]),
                conversation_id=r["conversation_id"],
                session_id=str(r["session_id"]),
                role=str(r["role"]),
                content=str(r["content"]),
                timestamp=float(r["timestamp"]),
                tokens=r["tokens"],
                metadata=load_json(r["metadata"]),
                consolidated=r["consolidated_at"] is not None,
            )
            for r in rows
        ]
        last = rows[-1] if rows else None
        next_cursor = (
            _cursor(float(last["timestamp"]), int(last["_rowid"])) if more and last else None
        )
        return page, next_cursor
