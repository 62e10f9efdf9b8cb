"""``FactRepository``: the memory album, facts the companion keeps about a user.

Remember, list, update, revisit (the user looks at a memory again: counted, timestamped)
and delete. Facts are foreign-keyed to the user, so forgetting a user removes them.
"""

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

__all__ = ["Fact", "FactRepository"]

MAX_FACT_CHARS = 10_000
_UPDATABLE = ("content", "category", "confidence", "is_favorite", "metadata")


@dataclass(frozen=True)
class Fact:
    fact_id: str
    user_id: str
    content: str
    category: str
    confidence: float
    is_favorite: bool
    source_message_id: str | None
    conversation_id: str | None
    revisit_count: int
    last_revisited_at: float | None
    metadata: dict[str, Any]
    created_at: float
    updated_at: float

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Fact:
        return cls(
            fact_id=row["fact_id"],
            user_id=row["user_id"],
            content=row["content"],
            category=row["category"],
            confidence=row["confidence"],
            is_favorite=bool(row["is_favorite"]),
            source_message_id=row["source_message_id"],
            conversation_id=row["conversation_id"],
            revisit_count=row["revisit_count"],
            last_revisited_at=row["last_revisited_at"],
            metadata=load_json(row["metadata"]),
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )


def _confidence(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise InvalidInput("confidence must be a number between 0.0 and 1.0")
    return float(value)


class FactRepository:
    """CRUD for the memory album; takes an open core-database connection."""

    def __init__(self, conn: Connection, *, clock: Clock | None = None) -> None:
        self.conn = conn
        self.clock = clock

    def remember(
        self,
        user_id: str,
        content: str,
        *,
        category: str = "general",
        confidence: float = 1.0,
        is_favorite: bool = False,
        source_message_id: str | None = None,
        conversation_id: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Fact:
        """Store a new fact for an existing user and return it."""
        check_id(user_id, "user_id")
        require_text("content", content, max_len=MAX_FACT_CHARS)
        require_text("category", category, max_len=100)
        for value, what in (
            (source_message_id, "source_message_id"),
            (conversation_id, "conversation_id"),
        ):
            if value is not None:
                check_id(value, what)
        fact_id = new_id()
        ts = now(self.clock)
        try:
            self.conn.execute(
                "INSERT INTO facts (fact_id, user_id, content, category, confidence, is_favorite,"
                " source_message_id, conversation_id, metadata, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    fact_id,
                    user_id,
                    content,
                    category,
                    _confidence(confidence),
                    int(bool(is_favorite)),
                    source_message_id,
                    conversation_id,
                    dump_json("metadata", metadata),
                    ts,
                    ts,
                ),
            )
        except ConstraintViolation:
            raise NotFound("no user with this user_id") from None
        return self.get(fact_id)

    def get(self, fact_id: str) -> Fact:
        row = self.conn.fetch_one(
            "SELECT * FROM facts WHERE fact_id = ?", (check_id(fact_id, "fact_id"),)
        )
        if row is None:
            raise NotFound("no fact with this fact_id")
        return Fact.from_row(row)

    def list(
        self,
        user_id: str,
        *,
        category: str | None = None,
        favorites_only: bool = False,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Fact]:
        """A user's facts, newest first."""
        check_id(user_id, "user_id")
        if category is not None:
            require_text("category", category, max_len=100)
        if not isinstance(limit, int) or not 1 <= limit <= 10_000:
            raise InvalidInput("limit must be an integer between 1 and 10000")
        if not isinstance(offset, int) or offset < 0:
            raise InvalidInput("offset must be a non-negative integer")
        clauses, params = ["user_id = ?"], [user_id]
        if category is not None:
            clauses.append("category = ?")
            params.append(category)
        if favorites_only:
            clauses.append("is_favorite = 1")
        rows = self.conn.fetch_all(
            f"SELECT * FROM facts WHERE {' AND '.join(clauses)} "
            "ORDER BY created_at DESC, fact_id LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )
        return [Fact.from_row(r) for r in rows]

    def update(self, fact_id: str, /, **changes: Any) -> Fact:
        """Change content, category, confidence, is_favorite or metadata."""
        check_id(fact_id, "fact_id")
        unknown = sorted(set(changes) - set(_UPDATABLE))
        if unknown:
            raise InvalidInput(f"cannot update field(s) {unknown}; allowed: {list(_UPDATABLE)}")
        values: dict[str, Any] = {}
        for field, value in changes.items():
            if field == "content":
                values[field] = require_text(field, value, max_len=MAX_FACT_CHARS)
            elif field == "category":
                values[field] = require_text(field, value, max_len=100)
            elif field == "confidence":
                values[field] = _confidence(value)
            elif field == "is_favorite":
                if not isinstance(value, bool):
                    raise InvalidInput("is_favorite must be a boolean")
                values[field] = int(value)
            else:
                values[field] = dump_json(field, value)
        if not values:
            return self.get(fact_id)
        assignments = ", ".join(f"{field} = ?" for field in values)
        result = self.conn.execute(
            f"UPDATE facts SET {assignments}, updated_at = ? WHERE fact_id = ?",
            (*values.values(), now(self.clock), fact_id),
        )
        if result.rowcount == 0:
            raise NotFound("no fact with this fact_id")
        return self.get(fact_id)

    def revisit(self, fact_id: str) -> Fact:
        """Record that the user looked at this memory again."""
        check_id(fact_id, "fact_id")
        result = self.conn.execute(
            "UPDATE facts SET revisit_count = revisit_count + 1, last_revisited_at = ? "
            "WHERE fact_id = ?",
            (now(self.clock), fact_id),
        )
        if result.rowcount == 0:
            raise NotFound("no fact with this fact_id")
        return self.get(fact_id)

    def delete(self, fact_id: str) -> None:
        check_id(fact_id, "fact_id")
        result = self.conn.execute("DELETE FROM facts WHERE fact_id = ?", (fact_id,))
        if result.rowcount == 0:
            raise NotFound("no fact with this fact_id")

    def count(self, user_id: str) -> int:
        check_id(user_id, "user_id")
        return int(
            self.conn.fetch_value("SELECT count(*) FROM facts WHERE user_id = ?", (user_id,)) or 0
        )
