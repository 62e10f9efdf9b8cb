"""``EffectivenessRepository``: how well a conversation went (``conversation_effectiveness``).

The numbers are measured from the message log (``measure``: pure, no I/O), not typed in:
message and turn counts, duration, tokens and cost. The caller adds what the log cannot
know: the user's satisfaction (1-5), a success score, the task, key factors, lessons.
One row per (user, conversation): recording again re-measures and replaces it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from aico.data.repositories._base import new_id
from aico.data.repositories.conversations import LoggedMessage
from aico.data.repositories.knowledge._table import (
    KnowledgeTable,
    json_column,
    label,
    load_json_column,
    optional_text,
    schema_refused,
    unit,
)
from aico.errors import InvalidInput
from aico.validation import check_id

__all__ = [
    "ConversationEffectiveness",
    "ConversationMetrics",
    "EffectivenessRepository",
    "measure",
    "satisfaction",
]


@dataclass(frozen=True)
class ConversationMetrics:
    """What the log says about one conversation.

    ``turn_count``: runs of consecutive user messages (a user speaking, then the replies
    until they speak again), so three user lines in a row are one turn. ``tokens_used`` is
    None when no message recorded a token count (unknown, not zero). ``completion_time_minutes``
    is the duration rounded to the nearest minute (half up).
    """

    message_count: int
    user_messages: int
    assistant_messages: int
    turn_count: int
    duration_seconds: float
    tokens_used: int | None
    cost: float

    @property
    def completion_time_minutes(self) -> int:
        return math.floor(self.duration_seconds / 60.0 + 0.5)


def measure(messages: Iterable[LoggedMessage]) -> ConversationMetrics:
    """Count a conversation's messages (any order; timestamps give first and last)."""
    count = users = assistants = turns = 0
    first = last = None
    tokens: int | None = None
    cost = 0.0
    previous_user = False
    for m in sorted(messages, key=lambda m: m.timestamp):
        count += 1
        first = m.timestamp if first is None else first
        last = m.timestamp
        is_user = m.role == "user"
        users += is_user
        assistants += m.role == "assistant"
        turns += is_user and not previous_user
        previous_user = is_user
        if m.tokens is not None:
            tokens = (tokens or 0) + int(m.tokens)
        cost += float(m.cost or 0.0)
    return ConversationMetrics(
        message_count=count,
        user_messages=users,
        assistant_messages=assistants,
        turn_count=turns,
        duration_seconds=0.0 if first is None or last is None else last - first,
        tokens_used=tokens,
        cost=cost,
    )


def satisfaction(value: object) -> int | None:
    """The specification's ``CHECK (user_satisfaction BETWEEN 1 AND 5)``, in Python."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5:
        raise InvalidInput("user_satisfaction must be an integer from 1 to 5")
    return value


@dataclass(frozen=True)
class ConversationEffectiveness:
    id: str
    user_id: str
    conversation_id: str
    task_type: str | None
    success_score: float | None
    completion_time_minutes: int | None
    tokens_used: int | None
    cost: float | None
    user_satisfaction: int | None
    key_factors: Any = field(repr=False)
    lessons_learned: str | None = field(repr=False)
    recorded_at: float
    message_count: int | None
    turn_count: int | None
    duration_seconds: float | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ConversationEffectiveness:
        return cls(
            id=row["id"],
            user_id=row["user_id"],
            conversation_id=row["conversation_id"],
            task_type=row["task_type"],
            success_score=row["success_score"],
            completion_time_minutes=row["completion_time_minutes"],
            tokens_used=row["tokens_used"],
            cost=row["cost"],
            user_satisfaction=row["user_satisfaction"],
            key_factors=load_json_column(row["key_factors"]),
            lessons_learned=row["lessons_learned"],
            recorded_at=float(row["recorded_at"]),
            message_count=row["message_count"],
            turn_count=row["turn_count"],
            duration_seconds=row["duration_seconds"],
        )


class EffectivenessRepository(KnowledgeTable[ConversationEffectiveness]):
    table = "conversation_effectiveness"
    noun = "effectiveness record"
    type_column = "task_type"

    def _row(self, row: dict[str, Any]) -> ConversationEffectiveness:
        return ConversationEffectiveness.from_row(row)

    def record(
        self,
        user_id: str,
        conversation_id: str,
        metrics: ConversationMetrics,
        *,
        task_type: str | None = None,
        success_score: float | None = None,
        user_satisfaction: int | None = None,
        key_factors: Any = None,
        lessons_learned: str | None = None,
    ) -> ConversationEffectiveness:
        """Store the conversation's measured metrics and the caller's assessment.

        The caller has checked that ``conversation_id`` is ``user_id``'s (the log knows
        the owner; this store does not). A second record of the same conversation replaces
        the first, keeping its id.
        """
        check_id(user_id, "user_id")
        check_id(conversation_id, "conversation_id")
        if not isinstance(metrics, ConversationMetrics):
            raise InvalidInput("metrics must be a ConversationMetrics")
        values = {
            "task_type": None if task_type is None else label(task_type, "task_type"),
            "success_score": unit(success_score, "success_score"),
            "completion_time_minutes": metrics.completion_time_minutes,
            "tokens_used": metrics.tokens_used,
            "cost": metrics.cost,
            "user_satisfaction": satisfaction(user_satisfaction),
            "key_factors": json_column(key_factors, "key_factors"),
            "lessons_learned": optional_text(lessons_learned, "lessons_learned"),
            "recorded_at": self._now(),
            "message_count": metrics.message_count,
            "turn_count": metrics.turn_count,
            "duration_seconds": metrics.duration_seconds,
        }
        with self.conn.transaction():
            existing = self.conn.fetch_value(
                "SELECT id FROM conversation_effectiveness "
                "WHERE user_id = ? AND conversation_id = ?",
                (user_id, conversation_id),
            )
            if existing is None:
                item_id = new_id()
                self._insert(
                    {"id": item_id, "user_id": user_id, "conversation_id": conversation_id} | values
                )
            else:
                item_id = str(existing)
                assignments = ", ".join(f"{column} = ?" for column in values)
                with schema_refused(self.noun):
                    self.conn.execute(
                        f"UPDATE conversation_effectiveness SET {assignments} WHERE id = ?",
                        (*values.values(), item_id),
                    )
        return self.get(item_id, user_id=user_id)

    def for_conversation(self, user_id: str, conversation_id: str) -> ConversationEffectiveness:
        check_id(user_id, "user_id")
        check_id(conversation_id, "conversation_id")
        row = self.conn.fetch_one(
            "SELECT * FROM conversation_effectiveness WHERE user_id = ? AND conversation_id = ?",
            (user_id, conversation_id),
        )
        if row is None:
            raise self._not_found()
        return ConversationEffectiveness.from_row(row)

    def delete_conversation(self, user_id: str, conversation_id: str) -> int:
        """Delete the conversation's record (after the conversation was forgotten)."""
        check_id(user_id, "user_id")
        check_id(conversation_id, "conversation_id")
        result = self.conn.execute(
            "DELETE FROM conversation_effectiveness WHERE user_id = ? AND conversation_id = ?",
            (user_id, conversation_id),
        )
        return max(int(result.rowcount), 0)
