"""Exact matches are never buried: unique tokens searched alone, through the real MiniLM.

The measured bug (1,133 needles, 682 outside the hybrid top 3): each message carries one
unique token, every message is otherwise the same sentence, so the dense neighbours of a
query are all the other needles and only BM25 can tell them apart. BM25 matches exactly one
segment; the old z-score fusion gave that lone match z = 0, the floor of the non-matches.
"""

from __future__ import annotations

import random

import pytest
from semantic_support import T0

from aico.ai.embeddings import OnnxMiniLMEncoder
from aico.ai.memory.semantic import Segment

pytestmark = pytest.mark.slow

NEEDLES = 300


def _tokens(count: int) -> list[str]:
    rng = random.Random(20261201)
    return [f"QUOKKA{rng.getrandbits(48):012x}" for _ in range(count)]


def test_every_unique_token_finds_its_segment_first(
    sem_open, onnx_encoder: OnnxMiniLMEncoder
) -> None:
    store = sem_open(onnx_encoder)
    tokens = _tokens(NEEDLES)
    store.add_segments(
        [
            Segment(
                "alice",
                f"note number {i} mentions {token} today",
                T0 + i,
                roles=("user",),
                segment_id=f"needle-{i}",
            )
            for i, token in enumerate(tokens)
        ]
    )
    missed_first: list[int] = []
    missed_top3: list[int] = []
    components: list[tuple[int | None, float | None, float | None]] = []
    for i, token in enumerate(tokens):
        hits = store.search("alice", token, k=3)
        ids = [h.segment_id for h in hits]
        if ids[:1] != [f"needle-{i}"]:
            missed_first.append(i)
        if f"needle-{i}" not in ids:
            missed_top3.append(i)
        components.extend((h.bm25_rank, h.bm25_score, h.dense_score) for h in hits)
    assert (len(missed_first), len(missed_top3)) == (0, 0)
    # Every hit carries both retrievers' scores, a BM25 non-match as 0.
    assert all(b is not None and d is not None for _, b, d in components)
    assert all(b == 0.0 for rank, b, _ in components if rank is None)
