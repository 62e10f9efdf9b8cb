"""Durations as the storage specification writes them: ``"5m"``, ``"1s"``, ``"24h"``, ``"7d"``.

A plain number is taken as seconds; ``ms`` is allowed for thresholds below a second. The
message names the key, never guesses: ``"5"`` minutes written as ``"5"`` would be seconds.
"""

from __future__ import annotations

import math
import re

from aico.errors import ConfigError

__all__ = ["parse_duration"]

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0, "w": 604_800.0}
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*")


def parse_duration(value: object, key: str, *, minimum: float = 0.0) -> float:
    """Seconds of a duration written ``<number><unit>`` (ms, s, m, h, d, w) or a number."""
    if isinstance(value, bool):
        raise ConfigError(f"{key} must be a duration such as '5m' or '1s'")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.fullmatch(value)):
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    else:
        raise ConfigError(f"{key} must be a duration such as '5m' or '1s' (units: ms s m h d w)")
    if not math.isfinite(seconds) or seconds < minimum:
        raise ConfigError(f"{key} must be at least {minimum:g} seconds")
    return seconds
