"""``RelevanceRepository``: whether a context item was useful (``context_relevance_feedback``).

An item is what a context bundle held: a long-term memory segment, a fact, a recent message
(or a file of the file index). ``context_type`` says which and ``file_path`` holds the
item's key: its id, or the path for a file (the specification's tables came from a file
assistant; the column keeps its name). ``relevance_score`` is the score retrieval gave the
item, ``actual_usefulness`` what the feedback said (1.0 useful, 0.0 not, or in between).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aico.data.repositories._base import new_id
from aico.data.repositories.knowledge._table import KnowledgeTable, unit
from aico.errors import InvalidInput
from aico.validation import check_id, check_text

__all__ = [
    "CONTEXT_TYPES",
    "FEEDBACK_SOURCES",
    "ContextFeedback",
    "RelevanceRepository",
    "UsefulnessSummary",
]

CONTEXT_TYPES = ("segment", "fact", "message", "file")
FEEDBACK_SOURCES = ("implicit", "explicit")
_MAX_KEY = 4096


@dataclass(frozen=True)
class ContextFeedback:
    id: str
    user_id: str
    context_type: str
    item_key: str = field(repr=False)
    conversation_id: str | None
    relevance_score: float | None
    actual_usefulness: float | None
    feedback_source: str
    recorded_at: float

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ContextFeedback:
        return cls(
            id=row["id"],
            user_id=row["user_id"],
            context_type=row["context_type"],
            item_key=row["file_path"],
            conversation_id=row["conversation_id"],
            relevance_score=row["relevance_score"],
            actual_usefulness=row["actual_usefulness"],
            feedback_source=row["feedback_source"],
            recorded_at=float(row["recorded_at"]),
        )


@dataclass(frozen=True)
class UsefulnessSummary:
    """Feedback on one kind of item: how many, how many useful (>= 0.5), mean usefulness."""

    context_type: str
    count: int
    useful: int
    mean_usefulness: float | None


def context_type(value: object) -> str:
    if value not in CONTEXT_TYPES:
        raise InvalidInput(f"context_type must be one of {', '.join(CONTEXT_TYPES)}")
    return str(value)


class RelevanceRepository(KnowledgeTable[ContextFeedback]):
    table = "context_relevance_feedback"
    noun = "context feedback"
    type_column = "context_type"

    def _row(self, row: dict[str, Any]) -> ContextFeedback:
        return ContextFeedback.from_row(row)

    def record(
        self,
        user_id: str,
        item_type: str,
        item_key: str,
        *,
        actual_usefulness: float,
        relevance_score: float | None = None,
        conversation_id: str | None = None,
        feedback_source: str = "explicit",
    ) -> ContextFeedback:
        """Record one piece of feedback on one item (each call is a new row)."""
        check_id(user_id, "user_id")
        key_limit = _MAX_KEY if item_type == "file" else 128
        item_id = new_id()
        values = {
            "id": item_id,
            "user_id": user_id,
            "context_type": context_type(item_type),
            "file_path": check_text(item_key, "item key", required=True, limit=key_limit),
            "conversation_id": None
            if conversation_id is None
            else check_id(conversation_id, "conversation_id"),
            "relevance_score": unit(relevance_score, "relevance_score"),
            "actual_usefulness": unit(actual_usefulness, "actual_usefulness"),
            "feedback_source": feedback_source_check(feedback_source),
            "recorded_at": self._now(),
        }
        if values["actual_usefulness"] is None:
            raise InvalidInput("actual_usefulness is required")
        self._insert(values)
        return self.get(item_id, user_id=user_id)

    def for_item(
        self, user_id: str, item_type: str, item_key: str, *, limit: int = 100
    ) -> list[ContextFeedback]:
        """Feedback on one item, newest first."""
        check_id(user_id, "user_id")
        return self._select(
            ["user_id = ?", "context_type = ?", "file_path = ?"],
            [
                user_id,
                context_type(item_type),
                check_text(item_key, "item key", required=True, limit=_MAX_KEY),
            ],
            limit=limit,
            offset=0,
        )

    def summary(self, user_id: str) -> list[UsefulnessSummary]:
        """Per kind of item: how often feedback said it was useful (for tuning retrieval)."""
        check_id(user_id, "user_id")
        rows = self.conn.fetch_all(
            "SELECT context_type, count(*) AS n, "
            "sum(CASE WHEN actual_usefulness >= 0.5 THEN 1 ELSE 0 END) AS useful, "
            "avg(actual_usefulness) AS mean FROM context_relevance_feedback "
            "WHERE user_id = ? GROUP BY context_type ORDER BY context_type",
            (user_id,),
        )
        return [
            UsefulnessSummary(
                context_type=str(r["context_type"]),
                count=int(r["n"]),
                useful=int(r["useful"] or 0),
                mean_usefulness=None if r["mean"] is None else float(r["mean"]),
            )
            for r in rows
        ]

    def delete_conversation(self, user_id: str, conversation_id: str) -> int:
        """Delete the feedback given in one conversation (after it was forgotten)."""
        check_id(user_id, "user_id")
        check_id(conversation_id, "conversation_id")
        result = self.conn.execute(
            "DELETE FROM context_relevance_feedback WHERE user_id = ? AND conversation_id = ?",
            (user_id, conversation_id),
        )
        return max(int(result.rowcount), 0)


def feedback_source_check(value: object) -> str:
    if value not in FEEDBACK_SOURCES:
        raise InvalidInput(f"feedback_source must be one of {', '.join(FEEDBACK_SOURCES)}")
    return str(value)
