"""The ``Encoder`` protocol and the numeric helpers every encoder shares.

The protocol is deliberately tiny so another model can be plugged in: the semantic store only
needs a name, a dimension, a fingerprint to record next to the vectors, and two encode calls.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from aico.ai.embeddings._package import (
    default_cache_dir,
    model_package_dir,
    read_model_spec,
    source_fingerprint,
)
from aico.errors import InvalidInput

FloatArray = npt.NDArray[np.float32]


@runtime_checkable
class Encoder(Protocol):
    """Turns text into L2-normalized float32 vectors.

    ``fingerprint`` identifies the weights, pooling and normalization: two encoders with the
    same fingerprint produce interchangeable vectors, so a store records it and refuses to mix.
    """

    @property
    def name(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    @property
    def fingerprint(self) -> str: ...

    def encode(self, texts: Sequence[str], *, batch_size: int = 32) -> FloatArray:
        """Embed ``texts`` into an ``(len(texts), dimension)`` float32 array, rows L2-normalized."""
        ...

    def encode_query(self, text: str) -> FloatArray:
        """Embed one text into a ``(dimension,)`` float32 vector."""
        ...


def check_texts(texts: Sequence[str], batch_size: int) -> list[str]:
    """Validate encode arguments; messages never echo the text (it is user content)."""
    if isinstance(texts, str | bytes):
        raise InvalidInput("encode() takes a sequence of strings, not a single string")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidInput("batch_size must be a positive integer")
    items = list(texts)
    for index, item in enumerate(items):
        if not isinstance(item, str):
            raise InvalidInput(f"texts[{index}] is a {type(item).__name__}, expected str")
    return items


def check_query(text: str) -> str:
    """Validate an ``encode_query`` argument without echoing it."""
    if not isinstance(text, str):
        raise InvalidInput(f"encode_query() takes a str, got {type(text).__name__}")
    return text


def l2_normalize(vectors: FloatArray) -> FloatArray:
    """Row-normalize like ``torch.nn.functional.normalize`` (eps 1e-12), so zero rows stay zero."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    result: FloatArray = (vectors / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)
    return result


def mean_pool(hidden: FloatArray, mask: npt.NDArray[np.int64]) -> FloatArray:
    """Masked mean over tokens, exactly sentence-transformers' ``Pooling(mode='mean')``."""
    weights = mask[:, :, None].astype(np.float32)
    summed = (hidden * weights).sum(axis=1)
    counts = np.maximum(weights.sum(axis=1), 1e-9)
    result: FloatArray = (summed / counts).astype(np.float32, copy=False)
    return result


class ShippedModelEncoder:
    """What every encoder of a model shipped in a package shares: its spec and identity.

    Both MiniLM paths (ONNX and sentence-transformers) read the same model directory and
    report the same fingerprint, since their vectors are interchangeable.
    """

    def __init__(self, model_dir: Path | None, cache_dir: Path | None, name: str) -> None:
        self._spec = read_model_spec(model_dir if model_dir is not None else model_package_dir())
        self._cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self._name = name
        self._fingerprint: str | None = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self._name

    @property
    def dimension(self) -> int:
        return self._spec.dimension

    @property
    def fingerprint(self) -> str:
        """sha256 over the model files, pooling, normalization, length and dimension."""
        if self._fingerprint is None:
            self._fingerprint = source_fingerprint(self._spec, self._cache_dir)
        return self._fingerprint

    @property
    def model_dir(self) -> Path:
        return self._spec.model_dir
