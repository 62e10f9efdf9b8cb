"""Rank fusion of the BM25 and dense result lists (pure maths, no I/O).

Every method returns a fused score in ``[0, 1]`` so ``min_score`` means the same thing for
every method and mode (AICO's bug: a fused score that could never exceed 0.18 was filtered at
0.4, so nothing was ever returned). What the number means depends on the method:

- ``"zscore"`` (default): each list's scores are standardized (``(s - mean) / std`` over that
  list's candidates), combined with the weights, and mapped through the standard normal CDF.
  0.5 is an average candidate, 0.84 is one standard deviation above it. The score is relative
  to the candidate set: it ranks and trims well, it cannot tell "nothing relevant exists".
  Measured on LongMemEval, weight 0.6 on BM25 beats RRF and either retriever alone.
- ``"rrf"``: reciprocal rank fusion, ``sum w / (k + rank)``, divided by its maximum (rank 1 in
  every active list) so 1.0 means "first everywhere".
- ``"minmax"``: each list min-max scaled to ``[0, 1]``, weighted sum.

A retriever's list holds only its own top candidates. ``bm25_fill`` / ``dense_fill`` add the
exact scores of the other list's candidates where the caller has them (the store fills the
cosine of BM25-only candidates from the libSQL vectors), so both retrievers are normalized
over the same candidates. A candidate with no score at all gets that retriever's floor: the
lowest z-score (zscore), 0 (minmax), or no term (rrf); the LongMemEval harness treats
documents without a BM25 match the same way. When a list is empty (no BM25 match, or a
single-retriever mode) its weight moves to the other list, so scores stay in ``[0, 1]``.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar, get_args

from aico.errors import ConfigError, InvalidInput

__all__ = ["FusedResult", "FusionConfig", "FusionMethod", "fuse"]

FusionMethod = Literal["zscore", "rrf", "minmax"]
K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class FusionConfig:
    """How the two lists are combined; ``bm25_weight`` in ``[0, 1]``, dense gets the rest."""

    method: FusionMethod = "zscore"
    bm25_weight: float = 0.6
    rrf_k: int = 60

    def __post_init__(self) -> None:
        if self.method not in get_args(FusionMethod):
            raise ConfigError(f"semantic.fusion.method must be one of {get_args(FusionMethod)}")
        weight = self.bm25_weight
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            raise ConfigError("semantic.fusion.bm25_weight must be a number")
        if not 0.0 <= float(weight) <= 1.0:
            raise ConfigError("semantic.fusion.bm25_weight must be between 0 and 1")
        object.__setattr__(self, "bm25_weight", float(weight))
        if isinstance(self.rrf_k, bool) or not isinstance(self.rrf_k, int) or self.rrf_k < 0:
            raise ConfigError("semantic.fusion.rrf_k must be a non-negative integer")

    @property
    def dense_weight(self) -> float:
        return 1.0 - self.bm25_weight


@dataclass(frozen=True)
class FusedResult(Generic[K]):
    """One candidate after fusion; ranks are 1-based, ``None`` when absent from that list."""

    key: K
    score: float
    bm25_rank: int | None
    bm25_score: float | None
    dense_rank: int | None
    dense_score: float | None


def fuse(
    bm25: Sequence[tuple[K, float]],
    dense: Sequence[tuple[K, float]],
    config: FusionConfig | None = None,
    *,
    bm25_fill: Mapping[K, float] | None = None,
    dense_fill: Mapping[K, float] | None = None,
) -> list[FusedResult[K]]:
    """Fuse two ranked lists of ``(key, score)`` (best first, higher score = better).

    ``bm25_fill`` / ``dense_fill`` give scores of candidates absent from that list (they get
    no rank). Returns every candidate of either list, best first; ties break on the best rank
    in either list, then on the BM25 rank, so the order is deterministic.
    """
    cfg = config or FusionConfig()
    b_list, d_list = _dedupe(bm25), _dedupe(dense)
    w_b = cfg.bm25_weight if b_list else 0.0
    w_d = cfg.dense_weight if d_list else 0.0
    total = w_b + w_d
    if total == 0.0:
        # Both weights on an empty list (e.g. bm25_weight=1 and no BM25 match): use what exists.
        w_b, w_d = float(bool(b_list)), float(bool(d_list))
        total = w_b + w_d
    if total == 0.0:
        return []
    w_b, w_d = w_b / total, w_d / total

    b_rank = {key: i + 1 for i, (key, _) in enumerate(b_list)}
    d_rank = {key: i + 1 for i, (key, _) in enumerate(d_list)}
    keys = list(b_rank) + [key for key in d_rank if key not in b_rank]
    b_score = _with_fill(b_list, bm25_fill, keys)
    d_score = _with_fill(d_list, dense_fill, keys)

    if cfg.method == "rrf":
        best = w_b / (cfg.rrf_k + 1) + w_d / (cfg.rrf_k + 1)
        raw = {
            key: (w_b / (cfg.rrf_k + b_rank[key]) if key in b_rank else 0.0)
            + (w_d / (cfg.rrf_k + d_rank[key]) if key in d_rank else 0.0)
            for key in keys
        }
        scores = {key: value / best for key, value in raw.items()}
    elif cfg.method == "minmax":
        b_norm, d_norm = _minmax(b_score), _minmax(d_score)
        scores = {key: w_b * b_norm.get(key, 0.0) + w_d * d_norm.get(key, 0.0) for key in keys}
    else:
        b_z, d_z = _zscores(b_score), _zscores(d_score)
        b_floor = min(b_z.values(), default=0.0)
        d_floor = min(d_z.values(), default=0.0)
        scores = {
            key: _normal_cdf(w_b * b_z.get(key, b_floor) + w_d * d_z.get(key, d_floor))
            for key in keys
        }

    def order(key: K) -> tuple[float, int, int]:
        ranks = (b_rank.get(key, len(b_list) + 1), d_rank.get(key, len(d_list) + 1))
        return (-scores[key], min(ranks), ranks[0])

    return [
        FusedResult(
            key=key,
            score=min(1.0, max(0.0, scores[key])),
            bm25_rank=b_rank.get(key),
            bm25_score=b_score.get(key),
            dense_rank=d_rank.get(key),
            dense_score=d_score.get(key),
        )
        for key in sorted(keys, key=order)
    ]


def _dedupe(items: Sequence[tuple[K, float]]) -> list[tuple[K, float]]:
    """Keep each key's first (best) occurrence; reject scores that would poison the maths."""
    seen: set[K] = set()
    out: list[tuple[K, float]] = []
    for key, score in items:
        if key in seen:
            continue
        value = float(score)
        if not math.isfinite(value):
            raise InvalidInput("fusion scores must be finite numbers")
        seen.add(key)
        out.append((key, value))
    return out


def _with_fill(
    ranked: list[tuple[K, float]], fill: Mapping[K, float] | None, keys: list[K]
) -> dict[K, float]:
    """The list's scores plus filled-in scores of the other candidates (list wins)."""
    scores = dict(ranked)
    if fill:
        for key in keys:
            if key not in scores and key in fill:
                value = float(fill[key])
                if not math.isfinite(value):
                    raise InvalidInput("fusion scores must be finite numbers")
                scores[key] = value
    return scores


def _zscores(scores: dict[K, float]) -> dict[K, float]:
    if not scores:
        return {}
    values = list(scores.values())
    mean = math.fsum(values) / len(values)
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / len(values))
    if std <= 1e-12:
        return dict.fromkeys(scores, 0.0)
    return {key: (value - mean) / std for key, value in scores.items()}


def _minmax(scores: dict[K, float]) -> dict[K, float]:
    if not scores:
        return {}
    low, high = min(scores.values()), max(scores.values())
    if high - low <= 1e-12:
        return dict.fromkeys(scores, 1.0)
    return {key: (value - low) / (high - low) for key, value in scores.items()}


def _normal_cdf(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))
