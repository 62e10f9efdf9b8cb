"""``ComponentRepository``: the parts of a project, as analysed (``project_components``)."""

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
from aico.validation import check_id, check_text

__all__ = ["Component", "ComponentRepository"]


@dataclass(frozen=True)
class Component:
    id: str
    user_id: str
    component: str = field(repr=False)
    type: str
    description: str | None = field(repr=False)
    confidence: float | None
    evidence: Any = field(repr=False)
    metadata: Any = field(repr=False)
    last_updated: float

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Component:
        return cls(
            id=row["id"],
            user_id=row["user_id"],
            component=row["component"],
            type=row["type"],
            description=row["description"],
            confidence=row["confidence"],
            evidence=load_json_column(row["evidence"]),
            metadata=load_json_column(row["metadata"]),
            last_updated=float(row["last_updated"]),
        )


class ComponentRepository(KnowledgeTable[Component]):
    table = "project_components"
    noun = "component"
    type_column = "type"

    def _row(self, row: dict[str, Any]) -> Component:
        return Component.from_row(row)

    def add(
        self,
        user_id: str,
        component: str,
        type: str,
        *,
        description: str | None = None,
        confidence: float | None = None,
        evidence: Any = None,
        metadata: Any = None,
    ) -> Component:
        """Record a component (its name, its kind, how sure the analysis is, the evidence)."""
        item_id = new_id()
        values = {
            "id": item_id,
            "user_id": check_id(user_id, "user_id"),
            "component": check_text(component, "component", required=True, limit=1_000),
            "type": label(type, "type"),
            "description": optional_text(description, "description"),
            "confidence": unit(confidence, "confidence"),
            "evidence": json_column(evidence, "evidence"),
            "metadata": json_column(metadata, "metadata"),
            "last_updated": self._now(),
        }
        self._insert(values)
        return self.get(item_id, user_id=user_id)
