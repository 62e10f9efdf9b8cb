"""``DecisionRepository``: a project's decisions and how they changed (``project_decisions``).

A decision is ``active`` until it is superseded (a new decision replaces it: the old one
becomes ``superseded`` and points at its successor through ``superseded_by``) or reverted
(``reverted``, nothing replaces it). Both transitions only leave ``active``; a chain of
supersessions is the decision's history.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field
from typing import Any

from aico.data.repositories._base import new_id
from aico.data.repositories.knowledge._table import (
    KnowledgeTable,
    json_column,
    label,
    load_json_column,
    optional_text,
)
from aico.errors import InvalidInput
from aico.validation import check_count, check_id, check_text

__all__ = ["DECISION_STATUSES", "Decision", "DecisionRepository"]

DECISION_STATUSES = ("active", "superseded", "reverted")
_MAX_CHAIN = 10_000  # a history longer than this is a cycle someone wrote by hand


@dataclass(frozen=True)
class Decision:
    id: str
    user_id: str
    decision_type: str
    title: str = field(repr=False)
    description: str | None = field(repr=False)
    rationale: str | None = field(repr=False)
    alternatives_considered: Any = field(repr=False)
    impact_assessment: str | None = field(repr=False)
    made_at: float
    status: str
    tags: Any = field(repr=False)
    superseded_by: str | None
    status_changed_at: float | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Decision:
        changed = row["status_changed_at"]
        return cls(
            id=row["id"],
            user_id=row["user_id"],
            decision_type=row["decision_type"],
            title=row["title"],
            description=row["description"],
            rationale=row["rationale"],
            alternatives_considered=load_json_column(row["alternatives_considered"]),
            impact_assessment=row["impact_assessment"],
            made_at=float(row["made_at"]),
            status=row["status"],
            tags=load_json_column(row["tags"]),
            superseded_by=row["superseded_by"],
            status_changed_at=None if changed is None else float(changed),
        )


def status_filter(value: object) -> str:
    if value not in DECISION_STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(DECISION_STATUSES)}")
    return str(value)


class DecisionRepository(KnowledgeTable[Decision]):
    table = "project_decisions"
    noun = "decision"
    type_column = "decision_type"

    def _row(self, row: dict[str, Any]) -> Decision:
        return Decision.from_row(row)

    def _values(
        self,
        user_id: str,
        title: str,
        decision_type: str,
        description: str | None,
        rationale: str | None,
        alternatives_considered: Any,
        impact_assessment: str | None,
        tags: Any,
    ) -> dict[str, Any]:
        return {
            "id": new_id(),
            "user_id": check_id(user_id, "user_id"),
            "decision_type": label(decision_type, "decision_type"),
            "title": check_text(title, "title", required=True, limit=1_000),
            "description": optional_text(description, "description"),
            "rationale": optional_text(rationale, "rationale"),
            "alternatives_considered": json_column(
                alternatives_considered, "alternatives_considered"
            ),
            "impact_assessment": optional_text(impact_assessment, "impact_assessment"),
            "made_at": self._now(),
            "status": "active",
            "tags": json_column(tags, "tags"),
        }

    def add(
        self,
        user_id: str,
        title: str,
        decision_type: str,
        *,
        description: str | None = None,
        rationale: str | None = None,
        alternatives_considered: Any = None,
        impact_assessment: str | None = None,
        tags: Any = None,
    ) -> Decision:
        """Record a new, active decision."""
        values = self._values(
            user_id,
            title,
            decision_type,
            description,
            rationale,
            alternatives_considered,
            impact_assessment,
            tags,
        )
        self._insert(values)
        return self.get(values["id"], user_id=user_id)

    def list(
        self,
        user_id: str,
        *,
        type: str | None = None,
        status: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> builtins.list[Decision]:
        """The user's decisions, newest first, of one ``decision_type`` and/or ``status``."""
        check_id(user_id, "user_id")
        check_count(limit, "limit", minimum=1, maximum=10_000)
        check_count(offset, "offset")
        clauses, params = ["user_id = ?"], [user_id]
        if type is not None:
            clauses.append("decision_type = ?")
            params.append(label(type, "type"))
        if status is not None:
            clauses.append("status = ?")
            params.append(status_filter(status))
        return self._select(clauses, params, limit=limit, offset=offset)

    def _require_active(self, decision_id: str, user_id: str, verb: str) -> Decision:
        current = self.get(decision_id, user_id=user_id)
        if current.status != "active":
            raise InvalidInput(
                f"only an active decision can be {verb}; this one is {current.status}"
            )
        return current

    def _leave_active(
        self, decision_id: str, user_id: str, status: str, successor: str | None
    ) -> None:
        # ``status = 'active'`` in the WHERE makes the transition atomic against another
        # process doing the same: the loser changes nothing and its transaction rolls back.
        result = self.conn.execute(
            "UPDATE project_decisions SET status = ?, superseded_by = ?, status_changed_at = ? "
            "WHERE id = ? AND user_id = ? AND status = 'active'",
            (status, successor, self._now(), decision_id, user_id),
        )
        if result.rowcount != 1:
            raise InvalidInput("only an active decision can change status; this one changed")

    def supersede(
        self,
        decision_id: str,
        *,
        user_id: str,
        title: str,
        decision_type: str | None = None,
        description: str | None = None,
        rationale: str | None = None,
        alternatives_considered: Any = None,
        impact_assessment: str | None = None,
        tags: Any = None,
    ) -> tuple[Decision, Decision]:
        """Replace an active decision by a new one, in one transaction: ``(old, new)``.

        The new decision is active and keeps the old one's ``decision_type`` unless given;
        the old one becomes ``superseded`` with ``superseded_by`` set to the new id.
        """
        check_id(decision_id, "decision id")
        check_id(user_id, "user_id")
        with self.conn.transaction():
            old = self._require_active(decision_id, user_id, "superseded")
            values = self._values(
                user_id,
                title,
                old.decision_type if decision_type is None else decision_type,
                description,
                rationale,
                alternatives_considered,
                impact_assessment,
                tags,
            )
            self._insert(values)
            self._leave_active(decision_id, user_id, "superseded", values["id"])
        return self.get(decision_id, user_id=user_id), self.get(values["id"], user_id=user_id)

    def revert(self, decision_id: str, *, user_id: str) -> Decision:
        """Mark an active decision ``reverted`` (undone, nothing replaces it)."""
        check_id(decision_id, "decision id")
        check_id(user_id, "user_id")
        with self.conn.transaction():
            self._require_active(decision_id, user_id, "reverted")
            self._leave_active(decision_id, user_id, "reverted", None)
        return self.get(decision_id, user_id=user_id)

    def history(self, decision_id: str, *, user_id: str) -> builtins.list[Decision]:
        """The chain of ``decision_id``, oldest first: what it replaced, what replaced it."""
        start = self.get(decision_id, user_id=user_id)
        chain = [start]
        seen = {start.id}
        current = start
        while len(chain) < _MAX_CHAIN:  # back: the decision this one superseded
            row = self.conn.fetch_one(
                "SELECT * FROM project_decisions WHERE superseded_by = ? AND user_id = ?",
                (current.id, user_id),
            )
            if row is None or row["id"] in seen:
                break
            current = Decision.from_row(row)
            seen.add(current.id)
            chain.insert(0, current)
        current = start
        while current.superseded_by is not None and len(chain) < _MAX_CHAIN:  # forward
            row = self.conn.fetch_one(
                "SELECT * FROM project_decisions WHERE id = ? AND user_id = ?",
                (current.superseded_by, user_id),
            )
            if row is None or row["id"] in seen:
                break
            current = Decision.from_row(row)
            seen.add(current.id)
            chain.append(current)
        return chain
