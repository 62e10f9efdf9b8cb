"""Tunable parameters of the semantic store, validated once.

The retrieval choices (fusion method and weight, FTS tokenizer, stopwords, segment unit)
are parameters because they are measured, not guessed: the LongMemEval harness plugs its
winners in here. Defaults are the best measured so far.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aico.ai.memory.semantic.fts import DEFAULT_FTS_TOKENIZER, check_tokenizer
from aico.ai.memory.semantic.fusion import FusionConfig
from aico.ai.memory.semantic.segmenting import SegmentationConfig
from aico.errors import ConfigError

__all__ = ["SemanticConfig"]

_PREFIX_RE = re.compile(r"[a-z][a-z0-9-]{2,40}")


@dataclass(frozen=True)
class SemanticConfig:
    """Everything a ``SemanticMemoryStore`` can be tuned with.

    - ``candidates`` / ``overfetch``: each retriever returns ``max(candidates, k * overfetch)``
      candidates before fusion, so fusion can promote what one half ranks low.
    - ``exact_search_limit``: a filtered dense search over at most this many segments is done
      exactly from the libSQL vectors instead of through Chroma (see ``store``).
    - ``bm25_max_df``: in a store of at least ``bm25_prune_min_segments`` segments of the
      user, query terms found in more than this share of them are dropped from BM25 (a
      latency guard; None keeps every term); ``bm25_max_postings`` additionally caps the
      summed document counts of the kept terms (None: no cap). See
      ``SemanticMemoryStore._prune_terms``.
    - ``bm25_in_memory``: answer BM25 from FTS5's own postings held in memory (exact: the
      same scores as FTS5's ``bm25()``, ~1 ms instead of ~0.6 µs per matching row; see
      ``postings``); ``bm25_memory_postings`` bounds what it holds (8 bytes a posting).
      Pruning by ``bm25_max_df`` applies only when FTS5 answers.
    - ``collection_prefix``: Chroma collection names are ``<prefix>-<keyed hash of user>``.
    - ``index_retry_s``: how long a degraded index waits before the next try: a Chroma
      server that failed is loaded again, a failed background rebuild runs again.
    - ``language_analysis``: detect each new segment's language and index its Snowball
      stems / character bigrams for BM25, and analyze queries the same way (``language``;
      English segments are indexed as before either way). False: today's English-only BM25.
    """

    fusion: FusionConfig = field(default_factory=FusionConfig)
    fts_tokenizer: str = DEFAULT_FTS_TOKENIZER
    drop_stopwords: bool = True
    bm25_max_df: float | None = 0.25
    bm25_max_postings: int | None = None
    bm25_prune_min_segments: int = 20_000
    bm25_in_memory: bool = True
    bm25_memory_postings: int = 2_000_000
    segmentation: SegmentationConfig = field(default_factory=SegmentationConfig)
    candidates: int = 50
    overfetch: int = 4
    max_dense_fetch: int = 500
    exact_search_limit: int = 5000
    embed_batch_size: int = 32
    outbox_batch_size: int = 512
    collection_prefix: str = "aico-sem"
    index_retry_s: float = 30.0
    language_analysis: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "fts_tokenizer", check_tokenizer(self.fts_tokenizer))
        if not isinstance(self.drop_stopwords, bool):
            raise ConfigError("semantic.drop_stopwords must be true or false")
        if not isinstance(self.bm25_in_memory, bool):
            raise ConfigError("semantic.bm25_in_memory must be true or false")
        if not isinstance(self.language_analysis, bool):
            raise ConfigError("semantic.language_analysis must be true or false")
        max_df = self.bm25_max_df
        if max_df is not None and (
            isinstance(max_df, bool) or not isinstance(max_df, int | float) or not 0 < max_df <= 1
        ):
            raise ConfigError("semantic.bm25_max_df must be a number in (0, 1] or null")
        postings = self.bm25_max_postings
        if postings is not None and (
            isinstance(postings, bool) or not isinstance(postings, int) or postings < 1
        ):
            raise ConfigError("semantic.bm25_max_postings must be a positive integer or null")
        for name in (
            "bm25_prune_min_segments",
            "bm25_memory_postings",
            "candidates",
            "overfetch",
            "max_dense_fetch",
            "exact_search_limit",
            "embed_batch_size",
            "outbox_batch_size",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"semantic.{name} must be a positive integer")
        retry = self.index_retry_s
        if isinstance(retry, bool) or not isinstance(retry, int | float) or not 0 <= retry < 1e9:
            raise ConfigError("semantic.index_retry_s must be a number of seconds, 0 or more")
        if not isinstance(self.fusion, FusionConfig):
            raise ConfigError("semantic.fusion must be a FusionConfig")
        if not isinstance(self.segmentation, SegmentationConfig):
            raise ConfigError("semantic.segmentation must be a SegmentationConfig")
        if not isinstance(self.collection_prefix, str) or not _PREFIX_RE.fullmatch(
            self.collection_prefix
        ):
            raise ConfigError("semantic.collection_prefix must be 3-41 characters of a-z 0-9 -")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> SemanticConfig:
        """Build from a flat config table; ``fusion_*`` and ``segment_*`` keys fill the parts.

        Example: ``{"fusion_method": "rrf", "fusion_bm25_weight": 0.5, "segment_unit":
        "turn", "fts_tokenizer": "unicode61"}``. Unknown keys are refused.
        """
        fusion: dict[str, Any] = {}
        segmentation: dict[str, Any] = {}
        direct: dict[str, Any] = {}
        known = {f.name for f in dataclasses.fields(cls)} - {"fusion", "segmentation"}
        fusion_keys = {f.name for f in dataclasses.fields(FusionConfig)}
        segment_keys = {f.name for f in dataclasses.fields(SegmentationConfig)}
        for key, value in values.items():
            if key.startswith("fusion_") and key[7:] in fusion_keys:
                fusion[key[7:]] = value
            elif key.startswith("segment_") and key[8:] in segment_keys:
                segmentation[key[8:]] = value
            elif key in ("fts_roles", "embed_roles"):
                # None or an empty list: every role (a TOML file has no null).
                segmentation[key] = tuple(value) if value else None
            elif key in known:
                direct[key] = value
            else:
                raise ConfigError(f"unknown key memory.semantic.{key}")
        return cls(
            fusion=FusionConfig(**fusion),
            segmentation=SegmentationConfig(**segmentation),
            **direct,
        )
