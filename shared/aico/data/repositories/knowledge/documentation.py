"""``DocumentationRepository``: the documentation files of a project (``documentation_files``).

A path is recorded once per user (``UNIQUE (user_id, file_path)``, schema version 2);
``record`` after a re-analysis replaces what was known about it.
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
    schema_refused,
)
from aico.errors import InvalidInput
from aico.validation import check_id, check_text, check_time

__all__ = ["MAX_PATH", "DocumentationFile", "DocumentationRepository"]

MAX_PATH = 4096


@dataclass(frozen=True)
class DocumentationFile:
    id: str
    user_id: str
    file_path: str = field(repr=False)
    doc_type: str | None
    title: str | None = field(repr=False)
    purpose: str | None = field(repr=False)
    sections: Any = field(repr=False)
    cross_refs: Any = field(repr=False)
    last_analyzed: float | None
    content_hash: str | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> DocumentationFile:
        analyzed = row["last_analyzed"]
        return cls(
            id=row["id"],
            user_id=row["user_id"],
            file_path=row["file_path"],
            doc_type=row["doc_type"],
            title=row["title"],
            purpose=row["purpose"],
            sections=load_json_column(row["sections"]),
            cross_refs=load_json_column(row["cross_refs"]),
            last_analyzed=None if analyzed is None else float(analyzed),
            content_hash=row["content_hash"],
        )


class DocumentationRepository(KnowledgeTable[DocumentationFile]):
    table = "documentation_files"
    noun = "documentation file"
    type_column = "doc_type"

    def _row(self, row: dict[str, Any]) -> DocumentationFile:
        return DocumentationFile.from_row(row)

    def add(
        self,
        user_id: str,
        file_path: str,
        *,
        doc_type: str | None = None,
        title: str | None = None,
        purpose: str | None = None,
        sections: Any = None,
        cross_refs: Any = None,
        content_hash: str | None = None,
        last_analyzed: float | None = None,
        replace: bool = False,
    ) -> DocumentationFile:
        """Record a documentation file; ``InvalidInput`` if the user already has this path.

        ``replace=True`` instead overwrites what was known about the path (a re-analysis),
        keeping its id.
        """
        check_id(user_id, "user_id")
        values = {
            "file_path": check_text(file_path, "file_path", required=True, limit=MAX_PATH),
            "doc_type": None if doc_type is None else label(doc_type, "doc_type"),
            "title": optional_text(title, "title", limit=1_000),
            "purpose": optional_text(purpose, "purpose"),
            "sections": json_column(sections, "sections"),
            "cross_refs": json_column(cross_refs, "cross_refs"),
            "content_hash": None if content_hash is None else label(content_hash, "content_hash"),
            "last_analyzed": self._now() if last_analyzed is None else check_time(last_analyzed),
        }
        if not isinstance(replace, bool):
            raise InvalidInput("replace must be a boolean")
        with self.conn.transaction():
            existing = self.conn.fetch_value(
                "SELECT id FROM documentation_files WHERE user_id = ? AND file_path = ?",
                (user_id, values["file_path"]),
            )
            if existing is not None and not replace:
                raise InvalidInput("this user already has a documentation file at this path")
            if existing is None:
                item_id = new_id()
                self._insert({"id": item_id, "user_id": user_id, **values})
            else:
                item_id = str(existing)
                assignments = ", ".join(f"{column} = ?" for column in values)
                with schema_refused(self.noun):
                    self.conn.execute(
                        f"UPDATE documentation_files SET {assignments} WHERE id = ?",
                        (*values.values(), item_id),
                    )
        return self.get(item_id, user_id=user_id)

    def by_path(self, user_id: str, file_path: str) -> DocumentationFile:
        check_id(user_id, "user_id")
        check_text(file_path, "file_path", required=True, limit=MAX_PATH)
        row = self.conn.fetch_one(
            "SELECT * FROM documentation_files WHERE user_id = ? AND file_path = ?",
            (user_id, file_path),
        )
        if row is None:
            raise self._not_found()
        return DocumentationFile.from_row(row)
