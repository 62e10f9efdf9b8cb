"""``PatternRepository``: approaches that worked, and how often (``success_patterns``).

The specification puts no CHECK on ``confidence_score`` and ``effectiveness_rating``; aico
keeps both in ``[0, 1]`` like every other score of the store, checked here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aico.data.repositories._base import new_id
from aico.data.repositories.knowledge._table import (
    KnowledgeTable,
    json_column,
    label,
    load_json_column,
    optional_text,
    unit,
)
from aico.errors import InvalidInput
from aico.validation import check_id

__all__ = ["PatternRepository", "SuccessPattern"]


@dataclass(frozen=True)
class SuccessPattern:
    id: str
    user_id: str
    pattern_type: str
    description: str | None = field(repr=False)
    context: Any = field(repr=False)
    success_indicators: Any = field(repr=False)
    failure_indicators: Any = field(repr=False)
    confidence_score: float | None
    usage_count: int
    last_successful: float | None
    effectiveness_rating: float | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> SuccessPattern:
        last = row["last_successful"]
        return cls(
            id=row["id"],
            user_id=row["user_id"],
            pattern_type=row["pattern_type"],
            description=row["description"],
            context=load_json_column(row["context"]),
            success_indicators=load_json_column(row["success_indicators"]),
            failure_indicators=load_json_column(row["failure_indicators"]),
            confidence_score=row["confidence_score"],
            usage_count=int(row["usage_count"] or 0),
            last_successful=None if last is None else float(last),
            effectiveness_rating=row["effectiveness_rating"],
        )


class PatternRepository(KnowledgeTable[SuccessPattern]):
    table = "success_patterns"
    noun = "pattern"
    type_column = "pattern_type"

    def _row(self, row: dict[str, Any]) -> SuccessPattern:
        return SuccessPattern.from_row(row)

    def add(
        self,
        user_id: str,
        pattern_type: str,
        *,
        description: str | None = None,
        context: Any = None,
        success_indicators: Any = None,
        failure_indicators: Any = None,
        confidence_score: float | None = None,
        effectiveness_rating: float | None = None,
    ) -> SuccessPattern:
        """Record a pattern, not used yet (``usage_count`` 0)."""
        item_id = new_id()
        values = {
            "id": item_id,
            "user_id": check_id(user_id, "user_id"),
            "pattern_type": label(pattern_type, "pattern_type"),
            "description": optional_text(description, "description"),
            "context": json_column(context, "context"),
            "success_indicators": json_column(success_indicators, "success_indicators"),
            "failure_indicators": json_column(failure_indicators, "failure_indicators"),
            "confidence_score": unit(confidence_score, "confidence_score"),
            "usage_count": 0,
            "effectiveness_rating": unit(effectiveness_rating, "effectiveness_rating"),
        }
        self._insert(values)
        return self.get(item_id, user_id=user_id)

    def record_use(self, pattern_id: str, *, user_id: str, successful: bool) -> SuccessPattern:
        """Count one use of the pattern; a successful one also sets ``last_successful``."""
        check_id(pattern_id, "pattern id")
        check_id(user_id, "user_id")
        if not isinstance(successful, bool):
            raise InvalidInput("successful must be a boolean")
        result = self.conn.execute(
            "UPDATE success_patterns SET usage_count = coalesce(usage_count, 0) + 1, "
            "last_successful = CASE WHEN ? THEN ? ELSE last_successful END "
            "WHERE id = ? AND user_id = ?",
            (int(successful), self._now(), pattern_id, user_id),
        )
        if result.rowcount == 0:
            raise self._not_found()
        return self.get(pattern_id, user_id=user_id)
