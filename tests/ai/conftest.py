"""Embedding fixtures: the real MiniLM encoders (exported once per test session) and a fake."""

from __future__ import annotations

from pathlib import Path

import pytest

from aico.ai.embeddings import HashingEncoder, OnnxMiniLMEncoder, SentenceTransformerEncoder


@pytest.fixture(scope="session")
def onnx_encoder(embedding_cache_dir: Path) -> OnnxMiniLMEncoder:
    """The default encoder, loaded; the first use per session exports the ONNX file (~10 s)."""
    encoder = OnnxMiniLMEncoder(cache_dir=embedding_cache_dir)
    encoder.load()
    return encoder


@pytest.fixture(scope="session")
def reference_encoder(embedding_cache_dir: Path) -> SentenceTransformerEncoder:
    """sentence-transformers on the same weights (imports torch: slow, use sparingly)."""
    encoder = SentenceTransformerEncoder(cache_dir=embedding_cache_dir)
    encoder.load()
    return encoder


@pytest.fixture
def hashing_encoder() -> HashingEncoder:
    """A fast deterministic fake for tests of code built on embeddings."""
    return HashingEncoder(dimension=384)
