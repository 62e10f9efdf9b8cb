"""Fusion maths on hand-made rankings: every method, weights, fills, edge cases."""

from __future__ import annotations

import math
import random

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


def test_zscore_missing_bm25_candidate_is_a_zero_in_the_statistics() -> None:
    bm25 = [("a", 4.0), ("b", 2.0)]
    dense = [("c", 0.9), ("a", 0.5), ("b", 0.1)]
    out = {r.key: r for r in fuse(bm25, dense, FusionConfig(bm25_weight=0.5))}
    # BM25 over {a: 4, b: 2, c: 0}: mean 2, std sqrt(8/3).
    std_b = math.sqrt(8 / 3)
    std_d = math.sqrt(((0.9 - 0.5) ** 2 + 0 + (0.1 - 0.5) ** 2) / 3)
    assert out["c"].bm25_score == 0.0 and out["c"].bm25_rank is None
    assert out["c"].score == pytest.approx(phi(0.5 * (-2 / std_b) + 0.5 * (0.4 / std_d)))
    assert out["a"].score == pytest.approx(phi(0.5 * (2 / std_b) + 0.5 * 0.0))


def test_unknown_bm25_score_can_take_the_list_floor() -> None:
    bm25 = [("a", 4.0), ("b", 2.0)]
    dense = [("c", 0.9), ("a", 0.5), ("b", 0.1)]
    out = {r.key: r for r in fuse(bm25, dense, bm25_missing=None)}
    assert out["c"].bm25_score == 2.0  # at most the last listed score: the floor
    assert out["c"].score > out["b"].score  # same BM25, better cosine


def test_a_lone_bm25_match_beats_every_dense_neighbour() -> None:
    # The bug: standardized over a list of one, the match had z = 0, the floor of the
    # non-matches, and the dense neighbours won.
    dense = [(f"d{i}", 0.6 - i / 100) for i in range(50)] + [("needle", 0.3)]
    out = fuse([("needle", 7.5)], dense)
    assert out[0].key == "needle"
    assert out[0].bm25_rank == 1 and out[0].dense_rank == 51
    assert all(r.bm25_score == 0.0 for r in out[1:])


def test_a_lone_match_that_no_dense_list_holds_still_wins() -> None:
    dense = [(f"d{i}", 0.9 - i / 100) for i in range(10)]
    out = fuse([("needle", 2.0)], dense, dense_fill={"needle": 0.05})
    assert out[0].key == "needle"


@pytest.mark.parametrize("method", ["zscore", "minmax"])
def test_every_bm25_match_scores_above_every_non_match_of_equal_cosine(method: str) -> None:
    # Equal cosines, so the BM25 part alone decides; equal BM25 scores, several matches.
    dense = [(f"k{i}", 0.5) for i in range(20)]
    bm25 = [("k3", 1.0), ("k7", 1.0), ("k9", 1.0)]
    out = fuse(bm25, dense, FusionConfig(method=method))  # type: ignore[arg-type]
    matches = {r.key: r.score for r in out if r.bm25_rank is not None}
    others = [r.score for r in out if r.bm25_rank is None]
    assert set(matches) == {"k3", "k7", "k9"}
    assert min(matches.values()) > max(others)


def test_all_equal_scores_carry_no_information() -> None:
    same = [("a", 2.0), ("b", 2.0), ("c", 2.0)]
    out = fuse(same, [("a", 0.4), ("b", 0.4), ("c", 0.4)])
    assert [r.score for r in out] == pytest.approx([0.5, 0.5, 0.5])
    assert [r.key for r in out] == ["a", "b", "c"]  # ties: the BM25 order
    (only,) = fuse([("a", 3.0)], [("a", 0.2)])
    assert only.score == pytest.approx(0.5)


@pytest.mark.parametrize("method", ["zscore", "rrf", "minmax"])
def test_one_list_alone_keeps_its_order(method: str) -> None:
    cfg = FusionConfig(method=method)  # type: ignore[arg-type]
    bm25 = [("a", 5.0), ("b", 3.0), ("c", 0.5)]
    out = fuse(bm25, [], cfg)
    assert [r.key for r in out] == ["a", "b", "c"]
    assert all(r.dense_score is None and r.dense_rank is None for r in out)
    assert fuse([], [], cfg) == []


def test_random_lists_never_put_a_non_match_above_a_match_with_a_better_cosine() -> None:
    rng = random.Random(7)
    for _ in range(300):
        pool = [f"k{i}" for i in range(rng.randint(1, 60))]
        matched = rng.sample(pool, rng.randint(1, len(pool)))
        bm25 = sorted(((k, rng.uniform(0.01, 20.0)) for k in matched), key=lambda kv: -kv[1])
        cos = {k: rng.choice([0.1, 0.3, 0.5]) for k in pool}  # ties are the hard case
        dense = sorted(cos.items(), key=lambda kv: -kv[1])[: rng.randint(1, len(pool))]
        fill = {k: cos[k] for k in pool}
        out = fuse(bm25, dense, dense_fill=fill)
        score = {r.key: r.score for r in out}
        for m in matched:
            for other in set(score) - set(matched):
                if cos[m] >= cos[other]:
                    assert score[m] > score[other]


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


def test_limit_returns_the_head_of_the_full_order() -> None:
    bm25 = [(f"k{i}", 20.0 - i) for i in range(30)]
    dense = [(f"k{i}", 0.9 - i / 50) for i in range(10, 40)]
    everything = fuse(bm25, dense)
    assert fuse(bm25, dense, limit=5) == everything[:5]
    assert fuse(bm25, dense, limit=0) == []


def test_three_lists_split_the_lexical_share() -> None:
    cfg = FusionConfig(bm25_weight=0.8, full_share=0.25)
    bm25 = [("a", 3.0), ("b", 1.0)]  # z over {a, b, c}: a high, c (missing) at the floor
    full = [("c", 3.0), ("b", 1.0)]
    dense = [("a", 0.5), ("b", 0.5), ("c", 0.5)]  # no information
    out = {r.key: r for r in fuse(bm25, dense, cfg, full=full)}
    assert out["a"].score > out["c"].score  # the user's words weigh 0.6, the full text 0.2
    assert out["c"].full_rank == 1 and out["c"].bm25_score == 0.0 and out["a"].full_score == 0.0
    only_full = {r.key: r for r in fuse([], dense, cfg, full=full)}
    assert only_full["c"].score > only_full["a"].score  # alone, it takes the whole share
