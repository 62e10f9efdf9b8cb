"""Fusion maths on hand-made rankings: every method, weights, fills, edge cases."""

from __future__ import annotations

import math

import pytest

from aico.ai.memory.semantic import FusionConfig, fuse
from aico.errors import ConfigError, InvalidInput


def phi(z: float) -> float:
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


def test_rrf_matches_hand_computation() -> None:
    bm25 = [("a", 9.0), ("b", 5.0), ("c", 1.0)]
    dense = [("b", 0.9), ("d", 0.8), ("a", 0.1)]
    config = FusionConfig(method="rrf", bm25_weight=0.5, rrf_k=60)
    got = {r.key: r for r in fuse(bm25, dense, config)}
    best = 0.5 / 61 + 0.5 / 61
    assert got["a"].score == pytest.approx((0.5 / 61 + 0.5 / 63) / best)
    assert got["b"].score == pytest.approx((0.5 / 62 + 0.5 / 61) / best)
    assert got["c"].score == pytest.approx((0.5 / 63) / best)
    assert got["d"].score == pytest.approx((0.5 / 62) / best)
    order = [r.key for r in fuse(bm25, dense, config)]
    assert order == ["b", "a", "d", "c"]  # b: ranks 2+1 beats a: ranks 1+3


def test_rrf_first_everywhere_scores_one() -> None:
    out = fuse([("x", 3.0), ("y", 1.0)], [("x", 0.5), ("y", 0.2)], FusionConfig(method="rrf"))
    assert out[0].key == "x"
    assert out[0].score == pytest.approx(1.0)


def test_zscore_matches_hand_computation() -> None:
    bm25 = [("a", 3.0), ("b", 1.0)]  # mean 2, std 1 -> z = +1, -1
    dense = [("b", 0.8), ("a", 0.4)]  # mean .6, std .2 -> z(b) = +1, z(a) = -1
    out = {r.key: r for r in fuse(bm25, dense, FusionConfig(method="zscore", bm25_weight=0.6))}
    assert out["a"].score == pytest.approx(phi(0.6 * 1 + 0.4 * -1))
    assert out["b"].score == pytest.approx(phi(0.6 * -1 + 0.4 * 1))
    assert out["a"].score > out["b"].score  # the heavier weight wins the tie of ranks


def test_zscore_missing_candidate_gets_the_list_floor() -> None:
    bm25 = [("a", 4.0), ("b", 2.0), ("c", 0.0)]  # z: +1.2247, 0, -1.2247
    dense = [("d", 0.9)]  # single candidate: z = 0
    out = {r.key: r for r in fuse(bm25, dense, FusionConfig(bm25_weight=0.5))}
    floor = -math.sqrt(1.5)
    assert out["d"].score == pytest.approx(phi(0.5 * floor + 0.5 * 0.0))
    assert out["a"].score == pytest.approx(phi(0.5 * math.sqrt(1.5) + 0.5 * 0.0))


def test_fill_scores_join_the_normalization_without_ranks() -> None:
    bm25 = [("a", 4.0)]
    dense = [("b", 0.9), ("a", 0.5)]
    filled = fuse(bm25, dense, FusionConfig(bm25_weight=0.5), bm25_fill={"b": 0.0})
    got = {r.key: r for r in filled}
    assert got["b"].bm25_score == 0.0 and got["b"].bm25_rank is None
    # BM25 over {a: 4, b: 0} -> z = +1, -1; dense over {b: .9, a: .5} -> z(b) = +1, z(a) = -1.
    assert got["a"].score == pytest.approx(phi(0.5 * 1 + 0.5 * -1))
    assert got["b"].score == pytest.approx(phi(0.5 * -1 + 0.5 * 1))


def test_minmax_matches_hand_computation() -> None:
    bm25 = [("a", 10.0), ("b", 6.0), ("c", 2.0)]
    dense = [("c", 0.9), ("a", 0.3)]
    out = {r.key: r for r in fuse(bm25, dense, FusionConfig(method="minmax", bm25_weight=0.25))}
    assert out["a"].score == pytest.approx(0.25 * 1.0 + 0.75 * 0.0)
    assert out["b"].score == pytest.approx(0.25 * 0.5 + 0.75 * 0.0)
    assert out["c"].score == pytest.approx(0.25 * 0.0 + 0.75 * 1.0)


@pytest.mark.parametrize("method", ["zscore", "rrf", "minmax"])
def test_scores_stay_in_unit_interval_and_sorted(method: str) -> None:
    bm25 = [(f"k{i}", 50.0 / (i + 1)) for i in range(40)]
    dense = [(f"k{i}", 1.0 - i / 30) for i in range(10, 60)]
    out = fuse(bm25, dense, FusionConfig(method=method))  # type: ignore[arg-type]
    scores = [r.score for r in out]
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert scores == sorted(scores, reverse=True)
    assert len(out) == 60


@pytest.mark.parametrize("method", ["zscore", "rrf", "minmax"])
def test_one_empty_list_gives_its_weight_to_the_other(method: str) -> None:
    dense = [("a", 0.9), ("b", 0.5), ("c", 0.1)]
    cfg = FusionConfig(method=method, bm25_weight=0.9)  # type: ignore[arg-type]
    alone = fuse([], dense, cfg)
    assert [r.key for r in alone] == ["a", "b", "c"]
    assert alone[0].score > 0.5  # not squashed by the absent half's weight
    assert alone[0].bm25_rank is None and alone[0].dense_rank == 1
    everything_on_bm25 = fuse([], dense, FusionConfig(method=method, bm25_weight=1.0))  # type: ignore[arg-type]
    assert [r.key for r in everything_on_bm25] == ["a", "b", "c"]


def test_empty_inputs_and_duplicates() -> None:
    assert fuse([], []) == []
    out = fuse([("a", 2.0), ("a", 1.0), ("b", 1.0)], [])
    assert [r.key for r in out] == ["a", "b"]
    assert out[0].bm25_score == 2.0  # first (best) occurrence kept


def test_single_candidate_is_the_average() -> None:
    (only,) = fuse([("a", 7.0)], [])
    assert only.score == pytest.approx(0.5)
    (only,) = fuse([("a", 7.0)], [], FusionConfig(method="rrf"))
    assert only.score == pytest.approx(1.0)


def test_ties_break_deterministically() -> None:
    out = fuse([("x", 1.0), ("y", 1.0)], [("y", 0.5), ("x", 0.5)])
    assert [r.key for r in out] == ["x", "y"]  # equal scores: best BM25 rank first


def test_non_finite_scores_are_refused() -> None:
    with pytest.raises(InvalidInput):
        fuse([("a", math.nan)], [])
    with pytest.raises(InvalidInput):
        fuse([("a", 1.0)], [("b", 1.0)], dense_fill={"a": math.inf})


@pytest.mark.parametrize(
    "kwargs",
    [
        {"method": "borda"},
        {"bm25_weight": 1.5},
        {"bm25_weight": -0.1},
        {"bm25_weight": True},
        {"rrf_k": -1},
        {"rrf_k": 1.5},
    ],
)
def test_config_validation(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        FusionConfig(**kwargs)  # type: ignore[arg-type]


def test_dense_weight_is_the_complement() -> None:
    assert FusionConfig(bm25_weight=0.6).dense_weight == pytest.approx(0.4)
    assert FusionConfig().method == "zscore"
