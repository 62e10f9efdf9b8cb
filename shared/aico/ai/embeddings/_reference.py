"""The reference path: the same MiniLM weights through sentence-transformers and torch.

It costs ~7 s and ~550 MB to import, so it is not the default; it exists to prove the ONNX
path right (at export time and in the tests) and as a fallback where onnxruntime is missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from aico.ai.embeddings._base import (
    FloatArray,
    ShippedModelEncoder,
    check_query,
    check_texts,
    l2_normalize,
)
from aico.ai.embeddings._env import apply_offline_environment
from aico.ai.embeddings._package import (
    MINILM_NAME,
)
from aico.errors import ConfigError


class SentenceTransformerEncoder(ShippedModelEncoder):
    """sentence-transformers on CPU, loaded from the installed package path, strictly offline."""

    def __init__(
        self,
        model_dir: Path | None = None,
        *,
        cache_dir: Path | None = None,
        name: str = MINILM_NAME,
    ) -> None:
        super().__init__(model_dir, cache_dir, name)
        self._model: Any = None

    def load(self) -> None:
        """Import sentence-transformers (slow) and load the model; idempotent."""
        with self._lock:
            if self._model is not None:
                return
            apply_offline_environment()
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise ConfigError(
                    "the reference encoder needs sentence-transformers: "
                    "pip install sentence-transformers"
                ) from exc
            model = SentenceTransformer(
                str(self._spec.model_dir), device="cpu", local_files_only=True
            )
            model.max_seq_length = self._spec.max_seq_length
            self._model = model

    def encode(self, texts: Sequence[str], *, batch_size: int = 32) -> FloatArray:
        items = check_texts(texts, batch_size)
        if not items:
            return np.zeros((0, self.dimension), dtype=np.float32)
        self.load()
        vectors = self._model.encode(
            items,
            batch_size=batch_size,
            convert_to_numpy=True,
            normalize_embeddings=False,
            show_progress_bar=False,
        )
        return l2_normalize(np.asarray(vectors, dtype=np.float32))

    def encode_query(self, text: str) -> FloatArray:
        vector: FloatArray = self.encode([check_query(text)])[0]
        return vector
