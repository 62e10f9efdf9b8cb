"""FTS5 query building: hostile user input never raises, and means what the user typed."""

from __future__ import annotations

import pytest
from semantic_support import corpus_segments

from aico.ai.memory.semantic import (
    DEFAULT_FTS_TOKENIZER,
    SemanticConfig,
    SemanticMemoryStore,
    build_match_expression,
    query_terms,
)
from aico.ai.memory.semantic.fts import check_tokenizer
from aico.errors import ConfigError

HOSTILE = [
    "",
    "   ",
    '"',
    '""',
    '"""',
    "*",
    "dog*",
    "* dog",
    "NEAR",
    "NEAR(dog cat, 2)",
    "dog NEAR cat",
    "AND",
    "OR",
    "NOT",
    "dog AND",
    "AND dog",
    "dog OR OR cat",
    "NOT dog",
    "(",
    ")",
    "(dog",
    "dog)",
    "((()))",
    "^dog",
    "dog:cat",
    "text:dog",
    "body:dog",
    "{body}: dog",
    "-dog",
    "+dog",
    "dog'; DROP TABLE semantic_segments; --",
    "🙂",
    "🐕 dog 🐕",
    "\x00",
    "dog\x00cat",
    "\ud800",
    "a" * 10_000,
    " ".join(["dog"] * 500),
    "l'été à Zürich",
    "東京 に 行きたい",
    "golden_retriever",
    'he said "swimming',
    "c++ / c# / f#",
]


def test_terms_are_lowercased_deduplicated_and_stopwords_dropped() -> None:
    assert query_terms("What is the Dog's NAME, the dog?") == ["dog", "name"]
    assert query_terms("What is the", drop_stopwords=True) == []
    assert query_terms("What is the", drop_stopwords=False) == ["what", "is", "the"]
    assert query_terms("golden_retriever") == ["golden", "retriever"]


def test_expression_is_or_of_quoted_literals() -> None:
    assert build_match_expression('tell me about "NEAR(cats*') == '"tell" OR "near" OR "cats"'
    assert build_match_expression("and or not") is None  # only stopwords
    assert build_match_expression("🙂 ✨") is None


def test_terms_are_capped() -> None:
    terms = query_terms(" ".join(f"word{i}" for i in range(500)))
    assert len(terms) == 64


@pytest.mark.parametrize("query", HOSTILE)
def test_expression_never_contains_bare_syntax(query: str) -> None:
    expression = build_match_expression(query)
    if expression is None:
        return
    for part in expression.split(" OR "):
        assert part.startswith('"') and part.endswith('"')
        inner = part[1:-1]
        assert '"' not in inner.replace('""', "")


@pytest.mark.parametrize("mode", ["bm25", "hybrid", "dense"])
def test_hostile_queries_never_raise_against_fts5(
    sem_store: SemanticMemoryStore, mode: str
) -> None:
    sem_store.add_segments(corpus_segments())
    for query in HOSTILE:
        hits = sem_store.search("alice", query, mode=mode)  # type: ignore[arg-type]
        assert all(hit.segment_id.startswith("alice-") for hit in hits)


def test_operator_words_are_matched_as_words(sem_store: SemanticMemoryStore) -> None:
    sem_store.add_segments(corpus_segments())
    hits = sem_store.search("alice", "NEAR(marathon*", mode="bm25")
    assert [h.segment_id for h in hits] == ["alice-007"]


def test_porter_stemming_is_the_default(sem_store: SemanticMemoryStore) -> None:
    sem_store.add_segments(corpus_segments())
    assert sem_store.config.fts_tokenizer == DEFAULT_FTS_TOKENIZER
    hits = sem_store.search("alice", "swim", mode="bm25")  # indexed as "swimming"
    assert [h.segment_id for h in hits] == ["alice-000"]


def test_tokenizer_change_rebuilds_the_index(sem_open) -> None:
    first = sem_open()
    first.add_segments(corpus_segments())
    first.close()
    plain = sem_open(config=SemanticConfig(fts_tokenizer="unicode61"))
    assert plain.search("alice", "swim", mode="bm25") == []  # no stemming any more
    assert [h.segment_id for h in plain.search("alice", "swimming", mode="bm25")] == ["alice-000"]
    plain.close()
    again = sem_open()
    assert [h.segment_id for h in again.search("alice", "swim", mode="bm25")] == ["alice-000"]


@pytest.mark.parametrize(
    "spec", ["porter unicode61 remove_diacritics 2", "unicode61", "porter ascii", "trigram"]
)
def test_valid_tokenizers(spec: str) -> None:
    assert check_tokenizer(spec) == spec


@pytest.mark.parametrize(
    "spec", ["", "porter", "icu", "unicode61'); DROP TABLE x; --", "Unicode61", "porter  x"]
)
def test_invalid_tokenizers(spec: str) -> None:
    with pytest.raises(ConfigError):
        check_tokenizer(spec)
