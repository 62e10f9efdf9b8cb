"""Argument checks at the public boundary: one function per kind of value.

Every public verb (the memory manager, the repositories, the semantic store) checks its
arguments here before it touches a store, so bad input is always ``InvalidInput`` and never
a driver error half way through a write. Messages name the argument and the rule, never the
value: ids and text can be the user's own words.

Why each rule:

- **No NUL.** SQLite cuts TEXT at the first NUL on some paths and not others, so the log,
  the segments and working memory would disagree about what was said.
- **No lone surrogates.** They cannot be encoded as UTF-8, so the driver would fail with an
  untyped error after earlier statements of the same call had run.
- **Finite numbers in range.** An infinite timestamp is accepted by SQLite and then breaks
  every later computation with it (expiry, idle consolidation) for every user.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from aico.errors import InvalidInput

__all__ = [
    "MAX_CONTENT",
    "MAX_ID",
    "MAX_QUERY",
    "MAX_TIME",
    "check_count",
    "check_id",
    "check_json",
    "check_number",
    "check_text",
    "check_time",
]

MAX_ID = 128
MAX_CONTENT = 1_000_000
MAX_QUERY = 10_000
MAX_TIME = 32_503_680_000.0  # 3000-01-01: later is a unit mistake (milliseconds), not a date


def check_id(value: object, what: str) -> str:
    """An identifier: a string of 1-``MAX_ID`` characters the log can keep exactly."""
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_ID:
        raise InvalidInput(f"{what} must be a string of 1-{MAX_ID} characters")
    if not value.strip():
        raise InvalidInput(f"{what} must not be blank")
    return check_text(value, what, limit=MAX_ID)


def check_text(
    value: object, what: str, *, required: bool = False, limit: int = MAX_CONTENT
) -> str:
    """Text stored or searched exactly: no NUL, valid Unicode, at most ``limit`` characters."""
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a string, not {type(value).__name__}")
    if len(value) > limit:
        raise InvalidInput(f"{what} is longer than the limit of {limit} characters")
    if required and not value.strip():
        raise InvalidInput(f"{what} must not be empty")
    if "\x00" in value:
        raise InvalidInput(f"{what} must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"{what} must be valid Unicode (no lone surrogates)") from None
    return value


def check_time(value: object, what: str = "timestamp") -> float:
    """Unix seconds: a finite real number between 1970 and 3000."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"{what} must be a number of unix seconds")
    if not math.isfinite(value):
        raise InvalidInput(f"{what} must be a finite number of unix seconds")
    if not 0 <= value < MAX_TIME:
        raise InvalidInput(f"{what} must be between 1970 and 3000 (unix seconds)")
    return float(value)


def check_count(value: object, what: str, *, minimum: int = 0, maximum: int | None = None) -> int:
    """An integer in ``[minimum, maximum]`` (``bool`` is not a count)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{what} must be an integer")
    if value < minimum or (maximum is not None and value > maximum):
        upper = "" if maximum is None else f" and at most {maximum}"
        raise InvalidInput(f"{what} must be at least {minimum}{upper}")
    return value


def check_number(value: object, what: str, *, low: float, high: float) -> float:
    """A finite real number in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInput(f"{what} must be a finite number")
    if not low <= value <= high:
        raise InvalidInput(f"{what} must be between {low:g} and {high:g}")
    return float(value)


def check_json(value: Any, what: str, *, limit: int = MAX_CONTENT) -> str:
    """Serialise a JSON value strictly: no NaN/Infinity, no NUL, valid Unicode, bounded size.

    Returns the text to store. Python's ``json`` would otherwise write ``NaN`` (not JSON,
    unreadable by other tools) and pass lone surrogates through to the driver.
    """
    if isinstance(value, Mapping):
        value = dict(value)
    try:
        text = json.dumps(value, ensure_ascii=False, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        raise InvalidInput(
            f"{what} must be JSON-serialisable (str keys, finite numbers, no cycles)"
        ) from None
    return check_text(text, what, limit=limit)
