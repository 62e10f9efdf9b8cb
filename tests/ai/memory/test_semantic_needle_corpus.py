"""The generated needle corpus (``scripts/bench/needles_data.py``) through the store defaults.

A fast version of ``scripts/bench/needles.py`` (the fake encoder, fewer filler
conversations): every needle kind whose answer is lexical or temporal must be found, so a
change to fusion, the FTS tables or the time boost that buries one fails here. Paraphrases
need a real model and are left to the benchmark.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "scripts" / "bench"))
import needles
import needles_data

from aico.ai.memory.semantic import SemanticConfig, timeparse


@pytest.fixture(scope="module")
def corpus() -> needles_data.Corpus:
    return needles_data.generate(1, filler_conversations=60)


def _results(sem_open, corpus, config: SemanticConfig | None = None) -> dict:
    store = sem_open(config=config)
    needles.ingest(store, corpus, user="alice")
    return needles.evaluate(store, corpus, ["hybrid"], user="alice")["hybrid"]


def test_the_corpus_is_the_same_on_every_run(corpus) -> None:
    again = needles_data.generate(1, filler_conversations=60)
    assert again == corpus
    assert {n.kind for n in corpus.needles} == set(needles_data.KINDS)
    ids = [t.message_id for c in corpus.conversations for t in c.turns]
    assert len(ids) == len(set(ids))


def test_store_defaults_find_every_lexical_and_dated_needle(sem_open, corpus) -> None:
    got = _results(sem_open, corpus)
    assert got["unique_token"]["first"] == 1.0
    assert got["name"]["top3"] == 1.0
    assert got["number"]["top3"] == 1.0
    assert got["rare_word"]["top3"] == 1.0
    assert got["assistant_fact"]["recall@5"] >= 0.8  # the assistant's words, full-text BM25
    if timeparse.available():  # dateparser reads "two weeks ago", "in March"
        assert got["dated"]["first"] == 1.0  # the time expression picks the one copy


def test_without_the_time_boost_and_the_full_text_bm25_they_are_lost(sem_open, corpus) -> None:
    # What the defaults are measured against: no window, BM25 over the user's words only.
    config = SemanticConfig.from_mapping({"fusion_time_weight": 0.0, "fusion_full_share": 0.0})
    got = _results(sem_open, corpus, config)
    assert got["dated"]["first"] < 0.5
    assert got["assistant_fact"]["recall@5"] < 0.6
