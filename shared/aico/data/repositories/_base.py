"""Shared bits of the repositories: a connection protocol, clocks, ids and JSON columns."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from typing import Any, Protocol

from aico.errors import InvalidInput
from aico.validation import check_json, check_text

__all__ = [
    "Clock",
    "Connection",
    "chunks",
    "dump_json",
    "load_json",
    "new_id",
    "now",
    "require_text",
]

Clock = Callable[[], float]


class Connection(Protocol):
    """The part of ``EncryptedLibSQLConnection`` repositories use (lets tests type-check)."""

    def execute(self, sql: str, params: Any = ...) -> Any: ...
    def fetch_one(self, sql: str, params: Any = ...) -> dict[str, Any] | None: ...
    def fetch_all(self, sql: str, params: Any = ...) -> list[dict[str, Any]]: ...
    def fetch_value(self, sql: str, params: Any = ...) -> Any: ...
    def transaction(self) -> AbstractContextManager[Any]: ...


def new_id() -> str:
    """Random UUID4 hex: ids carry no time or content, so they leak nothing when hashed."""
    return uuid.uuid4().hex


def now(clock: Clock | None) -> float:
    return (clock or time.time)()


def require_text(field: str, value: object, *, max_len: int, allow_empty: bool = False) -> str:
    """Validate a text argument (``aico.validation.check_text``); never echoes the content."""
    return check_text(value, field, required=not allow_empty, limit=max_len)


def dump_json(field: str, value: Mapping[str, Any] | None) -> str:
    """A mapping as strict JSON (``aico.validation.check_json``): no NaN, valid Unicode."""
    if value is None:
        return "{}"
    if not isinstance(value, Mapping):
        raise InvalidInput(f"{field} must be a mapping")
    return check_json(value, field)


def load_json(raw: str | None) -> dict[str, Any]:
    if not raw:
        return {}
    value = json.loads(raw)
    return value if isinstance(value, dict) else {}


def chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
