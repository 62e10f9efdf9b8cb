"""onnxruntime + tokenizers inference with sentence-transformers' exact preprocessing.

Shared by the encoder and by the export-time verification, so what is verified is exactly what
runs. Imports only onnxruntime, tokenizers and numpy: never torch.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from aico.ai.embeddings._base import FloatArray, l2_normalize, mean_pool
from aico.ai.embeddings._env import apply_offline_environment
from aico.errors import ConfigError, SemanticMemoryError

INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT_NAME = "last_hidden_state"
DEFAULT_MAX_BATCH_TOKENS = 1024

IntArray = npt.NDArray[np.intp]


class OnnxRunner:
    """A loaded tokenizer + inference session; ``encode`` does tokenize, run, pool, normalize."""

    def __init__(
        self,
        onnx_path: Path,
        tokenizer_path: Path,
        *,
        dimension: int,
        max_seq_length: int,
        threads: int,
        max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS,
    ) -> None:
        apply_offline_environment()
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise ConfigError(
                f"the ONNX encoder needs the '{exc.name}' package: pip install {exc.name}"
            ) from exc
        tokenizer = Tokenizer.from_file(str(tokenizer_path))
        # Pad per batch ourselves (the shipped tokenizer.json pads everything to 128) and
        # truncate at the sentence-transformers max_seq_length, special tokens included.
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=max_seq_length)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        # Spinning worker threads burn a shared core between calls; a companion idles a lot.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._dimension = dimension
        self._max_batch_tokens = max_batch_tokens
        self._tokenizer: Any = tokenizer
        self._session: Any = ort.InferenceSession(
            str(onnx_path), options, providers=["CPUExecutionProvider"]
        )

    def _batches(self, lengths: npt.NDArray[np.int64], batch_size: int) -> list[IntArray]:
        """Split length-sorted rows into batches of at most ``batch_size`` rows and, past one
        row, at most ``max_batch_tokens`` padded tokens: attention memory grows with width²,
        so 32 texts of 256 tokens would push RSS past 700 MB."""
        order = np.argsort(-lengths, kind="stable")
        batches: list[IntArray] = []
        start = 0
        while start < len(order):
            width = int(lengths[order[start]])
            rows = max(1, min(batch_size, self._max_batch_tokens // max(width, 1)))
            batches.append(order[start : start + rows])
            start += rows
        return batches

    def encode(
        self,
        texts: list[str],
        batch_size: int,
        *,
        before_run: Callable[[], None] | None = None,
    ) -> FloatArray:
        """Embed ``texts``; batches are built from length-sorted texts to minimize padding.

        ``before_run`` is called right before the first inference call, which releases the
        GIL: a caller waiting for it knows the model is running (see ``start_query``).
        """
        encodings = self._tokenizer.encode_batch(texts)
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(texts))
        out = np.zeros((len(texts), self._dimension), dtype=np.float32)
        for rows in self._batches(lengths, batch_size):
            width = int(lengths[rows].max())
            ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros_like(ids)
            types = np.zeros_like(ids)
            for slot, index in enumerate(rows):
                encoding = encodings[index]
                size = len(encoding.ids)
                ids[slot, :size] = encoding.ids
                mask[slot, :size] = 1
                types[slot, :size] = encoding.type_ids
            feeds = dict(zip(INPUT_NAMES, (ids, mask, types), strict=True))
            if before_run is not None:
                before_run()
                before_run = None
            try:
                hidden = self._session.run([OUTPUT_NAME], feeds)[0]
            except Exception as exc:  # onnxruntime raises its own RuntimeError subclasses
                raise SemanticMemoryError("onnxruntime inference failed") from exc
            if hidden.shape[-1] != self._dimension:
                raise SemanticMemoryError(
                    f"the ONNX model returned {hidden.shape[-1]}-d states, "
                    f"expected {self._dimension}"
                )
            out[rows] = l2_normalize(mean_pool(hidden, mask))
        return out
