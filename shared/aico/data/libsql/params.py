"""Parameter binding fixes for libsql-experimental 0.0.55 (pure logic, no I/O).

The driver accepts only a tuple of positional parameters, and it binds any ``int`` outside
the signed 32-bit range as a REAL: ``time.time_ns()`` or a random 64-bit id would silently
lose precision. Such integers are bound as decimal text and their placeholders wrapped in
``CAST(? AS INTEGER)``, which SQLite converts exactly over the full 64-bit range.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aico.errors import InvalidInput

__all__ = ["Params", "as_tuple", "has_wide_int", "prepare"]

Params = Sequence[Any]

_I32_MIN, _I32_MAX = -(2**31), 2**31 - 1
_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1


def _is_wide_int(value: object) -> bool:
    if not isinstance(value, int) or isinstance(value, bool):
        return False
    if not _I64_MIN <= value <= _I64_MAX:
        raise InvalidInput("integer parameter does not fit in 64 bits")
    return not _I32_MIN <= value <= _I32_MAX


def has_wide_int(values: tuple[Any, ...]) -> bool:
    """True if binding ``values`` as they are would turn an integer into a REAL."""
    return any(_is_wide_int(value) for value in values)


def as_tuple(params: Params) -> tuple[Any, ...]:
    """Positional parameters as the tuple the driver insists on."""
    if isinstance(params, tuple):
        return params
    if isinstance(params, Mapping | str | bytes | bytearray):
        raise InvalidInput("parameters must be a sequence of positional values")
    return tuple(params)


def prepare(sql: str, params: Params) -> tuple[str, tuple[Any, ...]]:
    """Return SQL and parameters safe to hand to the driver."""
    values = as_tuple(params)
    wide = {i + 1 for i, value in enumerate(values) if _is_wide_int(value)}
    if not wide:
        return sql, values
    bound = tuple(str(v) if i + 1 in wide else v for i, v in enumerate(values))
    return _wrap_placeholders(sql, wide), bound


def _wrap_placeholders(sql: str, wide: set[int]) -> str:
    """Wrap the placeholders bound to parameters in ``wide`` (1-based) in an INTEGER CAST.

    A small scanner skips string literals, quoted identifiers and comments so a ``?``
    inside them is left alone. Plain ``?`` takes the next number after the largest one
    used so far, as SQLite numbers them.
    """
    out: list[str] = []
    i, n, highest = 0, len(sql), 0
    while i < n:
        ch = sql[i]
        if ch in "'\"`[":
            close = "]" if ch == "[" else ch
            j = i + 1
            while j < n:
                if sql[j] == close:
                    if close != "]" and j + 1 < n and sql[j + 1] == close:
                        j += 2  # doubled quote is an escaped quote
                        continue
                    break
                j += 1
            out.append(sql[i : j + 1])
            i = j + 1
        elif sql.startswith("--", i):
            j = sql.find("\n", i)
            j = n if j < 0 else j
            out.append(sql[i:j])
            i = j
        elif sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(sql[i:j])
            i = j
        elif ch == "?":
            j = i + 1
            while j < n and sql[j].isdigit():
                j += 1
            number = int(sql[i + 1 : j]) if j > i + 1 else highest + 1
            highest = max(highest, number)
            token = sql[i:j]
            out.append(f"CAST({token} AS INTEGER)" if number in wide else token)
            i = j
        else:
            out.append(ch)
            i += 1
    return "".join(out)
