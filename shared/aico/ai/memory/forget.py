"""Forget at every grain (a user, one conversation, one message), from every store.

Order, source of truth first: one log transaction deletes the rows and records the forget in
``forget_ledger`` (grain and ids only, ``pending``); then every derived store drops its copy
(working memory, segments and their FTS rows, Chroma, facts, feedback, logs, preferences,
and through the manager's hook the file index, knowledge.db and the analytics copy);
then FTS5 is optimized (so deleted terms leave the index's live pages), Chroma is purged
(rebuilt, so its files keep no deleted id or vector) and every WAL is checkpointed; last,
the ledger row is closed and its ids replaced by keyed hashes. A crash anywhere leaves a
pending ledger row, and the next open (or maintenance) re-applies it: each step is a delete
of what is still there, so re-applying is safe.

Forgetting one message also removes the segments that repeat it; the other messages of
those segments return to the unconsolidated pool and are consolidated again without it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aico.ai.memory._faults import fault
from aico.ai.memory.semantic import SemanticMemoryStore
from aico.ai.memory.working import WorkingMemoryStore
from aico.data.repositories import LogRepository, UserService
from aico.data.repositories._base import chunks
from aico.data.repositories.conversations import ConversationLog
from aico.errors import InvalidInput, NotFound, SemanticMemoryError
from aico.validation import check_id

__all__ = ["LEDGER_PURPOSE", "ForgetReport", "Forgetter", "LedgerEntry", "ledger_hash"]

LEDGER_PURPOSE = "forget/ledger"
"""The master-key subkey the closed ledger rows' ids are hashed with."""


def ledger_hash(key: bytes, value: str) -> str:
    """A keyed hash of one id: the closed ledger can match a restored id without keeping it."""
    return hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()


log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ForgetReport:
    """What one forget removed, per store (each count is of rows or entries deleted)."""

    user_id: str
    grain: str = "user"
    messages: int = 0
    conversations: int = 0
    sessions: int = 0
    working_entries: int = 0
    segments: int = 0
    facts: int = 0
    feedback: int = 0
    logs: int = 0
    attachments: int = 0
    facts_and_feedback: bool = False
    index_purge_pending: bool = False  # a Chroma server was unreachable: purged on repair
    details: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class LedgerEntry:
    id: int
    grain: str
    user_id: str
    conversation_id: str | None
    message_id: str | None
    session_ids: tuple[str, ...]
    message_ids: tuple[str, ...]


class Forgetter:
    """The forget path; used only by the ``MemoryManager``."""

    def __init__(
        self,
        *,
        log_conn: Any,
        core_conn: Any,
        sessions_conn: Callable[[], Any],
        semantic: SemanticMemoryStore,
        working: WorkingMemoryStore,
        hash_key: bytes,
        checkpoint: Callable[[], None],
        consolidate: Callable[[str], int],
        clock: Callable[[], float],
        elsewhere: Callable[[LedgerEntry], dict[str, int]] | None = None,
    ) -> None:
        self._log_conn = log_conn
        self._log = ConversationLog(log_conn)
        self._core = core_conn
        self._sessions_conn = sessions_conn
        self._semantic = semantic
        self._working = working
        self._hash_key = hash_key
        self._checkpoint = checkpoint
        self._consolidate = consolidate
        self._clock = clock
        self._elsewhere = elsewhere

    # -- the verb --------------------------------------------------------------------

    def forget(
        self,
        user_id: str,
        *,
        conversation_id: str | None = None,
        message_id: str | None = None,
    ) -> ForgetReport:
        check_id(user_id, "user_id")
        if conversation_id is not None and message_id is not None:
            raise InvalidInput("pass conversation_id or message_id, not both")
        grain = "user"
        if conversation_id is not None:
            check_id(conversation_id, "conversation_id")
            grain = "conversation"
        elif message_id is not None:
            check_id(message_id, "message_id")
            grain = "message"
        # Segments that repeat the message: found before the log changes (their source
        # rows tell which other messages go back to the pool).
        siblings: list[str] = []
        if grain == "message":
            assert message_id is not None
            segs = self._semantic.segments_of_messages([message_id])
            siblings = [m for m in self._messages_of_segments(segs) if m != message_id]
        counts: dict[str, int] = {}
        with self._log_conn.transaction():
            entry = self._record(grain, user_id, conversation_id, message_id, counts)
            if entry is None:
                # Another user's id answers exactly as a missing one (and is not touched).
                raise NotFound(f"this user has no such {grain}")
            if siblings:
                self._log.release(siblings)
        fault("after_forget_log")
        counts.update(self.apply(entry))
        return ForgetReport(
            user_id=user_id,
            grain=grain,
            messages=counts.get("messages", 0),
            conversations=counts.get("conversations", 0),
            sessions=counts.get("sessions", 0),
            working_entries=counts.get("working_entries", 0),
            segments=counts.get("segments", 0),
            facts=counts.get("facts", 0),
            feedback=counts.get("feedback", 0),
            logs=counts.get("logs", 0),
            attachments=counts.get("attachments", 0),
            facts_and_feedback=bool(counts.get("profile", 0)),
            index_purge_pending=bool(counts.get("index_purge_pending", 0)),
            details=counts,
        )

    def finish_pending(self) -> int:
        """Re-apply every forget a crash left half done; returns how many."""
        rows = self._log_conn.fetch_all(
            "SELECT * FROM forget_ledger WHERE completed_at IS NULL ORDER BY id"
        )
        done = 0
        for row in rows:
            if "index_purge_pending" not in self.apply(_entry(row)):
                done += 1
        return done

    # -- step 1: the log ---------------------------------------------------------------

    def _record(
        self,
        grain: str,
        user_id: str,
        conversation_id: str | None,
        message_id: str | None,
        counts: dict[str, int],
    ) -> LedgerEntry | None:
        conn = self._log_conn
        params: tuple[str | None, ...]
        if grain == "user":
            # Through the user's sessions (the log has no per-user index on messages).
            where = (
                "session_id IN (SELECT session_id FROM session_metadata WHERE user_id = ?) "
                "AND user_id = ?"
            )
            params = (user_id, user_id)
        elif grain == "conversation":
            where, params = "user_id = ? AND conversation_id = ?", (user_id, conversation_id)
        else:
            where, params = "user_id = ? AND id = ?", (user_id, message_id)
        rows = conn.fetch_all(f"SELECT id, session_id FROM messages WHERE {where}", params)
        message_ids = [str(r["id"]) for r in rows]
        sessions = sorted({str(r["session_id"]) for r in rows})
        if grain == "user":
            sessions = sorted(set(sessions) | set(self._log.sessions_of_user(user_id)))
        if grain == "message" and not message_ids:
            return None  # nothing of this user by that id (another user's id is not touched)
        if (
            grain == "conversation"
            and not message_ids
            and self._log.conversation_owner(str(conversation_id)) != user_id
        ):
            return None
        counts["attachments"] = _count_in(
            conn, "SELECT count(*) FROM message_attachments WHERE message_id IN ({})", message_ids
        )
        cursor = conn.execute(
            "INSERT INTO forget_ledger (grain, user_id, conversation_id, message_id, "
            "session_ids, requested_at) VALUES (?, ?, ?, ?, ?, ?)",
            (grain, user_id, conversation_id, message_id, json.dumps(sessions), self._clock()),
        )
        ledger_id = int(cursor.lastrowid)
        for chunk in chunks(message_ids, 500):
            marks = ",".join("?" * len(chunk))
            conn.execute(f"DELETE FROM working_outbox WHERE message_id IN ({marks})", chunk)
            conn.execute(f"DELETE FROM message_attachments WHERE message_id IN ({marks})", chunk)
        counts["messages"] = max(
            conn.execute(f"DELETE FROM messages WHERE {where}", params).rowcount, 0
        )
        if grain == "user":
            counts["conversations"] = max(
                conn.execute("DELETE FROM conversations WHERE user_id = ?", (user_id,)).rowcount, 0
            )
            conn.execute("DELETE FROM compaction_history WHERE user_id = ?", (user_id,))
            counts["sessions"] = max(
                conn.execute("DELETE FROM session_metadata WHERE user_id = ?", (user_id,)).rowcount,
                0,
            )
        else:
            if grain == "conversation":
                counts["conversations"] = max(
                    conn.execute(
                        "DELETE FROM conversations WHERE id = ? AND user_id = ?",
                        (conversation_id, user_id),
                    ).rowcount,
                    0,
                )
            # compaction_history keeps message ids: rewrite those lists without the forgotten.
            self._scrub_compactions(user_id, message_ids)
            counts["sessions"] = self._recount_sessions(sessions)
        return LedgerEntry(
            ledger_id,
            grain,
            user_id,
            conversation_id,
            message_id,
            tuple(sessions),
            tuple(message_ids),
        )

    def _scrub_compactions(self, user_id: str, message_ids: Sequence[str]) -> None:
        gone = set(message_ids)
        if not gone:
            return
        for row in self._log_conn.fetch_all(
            "SELECT id, preserved_messages FROM compaction_history "
            "WHERE user_id = ? AND preserved_messages IS NOT NULL",
            (user_id,),
        ):
            preserved = json.loads(row["preserved_messages"])
            kept = [m for m in preserved if m not in gone]
            if len(kept) != len(preserved):
                self._log_conn.execute(
                    "UPDATE compaction_history SET preserved_messages = ? WHERE id = ?",
                    (json.dumps(kept), row["id"]),
                )

    def _recount_sessions(self, sessions: Sequence[str]) -> int:
        """Keep ``session_metadata`` equal to the log; returns sessions left with no message."""
        emptied = 0
        for session_id in sessions:
            left = int(
                self._log_conn.fetch_value(
                    "SELECT count(*) FROM messages WHERE session_id = ?", (session_id,)
                )
                or 0
            )
            if left == 0:
                emptied += max(
                    self._log_conn.execute(
                        "DELETE FROM session_metadata WHERE session_id = ?", (session_id,)
                    ).rowcount,
                    0,
                )
            else:
                self._log_conn.execute(
                    "UPDATE session_metadata SET message_count = ? WHERE session_id = ?",
                    (left, session_id),
                )
        return emptied

    # -- step 2: the derived stores ----------------------------------------------------

    def apply(self, entry: LedgerEntry) -> dict[str, int]:
        """Remove the forgotten data from every derived store, then close the ledger row."""
        counts: dict[str, int] = {}
        user_id = entry.user_id
        if entry.grain == "user":
            counts["working_entries"] = self._working.delete_user(
                user_id, sessions=list(entry.session_ids)
            )
            counts["segments"] = self._semantic.delete_user(user_id)
            counts["logs"] = LogRepository(self._core).delete_for_user(user_id)
            counts["facts"] = _count(self._core, "facts", "user_id = ?", (user_id,))
            counts["feedback"] = _count(self._core, "feedback_events", "user_id = ?", (user_id,))
            try:
                UserService(self._core).delete_user(user_id)  # cascades facts + feedback
                counts["profile"] = 1
            except NotFound:
                counts["profile"] = 0
            self._sessions_conn().execute(
                "DELETE FROM user_preferences WHERE user_id = ?", (user_id,)
            )
        else:
            if entry.grain == "conversation":
                assert entry.conversation_id is not None
                segments = self._semantic.segments_of_conversation(user_id, entry.conversation_id)
                key, value = "conversation_id", entry.conversation_id
                message_ids = list(entry.message_ids)
                removed = 0
                for session_id in entry.session_ids:
                    removed += self._working.delete_messages(
                        session_id, message_ids, conversation_id=entry.conversation_id
                    )
            else:
                assert entry.message_id is not None
                segments = self._semantic.segments_of_messages([entry.message_id])
                key, value = "source_message_id", entry.message_id
                removed = sum(
                    self._working.delete_messages(s, [entry.message_id]) for s in entry.session_ids
                )
            counts["working_entries"] = removed
            counts["segments"] = self._semantic.delete_segments(segments, user_id=user_id)
            with self._core.transaction():
                counts["facts"] = max(
                    self._core.execute(
                        f"DELETE FROM facts WHERE user_id = ? AND {key} = ?", (user_id, value)
                    ).rowcount,
                    0,
                )
                feedback_key = "message_id" if key == "source_message_id" else key
                counts["feedback"] = max(
                    self._core.execute(
                        f"DELETE FROM feedback_events WHERE user_id = ? AND {feedback_key} = ?",
                        (user_id, value),
                    ).rowcount,
                    0,
                )
        if self._elsewhere is not None:
            # The other stores' copies (file index, knowledge, analytics): deletes of what is
            # still there, like every step here, so a replay after a crash is safe.
            counts.update(self._elsewhere(entry))
        self._semantic.optimize_fts()
        if not self._purge_index():
            counts["index_purge_pending"] = 1
            return counts  # the ledger row stays pending: the next repair finishes it
        fault("after_forget_derived")
        with self._log_conn.transaction():
            self._log_conn.execute(
                "UPDATE forget_ledger SET completed_at = ?, user_id = ?, conversation_id = ?, "
                "message_id = ?, session_ids = '[]' WHERE id = ?",
                (
                    self._clock(),
                    self._hash(user_id),
                    None if entry.conversation_id is None else self._hash(entry.conversation_id),
                    None if entry.message_id is None else self._hash(entry.message_id),
                    entry.id,
                ),
            )
            self._log.drop_orphan_working()
        self._checkpoint()
        if entry.grain != "user":
            # Messages released from deleted segments: consolidated again, without the
            # forgotten words, unless their session is still live (it will be, at its end).
            for session_id in entry.session_ids:
                row = self._log.session(session_id)
                if row is not None and row["status"] != "active":
                    self._consolidate(session_id)
        return counts

    def _purge_index(self) -> bool:
        """Purge Chroma; False (not an error) while a Chroma server is unreachable.

        Everything of the forgotten is already gone from the log and libSQL; the server
        holds only ids and rotated vectors, which the pending ledger row purges once it
        answers again. Anything else (a local index is purged by discarding it) raises.
        """
        try:
            self._semantic.purge_index()
        except SemanticMemoryError:
            if self._semantic.index_state != "unavailable":
                raise
            log.warning("forget: the Chroma server is unreachable; its purge is retried")
            return False
        return True

    def _messages_of_segments(self, segment_ids: Sequence[str]) -> list[str]:
        out: list[str] = []
        for chunk in chunks(list(segment_ids), 500):
            marks = ",".join("?" * len(chunk))
            out += [
                str(r["message_id"])
                for r in self._core.fetch_all(
                    "SELECT DISTINCT m.message_id FROM semantic_segment_messages m "
                    "JOIN semantic_segments s ON s.id = m.segment_rowid "
                    f"WHERE s.segment_id IN ({marks})",
                    chunk,
                )
            ]
        return out

    def _hash(self, value: str) -> str:
        return ledger_hash(self._hash_key, value)


def _entry(row: dict[str, Any]) -> LedgerEntry:
    return LedgerEntry(
        int(row["id"]),
        str(row["grain"]),
        str(row["user_id"]),
        row["conversation_id"],
        row["message_id"],
        tuple(json.loads(row["session_ids"] or "[]")),
        (),
    )


def _count(conn: Any, table: str, where: str, params: tuple[Any, ...]) -> int:
    return int(conn.fetch_value(f"SELECT count(*) FROM {table} WHERE {where}", params) or 0)


def _count_in(conn: Any, sql: str, values: Sequence[str]) -> int:
    total = 0
    for chunk in chunks(list(values), 500):
        total += int(conn.fetch_value(sql.format(",".join("?" * len(chunk))), chunk) or 0)
    return total
