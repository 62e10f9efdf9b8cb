"""Consolidation: a session's messages become long-term segments, exactly once.

The log and the segments live in two database files, so one transaction cannot cover both.
Exactly-once comes from three steps, each idempotent:

1. **claim** (conversations database, ``BEGIN IMMEDIATE``): the session's unclaimed
   messages get one ``compaction_id`` and a ``pending`` ``compaction_history`` row. Reading
   and claiming are one atomic step, so two callers (threads or processes) never claim the
   same message.
2. **segments** (core database, one transaction): segments are cut from the claimed
   messages, with ids derived from the claim and the message ids, and inserted with
   ``skip_existing``: replaying step 2 stores nothing twice.
3. **done** (conversations database): the claim is marked done and the messages
   consolidated.

A crash after 1 or 2 leaves a ``pending`` claim; ``finish_pending`` (run on open and by
maintenance) replays 2 and 3 from the claimed messages. The outbox then embeds the segments.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from aico.ai.memory._faults import fault
from aico.ai.memory.context import estimate_tokens
from aico.ai.memory.semantic import Message, Segment, SemanticMemoryStore, segment_messages
from aico.data.repositories.conversations import ConversationLog, LoggedMessage

__all__ = ["Consolidator", "segment_id_for"]

log = logging.getLogger(__name__)


def segment_id_for(compaction_id: str, message_ids: list[str]) -> str:
    """The deterministic id of the segment one claim cuts from these messages."""
    digest = hashlib.sha256(f"{compaction_id}|{','.join(message_ids)}".encode()).hexdigest()
    return digest[:32]


class Consolidator:
    """Claims, segments and closes consolidations; used only by the ``MemoryManager``."""

    def __init__(
        self,
        log_conn: Any,
        core_conn: Any,
        semantic: SemanticMemoryStore,
        clock: Callable[[], float],
    ) -> None:
        self._log_conn = log_conn
        self._log = ConversationLog(log_conn)
        self._core = core_conn
        self._semantic = semantic
        self._clock = clock

    def consolidate(self, session_id: str, *, trigger: str = "manual", end: bool = False) -> int:
        """Claim and consolidate the session's unclaimed messages; returns segments made.

        ``end`` also marks the session ended, in the claim's transaction (one commit).
        """
        compaction_id = uuid.uuid4().hex
        with self._log_conn.transaction():
            if end:
                self._log.end_session(session_id, self._clock())
            messages = self._log.claim(session_id, compaction_id, self._clock(), trigger)
        if not messages:
            return 0
        fault("after_claim")
        return self._apply(compaction_id, messages)

    def finish_pending(self, *, older_than: float | None = None) -> int:
        """Replay every claim a crash (or another process, still working) left pending.

        ``older_than`` skips claims made after that time (another process is probably
        still on them; replaying would be correct, only redundant). Returns segments made.
        """
        made = 0
        for pending in self._log.pending_compactions():
            if older_than is not None and pending.claimed_at >= older_than:
                continue
            messages = self._log.claimed_messages(pending.id)
            made += self._apply(pending.id, messages)
        return made

    def _apply(self, compaction_id: str, messages: list[LoggedMessage]) -> int:
        segments: list[Segment] = []
        user_exists = bool(messages) and (
            self._core.fetch_value("SELECT 1 FROM users WHERE user_id = ?", (messages[0].user_id,))
            is not None
        )
        if user_exists:
            groups: dict[tuple[str, str | None], list[LoggedMessage]] = {}
            for m in messages:
                groups.setdefault((m.user_id, m.conversation_id), []).append(m)
            for (user_id, conversation_id), group in groups.items():
                cut = segment_messages(
                    user_id,
                    [Message(m.role, m.content, m.timestamp, m.id) for m in group],
                    conversation_id=conversation_id,
                    session_id=group[0].session_id,
                    config=self._semantic.config.segmentation,
                )
                for segment in cut:
                    ids = list(segment.message_ids)
                    segments.append(replace(segment, segment_id=segment_id_for(compaction_id, ids)))
        # A user forgotten after the claim: nothing to store; the forget removes the rest.
        made = self._semantic.add_segments(segments, index=False, skip_existing=True)
        fault("after_segments")
        before = sum(m.tokens or estimate_tokens(m.content) for m in messages)
        after = sum(estimate_tokens(s.text) for s in segments)
        with self._log_conn.transaction():
            self._log.finish_compaction(
                compaction_id,
                session_id=messages[0].session_id if messages else "",
                segments=len(segments),
                tokens_saved=before - after,
                now=self._clock(),
            )
        return len(made)
