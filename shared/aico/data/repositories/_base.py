"""Shared bits of the repositories: a connection protocol, clocks, ids and JSON columns."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from typing import Any, Protocol

from aico.errors import InvalidInput

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
    """Validate a text argument; the error names the field, never echoes the content."""
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be a string, got {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise InvalidInput(f"{field} must not be empty")
    if len(value) > max_len:
        raise InvalidInput(f"{field} is {len(value)} characters; the limit is {max_len}")
    if "\x00" in value:
        raise InvalidInput(f"{field} must not contain NUL characters")
    return value


def dump_json(field: str, value: Mapping[str, Any] | None) -> str:
    if value is None:
        return "{}"
    if not isinstance(value, Mapping):
        raise InvalidInput(f"{field} must be a mapping")
    try:
        return json.dumps(dict(value), ensure_ascii=False, sort_keys=True)
    except (TypeError, ValueError):
        raise InvalidInput(f"{field} must be JSON-serializable") from None


def load_json(raw: str | None) -> dict[str, Any]:
    if not raw:
        return {}
    value = json.loads(raw)
    return value if isinstance(value, dict) else {}


def chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
