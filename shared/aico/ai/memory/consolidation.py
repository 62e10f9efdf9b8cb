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

Many sessions at once (``consolidate_many``, ``finish_pending``) share each step: one claim
transaction, one segment transaction and one done transaction per batch of up to
``BATCH_MESSAGES`` claimed messages, each session still its own claim. The outbox pass that
follows then embeds every session's segments together, in its own batches: MiniLM takes
about a third longer per text over one session's ten segments than over hundreds sorted by
length (more padding, more calls), and each Chroma upsert has a fixed cost.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from aico.ai.memory._faults import fault
from aico.ai.memory.context import estimate_tokens
from aico.ai.memory.semantic import Message, Segment, SemanticMemoryStore, segment_messages
from aico.data.repositories.conversations import ConversationLog, LoggedMessage

__all__ = ["BATCH_MESSAGES", "Consolidator", "segment_id_for"]

log = logging.getLogger(__name__)

#: Claimed messages per batch of ``consolidate_many``: bounds the time one claim
#: transaction holds the log's write lock (``store_message`` waits for it) and the
#: segments held in memory, while still filling the outbox's batches.
BATCH_MESSAGES = 512

Claim = tuple[str, list[LoggedMessage]]  # (compaction id, its claimed messages)


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
        return self._apply([(compaction_id, messages)])

    def consolidate_many(self, session_ids: Iterable[str], *, trigger: str = "idle") -> int:
        """``consolidate`` each session, the sessions batched (see the module); returns
        segments made. A session another caller claimed meanwhile is skipped, as there."""
        sessions = list(dict.fromkeys(session_ids))
        made = start = 0
        while start < len(sessions):
            claims, start = self._claim_batch(sessions, start, trigger)
            if claims:
                fault("after_claim")
                made += self._apply(claims)
        return made

    def _claim_batch(
        self, sessions: list[str], start: int, trigger: str
    ) -> tuple[list[Claim], int]:
        """Claim ``sessions[start:]`` in one transaction until ``BATCH_MESSAGES`` messages
        are claimed; returns the claims and where the next batch starts."""
        claims: list[Claim] = []
        claimed = 0
        with self._log_conn.transaction():
            while start < len(sessions) and claimed < BATCH_MESSAGES:
                compaction_id = uuid.uuid4().hex
                messages = self._log.claim(sessions[start], compaction_id, self._clock(), trigger)
                start += 1
                if messages:
                    claims.append((compaction_id, messages))
                    claimed += len(messages)
        return claims, start

    def index_due(self) -> bool:
        """Whether a full outbox batch (``outbox_batch_size`` rows) is queued.

        For ``end_session``: embedding one session's few segments right away costs the
        encoder about a third more per segment than one pass over many sessions' (see the
        module), so until a full batch is queued they can wait for the next outbox pass
        (the backend's outbox job, ``maintenance``); BM25 finds them meanwhile.
        """
        semantic = self._semantic
        return semantic.pending_outbox() >= semantic.config.outbox_batch_size

    def finish_pending(self, *, older_than: float | None = None) -> int:
        """Replay every claim a crash (or another process, still working) left pending.

        ``older_than`` skips claims made after that time (another process is probably
        still on them; replaying would be correct, only redundant). Returns segments made.
        Claims are replayed in batches, as ``consolidate_many`` applies them.
        """
        made = 0
        batch: list[Claim] = []
        claimed = 0
        for pending in self._log.pending_compactions():
            if older_than is not None and pending.claimed_at >= older_than:
                continue
            messages = self._log.claimed_messages(pending.id)
            batch.append((pending.id, messages))
            claimed += len(messages)
            if claimed >= BATCH_MESSAGES:
                made += self._apply(batch)
                batch, claimed = [], 0
        if batch:
            made += self._apply(batch)
        return made

    def _apply(self, claims: list[Claim]) -> int:
        """Steps 2 and 3 for ``claims``: their segments in one transaction of the core
        database, then every claim marked done in one transaction of the log."""
        users: dict[str, bool] = {}
        cuts = [self._cut(compaction_id, messages, users) for compaction_id, messages in claims]
        made = self._semantic.add_segments(
            [segment for cut in cuts for segment in cut], index=False, skip_existing=True
        )
        fault("after_segments")
        now = self._clock()
        with self._log_conn.transaction():
            for (compaction_id, messages), cut in zip(claims, cuts, strict=True):
                before = sum(m.tokens or estimate_tokens(m.content) for m in messages)
                after = sum(estimate_tokens(s.text) for s in cut)
                self._log.finish_compaction(
                    compaction_id,
                    session_id=messages[0].session_id if messages else "",
                    segments=len(cut),
                    tokens_saved=before - after,
                    now=now,
                )
        return len(made)

    def _cut(
        self, compaction_id: str, messages: list[LoggedMessage], users: dict[str, bool]
    ) -> list[Segment]:
        """The segments of one claim, with ids derived from it; none when its user is gone
        (forgotten after the claim: the forget removes the rest)."""
        if not messages:
            return []
        user_id = messages[0].user_id
        if user_id not in users:
            users[user_id] = (
                self._core.fetch_value("SELECT 1 FROM users WHERE user_id = ?", (user_id,))
                is not None
            )
        if not users[user_id]:
            return []
        segments: list[Segment] = []
        groups: dict[tuple[str, str | None], list[LoggedMessage]] = {}
        for m in messages:
            groups.setdefault((m.user_id, m.conversation_id), []).append(m)
        for (group_user, conversation_id), group in groups.items():
            cut = segment_messages(
                group_user,
                [Message(m.role, m.content, m.timestamp, m.id) for m in group],
                conversation_id=conversation_id,
                session_id=group[0].session_id,
                config=self._semantic.config.segmentation,
            )
            for segment in cut:
                ids = list(segment.message_ids)
                segments.append(replace(segment, segment_id=segment_id_for(compaction_id, ids)))
        return segments
