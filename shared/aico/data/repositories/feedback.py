"""``FeedbackRepository``: thumbs, ratings, corrections and comments on companion replies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aico.data.repositories._base import (
    Clock,
    Connection,
    dump_json,
    load_json,
    new_id,
    now,
    require_text,
)
from aico.errors import ConstraintViolation, InvalidInput, NotFound
from aico.validation import check_id

__all__ = ["FEEDBACK_TYPES", "FeedbackEvent", "FeedbackRepository"]

FEEDBACK_TYPES = ("thumbs_up", "thumbs_down", "rating", "correction", "comment")


@dataclass(frozen=True)
class FeedbackEvent:
    event_id: str
    user_id: str
    event_type: str
    rating: int | None
    comment: str | None
    message_id: str | None
    conversation_id: str | None
    metadata: dict[str, Any]
    created_at: float

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> FeedbackEvent:
        return cls(
            event_id=row["event_id"],
            user_id=row["user_id"],
            event_type=row["event_type"],
            rating=row["rating"],
            comment=row["comment"],
            message_id=row["message_id"],
            conversation_id=row["conversation_id"],
            metadata=load_json(row["metadata"]),
            created_at=row["created_at"],
        )


class FeedbackRepository:
    """Record and read feedback events; takes an open core-database connection."""

    def __init__(self, conn: Connection, *, clock: Clock | None = None) -> None:
        self.conn = conn
        self.clock = clock

    def record(
        self,
        user_id: str,
        event_type: str,
        *,
        rating: int | None = None,
        comment: str | None = None,
        message_id: str | None = None,
        conversation_id: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> FeedbackEvent:
        check_id(user_id, "user_id")
        for value, what in ((message_id, "message_id"), (conversation_id, "conversation_id")):
            if value is not None:
                check_id(value, what)
        if event_type not in FEEDBACK_TYPES:
            raise InvalidInput(f"event_type must be one of {', '.join(FEEDBACK_TYPES)}")
        if rating is not None and (
            isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5
        ):
            raise InvalidInput("rating must be an integer from 1 to 5")
        if event_type == "rating" and rating is None:
            raise InvalidInput("a 'rating' event needs a rating")
        if comment is not None:
            require_text("comment", comment, max_len=10_000)
        event_id = new_id()
        try:
            self.conn.execute(
                "INSERT INTO feedback_events (event_id, user_id, event_type, rating, comment, "
                "message_id, conversation_id, metadata, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    event_id,
                    user_id,
                    event_type,
                    rating,
                    comment,
                    message_id,
                    conversation_id,
                    dump_json("metadata", metadata),
                    now(self.clock),
                ),
            )
        except ConstraintViolation:
            raise NotFound("no user with this user_id") from None
        row = self.conn.fetch_one("SELECT * FROM feedback_events WHERE event_id = ?", (event_id,))
        assert row is not None
        return FeedbackEvent.from_row(row)

    def list_for_user(self, user_id: str, *, limit: int = 100) -> list[FeedbackEvent]:
        """Newest first."""
        check_id(user_id, "user_id")
        if not isinstance(limit, int) or limit < 1:
            raise InvalidInput("limit must be a positive integer")
        rows = self.conn.fetch_all(
            "SELECT * FROM feedback_events WHERE user_id = ? "
            "ORDER BY created_at DESC, event_id LIMIT ?",
            (user_id, limit),
        )
        return [FeedbackEvent.from_row(r) for r in rows]

    def summary(self, user_id: str) -> dict[str, Any]:
        """Counts per event type and the mean rating, for dashboards and tuning."""
        check_id(user_id, "user_id")
        rows = self.conn.fetch_all(
            "SELECT event_type, count(*) AS n FROM feedback_events WHERE user_id = ? "
            "GROUP BY event_type",
            (user_id,),
        )
        mean = self.conn.fetch_value(
            "SELECT avg(rating) FROM feedback_events WHERE user_id = ? AND rating IS NOT NULL",
            (user_id,),
        )
        counts = {t: 0 for t in FEEDBACK_TYPES}
        counts.update({r["event_type"]: int(r["n"]) for r in rows})
        return {"counts": counts, "mean_rating": mean}
