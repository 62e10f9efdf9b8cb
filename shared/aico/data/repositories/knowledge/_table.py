"""What every knowledge repository shares: owned rows, argument checks, the constraint seam.

Every row of the knowledge tables aico writes belongs to one aico user (``user_id``, schema
version 2), and every read or change names that user: a row of another user is the same
``NotFound`` as a missing one, so an id never tells whether someone else has it.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar, Generic, TypeVar

from aico.data.repositories._base import Clock, Connection, now
from aico.errors import ConstraintViolation, InvalidInput, NotFound
from aico.validation import check_count, check_id, check_json, check_number, check_text

__all__ = [
    "MAX_LABEL",
    "MAX_TEXT",
    "KnowledgeTable",
    "json_column",
    "label",
    "load_json_column",
    "optional_text",
    "schema_refused",
    "unit",
]

MAX_LABEL = 100  # a type, a kind, a tag: short, indexed, listed in tables
MAX_TEXT = 100_000  # a description, a rationale, lessons learned
MAX_JSON = 1_000_000

RowT = TypeVar("RowT")


def label(value: object, what: str) -> str:
    """A short required label (a component type, a decision type): 1-100 characters."""
    return check_text(value, what, required=True, limit=MAX_LABEL)


def optional_text(value: object, what: str, *, limit: int = MAX_TEXT) -> str | None:
    return None if value is None else check_text(value, what, limit=limit)


def unit(value: object, what: str) -> float | None:
    """The specification's ``CHECK (col IS NULL OR col BETWEEN 0.0 AND 1.0)``, in Python."""
    return None if value is None else check_number(value, what, low=0.0, high=1.0)


def json_column(value: object, what: str) -> str | None:
    """A JSON column (a list or a mapping, strictly serialised by ``check_json``) or NULL."""
    if value is None:
        return None
    if isinstance(value, str | bytes) or not isinstance(value, Mapping | Sequence):
        raise InvalidInput(f"{what} must be a list or a mapping")
    return check_json(value if isinstance(value, Mapping) else list(value), what, limit=MAX_JSON)


def load_json_column(raw: str | None) -> Any:
    return None if raw is None else json.loads(raw)


@contextmanager
def schema_refused(what: str) -> Iterator[None]:
    """The backstop: a CHECK or UNIQUE the Python checks missed is still ``InvalidInput``.

    The driver's message (which may quote the constraint) is dropped: it is ``from None``
    so that no value of the refused row reaches a log or a traceback.
    """
    try:
        yield
    except ConstraintViolation:
        raise InvalidInput(f"the knowledge store refused this {what} (a schema check)") from None


class KnowledgeTable(Generic[RowT]):
    """Reads, counts and deletes of one table's rows, always scoped to their user.

    Subclasses name the table, the noun used in messages, the row type and the column
    ``list(type=...)`` filters on; they add their own writes.
    """

    table: ClassVar[str]
    noun: ClassVar[str]
    type_column: ClassVar[str]

    def __init__(self, conn: Connection, *, clock: Clock | None = None) -> None:
        self.conn = conn
        self.clock = clock

    def _row(self, row: dict[str, Any]) -> RowT:
        raise NotImplementedError

    def _now(self) -> float:
        return now(self.clock)

    def _not_found(self) -> NotFound:
        return NotFound(f"no {self.noun} with this id for this user")

    def get(self, item_id: str, *, user_id: str) -> RowT:
        """The row, if it exists and is ``user_id``'s; ``NotFound`` otherwise."""
        check_id(item_id, f"{self.noun} id")
        check_id(user_id, "user_id")
        row = self.conn.fetch_one(
            f"SELECT * FROM {self.table} WHERE id = ? AND user_id = ?", (item_id, user_id)
        )
        if row is None:
            raise self._not_found()
        return self._row(row)

    def list(
        self, user_id: str, *, type: str | None = None, limit: int = 100, offset: int = 0
    ) -> builtins.list[RowT]:
        """The user's rows, newest first; ``type`` keeps those of one ``type_column`` value."""
        check_id(user_id, "user_id")
        check_count(limit, "limit", minimum=1, maximum=10_000)
        check_count(offset, "offset")
        clauses, params = ["user_id = ?"], [user_id]
        if type is not None:
            clauses.append(f"{self.type_column} = ?")
            params.append(label(type, "type"))
        return self._select(clauses, params, limit=limit, offset=offset)

    def _select(
        self, clauses: builtins.list[str], params: builtins.list[Any], *, limit: int, offset: int
    ) -> builtins.list[RowT]:
        rows = self.conn.fetch_all(
            f"SELECT * FROM {self.table} WHERE {' AND '.join(clauses)} "
            "ORDER BY rowid DESC LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )
        return [self._row(r) for r in rows]

    def count(self, user_id: str) -> int:
        check_id(user_id, "user_id")
        return int(
            self.conn.fetch_value(
                f"SELECT count(*) FROM {self.table} WHERE user_id = ?", (user_id,)
            )
            or 0
        )

    def delete(self, item_id: str, *, user_id: str) -> None:
        check_id(item_id, f"{self.noun} id")
        check_id(user_id, "user_id")
        result = self.conn.execute(
            f"DELETE FROM {self.table} WHERE id = ? AND user_id = ?", (item_id, user_id)
        )
        if result.rowcount == 0:
            raise self._not_found()

    def delete_user(self, user_id: str) -> int:
        """Delete every row of ``user_id``; the number deleted (call inside a transaction)."""
        check_id(user_id, "user_id")
        result = self.conn.execute(f"DELETE FROM {self.table} WHERE user_id = ?", (user_id,))
        return max(int(result.rowcount), 0)

    def _insert(self, values: Mapping[str, Any]) -> None:
        columns = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        with schema_refused(self.noun):
            self.conn.execute(
                f"INSERT INTO {self.table} ({columns}) VALUES ({marks})", tuple(values.values())
            )
