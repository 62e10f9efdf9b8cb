"""Argument checks of the coordinator's verbs: typed errors before any store is touched.

Messages name the argument, never its value (ids and text can be the user's own words).
"""

from __future__ import annotations

import math

from aico.errors import InvalidInput

__all__ = ["MAX_CONTENT", "MAX_ID", "check_count", "check_id", "check_text", "check_time"]

MAX_ID = 128
MAX_CONTENT = 1_000_000


def check_id(value: object, what: str) -> None:
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_ID:
        raise InvalidInput(f"{what} must be a string of 1-{MAX_ID} characters")
    check_text(value, what)


def check_text(
    value: object, what: str, *, required: bool = False, limit: int = MAX_CONTENT
) -> None:
    """Strings the log can keep exactly: no NUL (SQLite would cut there), valid UTF-8."""
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a string")
    if required and not value.strip():
        raise InvalidInput(f"{what} must be a non-empty string")
    if len(value) > limit:
        raise InvalidInput(f"{what} is longer than {limit} characters")
    if "\x00" in value:
        raise InvalidInput(f"{what} must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"{what} must be valid Unicode (no lone surrogates)") from None


def check_time(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInput("timestamp must be a finite number of unix seconds")
    if not 0 <= value < 32_503_680_000:  # year 3000
        raise InvalidInput("timestamp must be between 1970 and 3000")
    return float(value)


def check_count(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput(f"{what} must be a non-negative integer")
    return value
