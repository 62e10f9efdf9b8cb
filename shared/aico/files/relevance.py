"""Relevance of a file for the companion's context: the specification's four components.

- ``frequency``: how often the file was read into context (``1 - e^(-n/5)``: 5 reads ≈ 0.63);
- ``recency``: how lately (half-life ``half_life_days``; 0 when never read);
- ``dependency``: how many indexed files relate to it (imports, tests, links; saturating);
- ``success_correlation``: the share of its accesses marked successful (0.5 when unknown).

``final = base + Σ weight·component``, with ``base`` the query's own match (0 when ranking
without one). Pure arithmetic; the caller reads the counts and stores the scores.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["WEIGHTS", "FileSignals", "Score", "score"]

WEIGHTS = {"frequency": 0.3, "recency": 0.3, "dependency": 0.2, "success": 0.2}


@dataclass(frozen=True)
class FileSignals:
    accesses: int
    successes: int
    last_access: float | None
    dependents: int


@dataclass(frozen=True)
class Score:
    base: float
    frequency: float
    recency: float
    dependency: float
    success_correlation: float
    final: float


def score(
    signals: FileSignals, now: float, *, base: float = 0.0, half_life_days: float = 7.0
) -> Score:
    frequency = 1.0 - math.exp(-signals.accesses / 5.0)
    if signals.last_access is None:
        recency = 0.0
    else:
        age_days = max(0.0, now - signals.last_access) / 86_400.0
        recency = 0.5 ** (age_days / half_life_days)
    dependency = 1.0 - math.exp(-signals.dependents / 3.0)
    success = signals.successes / signals.accesses if signals.accesses else 0.5
    final = base + (
        WEIGHTS["frequency"] * frequency
        + WEIGHTS["recency"] * recency
        + WEIGHTS["dependency"] * dependency
        + WEIGHTS["success"] * success
    )
    return Score(base, frequency, recency, dependency, success, final)
