"""Environment the embedding libraries read at import time.

Hugging Face libraries try the network unless told otherwise, and tokenizers/OpenBLAS spin
extra threads that fight onnxruntime for the two cores a companion box usually has. Values
are only defaults (``setdefault``), so an operator can still override them.
"""

from __future__ import annotations

import os

OFFLINE_ENVIRONMENT: dict[str, str] = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "OPENBLAS_NUM_THREADS": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
}


def apply_offline_environment() -> None:
    """Set offline/threading defaults; must run before torch, transformers, tokenizers load."""
    for key, value in OFFLINE_ENVIRONMENT.items():
        os.environ.setdefault(key, value)
