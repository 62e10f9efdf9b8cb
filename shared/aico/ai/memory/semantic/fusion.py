"""Rank fusion of the BM25 and dense result lists (pure maths, no I/O).

Every method returns a fused score in ``[0, 1]`` so ``min_score`` means the same thing for
every method and mode (AICO's bug: a fused score that could never exceed 0.18 was filtered at
0.4, so nothing was ever returned). What the number means depends on the method:

- ``"zscore"`` (default): each retriever's scores are standardized (``(s - mean) / std``)
  over the whole candidate set (the union of both lists), combined with the weights, and
  mapped through the standard normal CDF. 0.5 is an average candidate, 0.84 is one standard
  deviation above it. The score is relative to the candidate set: it ranks and trims well,
  it cannot tell "nothing relevant exists".
- ``"rrf"``: reciprocal rank fusion, ``sum w / (k + rank)``, divided by its maximum (rank 1 in
  every active list) so 1.0 means "first everywhere".
- ``"minmax"``: each retriever's scores min-max scaled over the candidate set, weighted sum.

Every candidate gets a score from every retriever before normalizing, so both retrievers are
normalized over the same candidates. A retriever's list holds only its own top candidates;
``bm25_fill`` / ``dense_fill`` add the exact scores of the other list's candidates where the
caller has them (the store fills the cosine of BM25-only candidates from the libSQL vectors).
A candidate that still has no BM25 score gets ``bm25_missing``: by default 0.0, which is what
``-bm25()`` is for a segment that matches no query term, and it takes part in the mean and the
standard deviation like any other score. That is what keeps an exact match on top: with the
old rule (standardize each list over its own candidates, give the others the lowest
z-score), a BM25 list of one match had a standard deviation of 0, so the match got z = 0,
the same as every non-match, and a unique token searched alone was outside the top 3 for 682
of 1,133 needles. Now any positive BM25 score standardizes strictly above every non-match.
Pass ``bm25_missing=None`` when the candidate's score is unknown rather than zero (it gets
the list's lowest score, an upper bound for a segment ranked below the list's end).
Dense candidates without a cosine (no vector yet) get the lowest cosine of the candidates.

When a list is empty (no BM25 match, or a single-retriever mode) its weight moves to the
other list, so scores stay in ``[0, 1]``.
"""

from __future__ import annotations

import itertools
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
    """How the lists are combined.

    ``bm25_weight`` in ``[0, 1]`` is the lexical share, dense gets the rest. ``full_share``
    in ``[0, 1]`` is the part of the lexical share that goes to the BM25 over every party's
    words (``full``, the store's ``semantic_fts_full``); the BM25 over the ``fts_roles``
    words gets the rest. ``time_weight`` is what a segment inside the query's time window
    adds to the combined z-score (``zscore``; a share of the best score for the others),
    scaled by ``time_boost`` outside it.
    """

    method: FusionMethod = "zscore"
    bm25_weight: float = 0.8
    rrf_k: int = 60
    full_share: float = 0.35
    time_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.method not in get_args(FusionMethod):
            raise ConfigError(f"semantic.fusion.method must be one of {get_args(FusionMethod)}")
        for name, high in (("bm25_weight", 1.0), ("full_share", 1.0), ("time_weight", 10.0)):
            weight = getattr(self, name)
            if isinstance(weight, bool) or not isinstance(weight, int | float):
                raise ConfigError(f"semantic.fusion.{name} must be a number")
            if not 0.0 <= float(weight) <= high:
                raise ConfigError(f"semantic.fusion.{name} must be between 0 and {high:g}")
            object.__setattr__(self, name, float(weight))
        if isinstance(self.rrf_k, bool) or not isinstance(self.rrf_k, int) or self.rrf_k < 0:
            raise ConfigError("semantic.fusion.rrf_k must be a non-negative integer")

    @property
    def dense_weight(self) -> float:
        return 1.0 - self.bm25_weight


@dataclass(frozen=True)
class FusedResult(Generic[K]):
    """One candidate after fusion; ranks are 1-based, ``None`` when absent from that list.

    ``bm25_score`` / ``dense_score`` are the scores fusion used for this candidate, also
    when it was absent from that list (a filled cosine, 0.0 for no BM25 match); ``None``
    only when that retriever did not take part (empty list).
    """

    key: K
    score: float
    bm25_rank: int | None
    bm25_score: float | None
    dense_rank: int | None
    dense_score: float | None
    full_rank: int | None = None
    full_score: float | None = None
    time_boost: float = 0.0


@dataclass
class _Signal(Generic[K]):
    """One retriever's list, its ranks and a score for every candidate."""

    ranked: list[tuple[K, float]]
    weight: float
    rank: dict[K, int]
    score: dict[K, float]


def fuse(
    bm25: Sequence[tuple[K, float]],
    dense: Sequence[tuple[K, float]],
    config: FusionConfig | None = None,
    *,
    bm25_fill: Mapping[K, float] | None = None,
    dense_fill: Mapping[K, float] | None = None,
    bm25_missing: float | None = 0.0,
    full: Sequence[tuple[K, float]] = (),
    boosts: Mapping[K, float] | None = None,
    limit: int | None = None,
) -> list[FusedResult[K]]:
    """Fuse ranked lists of ``(key, score)`` (best first, higher score = better).

    ``bm25_fill`` / ``dense_fill`` give scores of candidates absent from that list (they get
    no rank); ``bm25_missing`` is the BM25 score of a candidate with neither (see the
    module docstring), also for ``full``, the optional second BM25 list. ``boosts`` maps
    candidates to a time boost in ``[0, 1]`` (weighted by ``time_weight``). Returns every
    candidate of any list (the first ``limit`` only, when given: a search needs ``k``),
    best first; ties break on the best rank in any list, then on the BM25 rank, so the
    order is deterministic.
    """
    cfg = config or FusionConfig()
    if bm25_missing is not None:
        bm25_missing = _finite(bm25_missing)
    b_list, f_list, d_list = _dedupe(bm25), _dedupe(full), _dedupe(dense)
    # The lexical share splits between the two BM25 lists; an empty one gives its part away.
    share = cfg.full_share if b_list and f_list else (1.0 if f_list else 0.0)
    lexical = cfg.bm25_weight if b_list or f_list else 0.0
    w_b, w_f = lexical * (1.0 - share), lexical * share
    w_d = cfg.dense_weight if d_list else 0.0
    total = w_b + w_f + w_d
    if total == 0.0:
        # All weight on empty lists (e.g. bm25_weight=1 and no BM25 match): use what exists.
        w_b, w_f, w_d = float(bool(b_list)), float(bool(f_list)), float(bool(d_list))
        total = w_b + w_f + w_d
    if total == 0.0:
        return []
    keys = list(dict.fromkeys(key for part in (b_list, f_list, d_list) for key, _ in part))
    b = _signal(b_list, w_b / total, keys, bm25_fill, bm25_missing)
    f = _signal(f_list, w_f / total, keys, None, bm25_missing)
    d = _signal(d_list, w_d / total, keys, dense_fill, None)
    signals = [s for s in (b, f, d) if s.ranked and s.weight > 0.0]
    boost = {key: _finite(boosts.get(key, 0.0)) for key in keys} if boosts else {}

    if cfg.method == "rrf":
        best = sum(s.weight for s in signals) / (cfg.rrf_k + 1)
        scores = {
            key: sum(s.weight / (cfg.rrf_k + s.rank[key]) for s in signals if key in s.rank) / best
            for key in keys
        }
    elif cfg.method == "minmax":
        norms = [(s.weight, _minmax(s.score)) for s in signals]
        scores = {key: sum(w * norm[key] for w, norm in norms) for key in keys}
    else:
        norms = [(s.weight, _zscores(s.score)) for s in signals]
        scores = {
            key: _normal_cdf(
                sum(w * norm[key] for w, norm in norms) + cfg.time_weight * boost.get(key, 0.0)
            )
            for key in keys
        }
    if boost and cfg.method != "zscore" and cfg.time_weight > 0.0:
        # Bounded scores: the boost lifts a candidate toward 1 by its share of the gap.
        lift = min(1.0, cfg.time_weight / (1.0 + cfg.time_weight))
        scores = {key: v + lift * boost[key] * (1.0 - v) for key, v in scores.items()}

    def order(key: K) -> tuple[float, int, int]:
        ranks = (
            b.rank.get(key, len(b_list) + 1),
            d.rank.get(key, len(d_list) + 1),
            f.rank.get(key, len(f_list) + 1),
        )
        return (-scores[key], min(ranks), ranks[0])

    return [
        FusedResult(
            key=key,
            score=min(1.0, max(0.0, scores[key])),
            bm25_rank=b.rank.get(key),
            bm25_score=b.score.get(key),
            dense_rank=d.rank.get(key),
            dense_score=d.score.get(key),
            full_rank=f.rank.get(key),
            full_score=f.score.get(key),
            time_boost=boost.get(key, 0.0),
        )
        for key in itertools.islice(sorted(keys, key=order), limit)
    ]


def _signal(
    ranked: list[tuple[K, float]],
    weight: float,
    keys: list[K],
    fill: Mapping[K, float] | None,
    missing: float | None,
) -> _Signal[K]:
    """A retriever's score for every candidate: its list, then ``fill``, then ``missing``.

    ``missing=None`` stands for the list's lowest score. An empty list scores nobody: it
    takes no part in the fusion.
    """
    rank = {key: i + 1 for i, (key, _) in enumerate(ranked)}
    if not ranked:
        return _Signal(ranked, weight, rank, {})
    scores = dict(ranked)
    floor = min(scores.values()) if missing is None else missing
    for key in keys:
        if key in scores:
            continue
        if fill is not None and key in fill:
            scores[key] = _finite(fill[key])
        else:
            scores[key] = floor
    return _Signal(ranked, weight, rank, scores)


def _finite(value: float) -> float:
    number = float(value)
    if not math.isfinite(number):
        raise InvalidInput("fusion scores must be finite numbers")
    return number


def _dedupe(items: Sequence[tuple[K, float]]) -> list[tuple[K, float]]:
    """Keep each key's first (best) occurrence; reject scores that would poison the maths."""
    seen: set[K] = set()
    out: list[tuple[K, float]] = []
    for key, score in items:
        if key in seen:
            continue
        seen.add(key)
        out.append((key, _finite(score)))
    return out


def _zscores(scores: dict[K, float]) -> dict[K, float]:
    values = list(scores.values())
    mean = math.fsum(values) / len(values)
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / len(values))
    if std <= 1e-12:
        return dict.fromkeys(scores, 0.0)
    return {key: (value - mean) / std for key, value in scores.items()}


def _minmax(scores: dict[K, float]) -> dict[K, float]:
    low, high = min(scores.values()), max(scores.values())
    if high - low <= 1e-12:
        return dict.fromkeys(scores, 1.0)
    return {key: (value - low) / (high - low) for key, value in scores.items()}


def _normal_cdf(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))
