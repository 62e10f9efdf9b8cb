"""LangGraph search filters as SQL over a JSON column (pure logic, no I/O).

A filter is ``{key: condition}``, all of which must hold. A key is a dotted path into the
document (``"user.name"``); a condition is a value (equal), a dict of operators (``$eq``,
``$ne``, ``$gt``, ``$gte``, ``$lt``, ``$lte``) or a dict without operators (the same
filter one level down). This is what ``InMemoryStore`` and ``SqliteStore`` accept; where
they differ, these rules hold (docs/integrations.md has the table):

- types are compared strictly: ``True`` does not equal ``1`` and ``1`` does not equal
  ``"1"`` (Python's ``True == 1`` makes ``InMemoryStore`` say otherwise);
- a dotted key is a path (like ``SqliteStore``; ``InMemoryStore`` looks the dotted string
  up as one key);
- an order operator on a value of another type is false instead of an error.

Every path and value is a bound parameter: nothing from a filter is spliced into SQL, so
no key needs a character whitelist. Only ``"`` cannot appear in a key (SQLite's JSON path
has no escape for it).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from aico.errors import InvalidInput

__all__ = ["compile_filter"]

_ORDER = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
_OPERATORS = ("$eq", "$ne", *_ORDER)
_MAX_DEPTH = 16
_I64 = 2**63


def compile_filter(flt: Mapping[str, Any] | None, column: str) -> tuple[str, list[Any]]:
    """``(sql, params)``: a boolean SQL expression over the JSON text in ``column``."""
    if flt is None:
        return "1", []
    if not isinstance(flt, Mapping):
        raise InvalidInput("filter must be a mapping of keys to conditions")
    clauses: list[str] = []
    params: list[Any] = []
    for key, condition in flt.items():
        sql, values = _condition(column, _path(key, ()), condition, 0)
        clauses.append(sql)
        params += values
    return (" AND ".join(clauses) or "1"), params


def _path(key: object, parent: tuple[str, ...]) -> tuple[str, ...]:
    if not isinstance(key, str) or not key:
        raise InvalidInput("filter keys must be non-empty strings")
    parts = tuple(key.split("."))
    if any(not part or '"' in part or "\x00" in part for part in parts):
        raise InvalidInput("filter keys must be dotted names without empty parts or '\"'")
    return parent + parts


def _json_path(path: tuple[str, ...]) -> str:
    try:
        text = "$" + "".join(f'."{part}"' for part in path)
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput("filter keys must be valid Unicode") from None
    return text


def _condition(
    column: str, path: tuple[str, ...], condition: Any, depth: int
) -> tuple[str, list[Any]]:
    if depth > _MAX_DEPTH:
        raise InvalidInput(f"filters nest at most {_MAX_DEPTH} levels")
    if isinstance(condition, Mapping):
        operators = [k for k in condition if isinstance(k, str) and k.startswith("$")]
        if operators:
            if len(operators) != len(condition):
                raise InvalidInput("a filter condition mixes $operators and field names")
            return _operators(column, path, condition)
        if not condition:
            raise InvalidInput("a filter condition must not be an empty mapping")
        clauses = [f"json_type({column}, ?) = 'object'"]
        params: list[Any] = [_json_path(path)]
        for key, sub in condition.items():
            sql, values = _condition(column, _path(key, path), sub, depth + 1)
            clauses.append(sql)
            params += values
        return "(" + " AND ".join(clauses) + ")", params
    return _equal(column, path, condition)


def _operators(
    column: str, path: tuple[str, ...], condition: Mapping[str, Any]
) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    for operator, value in condition.items():
        if operator == "$eq":
            sql, values = _equal(column, path, value)
        elif operator == "$ne":
            sql, values = _equal(column, path, value)
            sql = f"NOT coalesce({sql}, 0)"
        elif operator in _ORDER:
            sql, values = _order(column, path, _ORDER[operator], value)
        else:
            raise InvalidInput(f"filter operators are {', '.join(_OPERATORS)}")
        clauses.append(sql)
        params += values
    return "(" + " AND ".join(clauses) + ")", params


def _number(value: int | float) -> int | float:
    """A number SQLite can bind: integers beyond 64 bits compare as REAL."""
    if isinstance(value, int) and not -_I64 <= value < _I64:
        return float(value)
    return value


def _equal(column: str, path: tuple[str, ...], value: Any) -> tuple[str, list[Any]]:
    where = _json_path(path)
    kind = f"json_type({column}, ?)"
    if value is None:
        return f"coalesce({kind} = 'null', 1)", [where]
    if isinstance(value, bool):
        return f"coalesce({kind} = ?, 0)", [where, "true" if value else "false"]
    if isinstance(value, int | float):
        if isinstance(value, float) and math.isnan(value):
            return "0", []  # NaN equals nothing
        return (
            f"coalesce({kind} IN ('integer', 'real') AND json_extract({column}, ?) = ?, 0)",
            [where, where, _number(value)],
        )
    if isinstance(value, str):
        return (
            f"coalesce({kind} = 'text' AND json_extract({column}, ?) = ?, 0)",
            [where, where, _text(value)],
        )
    if isinstance(value, list | tuple):
        try:
            text = json.dumps(
                list(value),
                sort_keys=True,
                ensure_ascii=False,
                separators=(",", ":"),
                allow_nan=False,
            )
        except (TypeError, ValueError):
            raise InvalidInput("a filter list must hold JSON values") from None
        return (
            f"coalesce({kind} = 'array' AND json_extract({column}, ?) = json(?), 0)",
            [where, where, _text(text)],
        )
    raise InvalidInput("filter values must be JSON values (str, number, bool, null, list)")


def _order(column: str, path: tuple[str, ...], op: str, value: Any) -> tuple[str, list[Any]]:
    where = _json_path(path)
    kind = f"json_type({column}, ?)"
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidInput("order operators ($gt, $gte, $lt, $lte) take a number or a string")
    if isinstance(value, str):
        return (
            f"coalesce({kind} = 'text' AND json_extract({column}, ?) {op} ?, 0)",
            [where, where, _text(value)],
        )
    if isinstance(value, float) and math.isnan(value):
        return "0", []
    return (
        f"coalesce({kind} IN ('integer', 'real') AND json_extract({column}, ?) {op} ?, 0)",
        [where, where, _number(value)],
    )


def _text(value: str) -> str:
    if "\x00" in value:
        raise InvalidInput("filter values must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput("filter values must be valid Unicode") from None
    return value
