"""A deterministic fake encoder for fast tests of the modules built on embeddings.

Hashed word unigrams and bigrams (signed feature hashing) give vectors where texts sharing
words are close, which is enough to exercise ranking, fusion and storage code without loading
a model. Never use it for real memories: it has no notion of meaning.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Sequence

import numpy as np

from aico.ai.embeddings._base import FloatArray, check_query, check_texts, l2_normalize
from aico.errors import InvalidInput

_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)
_SCHEME = "aico-hashing-encoder/1"


class HashingEncoder:
    """Feature-hashing encoder: same text, same vector, in every process and on every machine."""

    def __init__(self, dimension: int = 384, *, seed: int = 0) -> None:
        if isinstance(dimension, bool) or not isinstance(dimension, int) or dimension < 2:
            raise InvalidInput("dimension must be an integer >= 2")
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**64:
            raise InvalidInput("seed must be an integer in [0, 2**64)")
        self._dimension = dimension
        self._seed = seed
        blob = f"{_SCHEME}|dim={dimension}|seed={seed}".encode()
        self._fingerprint = hashlib.sha256(blob).hexdigest()

    @property
    def name(self) -> str:
        return f"aico/hashing-{self._dimension}"

    @property
    def dimension(self) -> int:
        return self._dimension

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def _features(self, text: str) -> list[str]:
        tokens = [token.lower() for token in _TOKEN.findall(text)]
        if not tokens:
            return ["<empty>"]
        features = [f"u:{token}" for token in tokens]
        features += [f"b:{a} {b}" for a, b in itertools.pairwise(tokens)]
        return features

    def _embed(self, text: str) -> FloatArray:
        vector = np.zeros(self._dimension, dtype=np.float32)
        for feature in self._features(text):
            digest = hashlib.blake2b(
                feature.encode("utf-8"), digest_size=8, salt=self._seed.to_bytes(8, "little")
            ).digest()
            value = int.from_bytes(digest, "little")
            sign = 1.0 if value >> 63 else -1.0
            vector[value % self._dimension] += sign
        if not vector.any():  # features cancelled out: keep the row a unit vector anyway
            vector[0] = 1.0
        return vector

    def encode(self, texts: Sequence[str], *, batch_size: int = 32) -> FloatArray:
        items = check_texts(texts, batch_size)
        if not items:
            return np.zeros((0, self._dimension), dtype=np.float32)
        return l2_normalize(np.stack([self._embed(text) for text in items]))

    def encode_query(self, text: str) -> FloatArray:
        vector: FloatArray = self.encode([check_query(text)])[0]
        return vector
