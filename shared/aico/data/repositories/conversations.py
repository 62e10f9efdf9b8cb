"""``ConversationLog``: the message log in the conversations database, the source of truth.

Every message the companion stores is one row of ``messages``; its conversation, its
session's ``session_metadata`` row and a ``working_outbox`` row (working memory still to
be written; added by a trigger) commit in the same transaction (``append``), so nothing
derived can ever hold a message the log does not. Consolidation claims messages here
(``claim``) before it writes segments elsewhere, which makes it happen exactly once per
message whoever runs it.

Only the ``MemoryManager`` uses this repository: it alone knows what else must follow a
write to the log (see ``aico.ai.memory``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aico.data.repositories._base import Connection, chunks, dump_json, load_json
from aico.errors import InvalidInput, NotFound
from aico.validation import check_json

__all__ = [
    "ATTACHMENT_TYPES",
    "Attachment",
    "ConversationLog",
    "LoggedMessage",
    "PendingCompaction",
]

ATTACHMENT_TYPES = ("file", "image", "code", "diff")
MAX_ATTACHMENT_BYTES = 16 * 1024 * 1024

_MESSAGE_COLUMNS = (
    "id, user_id, session_id, conversation_id, role, content, timestamp, tokens, cost, "
    "tool_calls, tool_results, metadata, compaction_id, consolidated_at"
)
_CONVERSATION_COLUMNS = (
    "c.id, c.user_id, c.title, c.created_at, c.updated_at, c.provider, c.model, "
    "c.total_tokens, c.total_cost, c.status, "
    "(SELECT count(*) FROM messages m WHERE m.conversation_id = c.id) AS message_count"
)


@dataclass(frozen=True)
class Attachment:
    """A file, image, code or diff attached to a message; ``content`` is stored encrypted."""

    type: str
    content: bytes
    path: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.type not in ATTACHMENT_TYPES:
            raise InvalidInput(f"attachment type must be one of {', '.join(ATTACHMENT_TYPES)}")
        if not isinstance(self.content, bytes | bytearray):
            raise InvalidInput("attachment content must be bytes")
        if len(self.content) > MAX_ATTACHMENT_BYTES:
            raise InvalidInput(f"an attachment may hold at most {MAX_ATTACHMENT_BYTES} bytes")
        if self.path is not None and (not isinstance(self.path, str) or "\x00" in self.path):
            raise InvalidInput("attachment path must be a string without NUL characters")
        if not isinstance(self.metadata, dict):
            raise InvalidInput("attachment metadata must be a dict")


@dataclass(frozen=True)
class LoggedMessage:
    """One row of the log."""

    id: str
    user_id: str
    session_id: str
    conversation_id: str | None
    role: str
    content: str
    timestamp: float
    tokens: int | None = None
    cost: float = 0.0
    tool_calls: Any = None
    tool_results: Any = None
    metadata: dict[str, Any] = field(default_factory=dict)
    compaction_id: str | None = None
    consolidated_at: float | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> LoggedMessage:
        return cls(
            id=str(row["id"]),
            user_id=str(row["user_id"]),
            session_id=str(row["session_id"]),
            conversation_id=row["conversation_id"],
            role=str(row["role"]),
            content=str(row["content"]),
            timestamp=float(row["timestamp"]),
            tokens=row["tokens"],
            cost=float(row["cost"] or 0.0),
            tool_calls=_load_any(row["tool_calls"]),
            tool_results=_load_any(row["tool_results"]),
            metadata=load_json(row["metadata"]),
            compaction_id=row["compaction_id"],
            consolidated_at=row["consolidated_at"],
        )


@dataclass(frozen=True)
class PendingCompaction:
    """A consolidation whose messages are claimed but whose segments may not be stored yet."""

    id: str
    user_id: str
    session_id: str
    claimed_at: float


def _dump_any(field_name: str, value: Any) -> str | None:
    return None if value is None else check_json(value, field_name)


def _load_any(value: Any) -> Any:
    return None if value is None else json.loads(value)


def attachment_hash(content: bytes) -> str:
    """SHA-256 of the bytes; kept inside the encrypted file only, so it cannot leak them."""
    return hashlib.sha256(content).hexdigest()


class ConversationLog:
    """The log's reads and writes; takes the conversations connection, never opens one."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    # -- owners --------------------------------------------------------------------------

    def session_owner(self, session_id: str) -> str | None:
        value = self.conn.fetch_value(
            "SELECT user_id FROM session_metadata WHERE session_id = ?", (session_id,)
        )
        return None if value is None else str(value)

    def conversation_owner(self, conversation_id: str) -> str | None:
        value = self.conn.fetch_value(
            "SELECT user_id FROM conversations WHERE id = ?", (conversation_id,)
        )
        return None if value is None else str(value)

    # -- writing -------------------------------------------------------------------------

    def append(
        self,
        message: LoggedMessage,
        *,
        working_expires_at: float,
        provider: str,
        model: str | None,
        title: str | None,
        attachments: Sequence[Attachment] = (),
        user_exists: Callable[[], bool] = lambda: True,
    ) -> None:
        """Write one message with its conversation, attachments, session row and outbox row.

        Call inside ``conn.transaction()``: the owner checks and the writes must be atomic.
        A session and a conversation belong to the user who first wrote to them.
        ``user_exists`` is asked only when the message starts a new session: an existing
        session row of this owner proves the user is not forgotten (a forget deletes its
        rows in the log first), which saves a read of the users table per message.
        """
        m = message
        if m.conversation_id is not None:
            owner = self.conversation_owner(m.conversation_id)
            if owner is not None and owner != m.user_id:
                raise InvalidInput("this conversation_id belongs to another user")
            self.conn.execute(
                "INSERT INTO conversations (id, user_id, title, created_at, updated_at, "
                "provider, model, total_tokens, total_cost, status) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'active') "
                "ON CONFLICT(id) DO UPDATE SET updated_at = max(updated_at, excluded.updated_at), "
                "title = coalesce(excluded.title, title), "
                "model = coalesce(excluded.model, model), "
                "total_tokens = total_tokens + excluded.total_tokens, "
                "total_cost = total_cost + excluded.total_cost",
                (
                    m.conversation_id,
                    m.user_id,
                    title,
                    m.timestamp,
                    m.timestamp,
                    provider,
                    model,
                    m.tokens or 0,
                    m.cost,
                ),
            )
        # The session row first: its upsert only matches the owner's row, so a session of
        # another user changes nothing (rowcount 0) and the transaction is refused.
        session = self.conn.fetch_one(
            "INSERT INTO session_metadata (session_id, user_id, conversation_id, started_at, "
            "last_activity_at, message_count, working_memory_expires_at, status, updated_at) "
            "VALUES (?, ?, ?, ?, ?, 1, ?, 'active', ?) "
            "ON CONFLICT(session_id) DO UPDATE SET "
            "conversation_id = coalesce(excluded.conversation_id, conversation_id), "
            "last_activity_at = max(last_activity_at, excluded.last_activity_at), "
            "message_count = message_count + 1, "
            "working_memory_expires_at = max(coalesce(working_memory_expires_at, 0), "
            "excluded.working_memory_expires_at), "
            "status = 'active', updated_at = excluded.updated_at "
            "WHERE session_metadata.user_id = excluded.user_id RETURNING message_count",
            (
                m.session_id,
                m.user_id,
                m.conversation_id,
                m.timestamp,
                m.timestamp,
                working_expires_at,
                m.timestamp,
            ),
        )
        if session is None:
            raise InvalidInput("this session_id belongs to another user")
        if session["message_count"] == 1 and not user_exists():
            raise NotFound("no such user; create the user first")
        self.conn.execute(
            f"INSERT INTO messages ({_MESSAGE_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL)",
            (
                m.id,
                m.user_id,
                m.session_id,
                m.conversation_id,
                m.role,
                m.content,
                m.timestamp,
                m.tokens,
                m.cost,
                _dump_any("tool_calls", m.tool_calls),
                _dump_any("tool_results", m.tool_results),
                dump_json("metadata", m.metadata) if m.metadata else "{}",
            ),
        )
        for index, attachment in enumerate(attachments):
            content = bytes(attachment.content)
            self.conn.execute(
                "INSERT INTO message_attachments (id, message_id, type, path, content_hash, "
                "size_bytes, metadata, content) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    f"{m.id}:{index}",
                    m.id,
                    attachment.type,
                    attachment.path,
                    attachment_hash(content),
                    len(content),
                    dump_json("attachment metadata", attachment.metadata),
                    content,
                ),
            )

    # -- reading -------------------------------------------------------------------------

    def message(self, message_id: str) -> LoggedMessage | None:
        row = self.conn.fetch_one(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE id = ?", (message_id,)
        )
        return None if row is None else LoggedMessage.from_row(row)

    def messages_of_session(
        self, session_id: str, *, since: float | None = None
    ) -> list[LoggedMessage]:
        """The session's messages, oldest first; ``since``: only those stored after it."""
        rows = self.conn.fetch_all(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE session_id = ? AND timestamp > ? "
            "ORDER BY timestamp, rowid",
            (session_id, float("-inf") if since is None else since),
        )
        return [LoggedMessage.from_row(r) for r in rows]

    def live_sessions(self, now: float) -> list[str]:
        """Sessions whose working memory has not expired: what working memory should hold."""
        rows = self.conn.fetch_all(
            "SELECT session_id FROM session_metadata WHERE working_memory_expires_at > ? "
            "ORDER BY session_id",
            (now,),
        )
        return [str(r["session_id"]) for r in rows]

    def messages_of_user(self, user_id: str) -> list[LoggedMessage]:
        rows = self.conn.fetch_all(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE user_id = ? AND session_id IN "
            "(SELECT session_id FROM session_metadata WHERE user_id = ?) ORDER BY timestamp, rowid",
            (user_id, user_id),
        )
        return [LoggedMessage.from_row(r) for r in rows]

    def attachments(self, message_id: str) -> list[Attachment]:
        rows = self.conn.fetch_all(
            "SELECT type, path, metadata, content FROM message_attachments "
            "WHERE message_id = ? ORDER BY id",
            (message_id,),
        )
        return [
            Attachment(r["type"], bytes(r["content"] or b""), r["path"], load_json(r["metadata"]))
            for r in rows
        ]

    def count(self, user_id: str | None = None) -> int:
        if user_id is None:
            return int(self.conn.fetch_value("SELECT count(*) FROM messages") or 0)
        return int(
            self.conn.fetch_value(
                "SELECT count(*) FROM messages WHERE user_id = ? AND session_id IN "
                "(SELECT session_id FROM session_metadata WHERE user_id = ?)",
                (user_id, user_id),
            )
            or 0
        )

    def session(self, session_id: str) -> dict[str, Any] | None:
        return self.conn.fetch_one(
            "SELECT * FROM session_metadata WHERE session_id = ?", (session_id,)
        )

    def sessions_of_user(self, user_id: str) -> list[str]:
        rows = self.conn.fetch_all(
            "SELECT session_id FROM session_metadata WHERE user_id = ?", (user_id,)
        )
        return [str(r["session_id"]) for r in rows]

    def latest_session(self, user_id: str) -> str | None:
        """The user's most recently active session, or None (served by the owner index)."""
        value = self.conn.fetch_value(
            "SELECT session_id FROM session_metadata WHERE user_id = ? "
            "ORDER BY last_activity_at DESC, session_id LIMIT 1",
            (user_id,),
        )
        return None if value is None else str(value)

    # -- conversations (reads for the admin verbs and the backend) -----------------------

    def conversation(self, conversation_id: str) -> dict[str, Any] | None:
        """One conversation's row with its ``message_count``; None if there is none."""
        return self.conn.fetch_one(
            f"SELECT {_CONVERSATION_COLUMNS} FROM conversations c WHERE c.id = ?",
            (conversation_id,),
        )

    def conversations_of_user(
        self, user_id: str, *, limit: int = 100, offset: int = 0
    ) -> list[dict[str, Any]]:
        """The user's conversations, most recently updated first, each with its message count.

        The counts come from the messages' conversation index, one probe per listed row.
        """
        return self.conn.fetch_all(
            f"SELECT {_CONVERSATION_COLUMNS} FROM conversations c WHERE c.user_id = ? "
            "ORDER BY c.updated_at DESC, c.id LIMIT ? OFFSET ?",
            (user_id, limit, offset),
        )

    def conversation_count(self, user_id: str) -> int:
        return int(
            self.conn.fetch_value(
                "SELECT count(*) FROM conversations WHERE user_id = ?", (user_id,)
            )
            or 0
        )

    def messages_of_conversation(
        self, conversation_id: str, *, limit: int = 100, offset: int = 0
    ) -> list[LoggedMessage]:
        """A page of the conversation's messages, oldest first."""
        rows = self.conn.fetch_all(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ? "
            "ORDER BY timestamp, rowid LIMIT ? OFFSET ?",
            (conversation_id, limit, offset),
        )
        return [LoggedMessage.from_row(r) for r in rows]

    # -- working memory outbox -----------------------------------------------------------

    def pending_working(
        self,
        *,
        session_id: str | None = None,
        limit: int = 1000,
        queued_before: float | None = None,
    ) -> list[LoggedMessage]:
        """Messages in the log whose working-memory append has not been confirmed.

        ``queued_before`` (seconds ago, by SQLite's wall clock) skips rows queued more
        recently: another process may be about to append them itself.
        """
        clauses: list[str] = []
        params_list: list[Any] = []
        if session_id is not None:
            clauses.append("w.session_id = ?")
            params_list.append(session_id)
        if queued_before is not None:
            clauses.append("w.queued_at <= unixepoch('subsec') - ?")
            params_list.append(queued_before)
        where = f"WHERE {' AND '.join(clauses)} " if clauses else ""
        params: tuple[Any, ...] = tuple(params_list)
        rows = self.conn.fetch_all(
            "SELECT m.id, m.user_id, m.session_id, m.conversation_id, m.role, m.content, "
            "m.timestamp, m.tokens, m.cost, m.tool_calls, m.tool_results, m.metadata, "
            "m.compaction_id, m.consolidated_at FROM working_outbox w "
            f"JOIN messages m ON m.id = w.message_id {where}"
            "ORDER BY w.created_at, w.message_id LIMIT ?",
            (*params, limit),
        )
        return [LoggedMessage.from_row(r) for r in rows]

    def working_done(self, message_ids: Iterable[str]) -> None:
        ids = list(message_ids)
        for chunk in chunks(ids, 500):
            marks = ",".join("?" * len(chunk))
            self.conn.execute(f"DELETE FROM working_outbox WHERE message_id IN ({marks})", chunk)

    def drop_orphan_working(self) -> int:
        """Outbox rows whose message is gone (forgotten before its append was confirmed)."""
        result = self.conn.execute(
            "DELETE FROM working_outbox WHERE message_id NOT IN (SELECT id FROM messages)"
        )
        return max(int(result.rowcount), 0)

    # -- sessions ------------------------------------------------------------------------

    def end_session(self, session_id: str, now: float) -> bool:
        result = self.conn.execute(
            "UPDATE session_metadata SET status = 'ended', updated_at = ? "
            "WHERE session_id = ? AND status IN ('active', 'expired')",
            (now, session_id),
        )
        return bool(result.rowcount)

    def expire_sessions(self, now: float) -> int:
        """Active sessions whose working memory has run out become ``expired``."""
        result = self.conn.execute(
            "UPDATE session_metadata SET status = 'expired', updated_at = ? "
            "WHERE status = 'active' AND working_memory_expires_at <= ?",
            (now, now),
        )
        return max(int(result.rowcount), 0)

    def sessions_to_consolidate(self, idle_before: float) -> list[str]:
        """Sessions with unclaimed messages that ended, expired or went idle."""
        rows = self.conn.fetch_all(
            "SELECT DISTINCT m.session_id FROM messages m "
            "JOIN session_metadata s ON s.session_id = m.session_id "
            "WHERE m.compaction_id IS NULL AND (s.status IN ('ended', 'expired') "
            "OR s.last_activity_at < ?)",
            (idle_before,),
        )
        return [str(r["session_id"]) for r in rows]

    # -- consolidation -------------------------------------------------------------------

    def claim(
        self, session_id: str, compaction_id: str, now: float, trigger: str
    ) -> list[LoggedMessage]:
        """Claim the session's unclaimed messages for one consolidation; [] if none.

        Call inside ``conn.transaction()`` (``BEGIN IMMEDIATE``): the read and the claim are
        then one atomic step across threads and processes, so no message is claimed twice.
        """
        # One statement reads and claims (RETURNING gives the claimed rows).
        rows = self.conn.fetch_all(
            "UPDATE messages SET compaction_id = ? "
            "WHERE session_id = ? AND compaction_id IS NULL "
            f"RETURNING rowid AS _rowid, {_MESSAGE_COLUMNS}",
            (compaction_id, session_id),
        )
        if not rows:
            return []
        rows.sort(key=lambda r: (r["timestamp"], r["_rowid"]))
        messages = [LoggedMessage.from_row(r) for r in rows]
        self.conn.execute(
            "INSERT INTO compaction_history (id, conversation_id, trigger_type, "
            "original_message_count, performed_at, preserved_messages, user_id, session_id, "
            "status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending')",
            (
                compaction_id,
                _single(m.conversation_id for m in messages),
                trigger,
                len(messages),
                now,
                json.dumps([m.id for m in messages]),
                messages[0].user_id,
                session_id,
            ),
        )
        return messages

    def pending_compactions(self) -> list[PendingCompaction]:
        rows = self.conn.fetch_all(
            "SELECT id, user_id, session_id, performed_at FROM compaction_history "
            "WHERE status = 'pending' ORDER BY performed_at"
        )
        return [
            PendingCompaction(
                str(r["id"]), str(r["user_id"]), str(r["session_id"]), float(r["performed_at"])
            )
            for r in rows
        ]

    def claimed_messages(self, compaction_id: str) -> list[LoggedMessage]:
        rows = self.conn.fetch_all(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages "
            "WHERE compaction_id = ? AND compaction_id IS NOT NULL ORDER BY timestamp, rowid",
            (compaction_id,),
        )
        return [LoggedMessage.from_row(r) for r in rows]

    def finish_compaction(
        self,
        compaction_id: str,
        *,
        session_id: str,
        segments: int,
        tokens_saved: int,
        now: float,
    ) -> bool:
        """Mark a consolidation done and its messages consolidated; False if already done."""
        result = self.conn.execute(
            "UPDATE compaction_history SET status = 'done', compacted_message_count = ?, "
            "tokens_saved = ?, performed_at = ? WHERE id = ? AND status = 'pending'",
            (segments, tokens_saved, now, compaction_id),
        )
        if not result.rowcount:
            return False
        self.conn.execute(
            "UPDATE messages SET consolidated_at = ? "
            "WHERE compaction_id = ? AND compaction_id IS NOT NULL",
            (now, compaction_id),
        )
        self.conn.execute(
            "UPDATE session_metadata SET status = 'consolidated', updated_at = ? "
            "WHERE session_id = ? AND status IN ('ended', 'expired') AND NOT EXISTS "
            "(SELECT 1 FROM messages WHERE session_id = ? AND consolidated_at IS NULL)",
            (now, session_id, session_id),
        )
        return True

    def release(self, message_ids: Sequence[str]) -> int:
        """Return messages to the unconsolidated pool (their segments were deleted)."""
        total = 0
        for chunk in chunks(list(message_ids), 500):
            marks = ",".join("?" * len(chunk))
            total += max(
                self.conn.execute(
                    "UPDATE messages SET compaction_id = NULL, consolidated_at = NULL "
                    f"WHERE id IN ({marks})",
                    chunk,
                ).rowcount,
                0,
            )
        return total


def _single(values: Iterable[str | None]) -> str | None:
    """The one conversation a batch belongs to, or None when it spans several (or none)."""
    found = set(values)
    return found.pop() if len(found) == 1 else None
