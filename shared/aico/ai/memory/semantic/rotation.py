"""A secret orthogonal matrix applied to every vector before it reaches Chroma.

Why: off-the-shelf embedding inversion models (vec2text and friends) reconstruct text from
raw sentence embeddings. Multiplying by a secret orthogonal ``Q`` keeps every dot product and
cosine (``(Qa)·(Qb) = a·b``), so search is unchanged, but the stored vectors are no longer in
the model's coordinate system and those tools do not apply.

What it is not: encryption. Distances between stored vectors are preserved by design, so an
attacker with the Chroma files can still cluster them, and anyone who learns a handful of
(text, stored vector) pairs can solve for ``Q`` by least squares. The key lives only in the
key hierarchy (``Purpose.VECTOR_ROTATION``); the plaintext of record stays in encrypted libSQL.

``Q`` is the Q factor of a Gaussian matrix drawn from PCG64 seeded with an HMAC of the key and
dimension, sign-fixed so it is unique (a Haar-random rotation). It is computed once per
process per (key, dimension): ~20 ms for 384-d.
"""

from __future__ import annotations

import functools
import hashlib
import hmac

import numpy as np
import numpy.typing as npt

from aico.errors import InvalidInput

__all__ = ["VectorRotation"]

FloatArray = npt.NDArray[np.float32]
_SCHEME = b"aico/semantic/rotation/v1"


@functools.lru_cache(maxsize=4)
def _matrix(key: bytes, dimension: int) -> npt.NDArray[np.float32]:
    seed = hmac.new(key, _SCHEME + b"|dim=" + str(dimension).encode(), hashlib.sha256).digest()
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(int.from_bytes(seed))))
    gaussian = rng.standard_normal((dimension, dimension))
    q, r = np.linalg.qr(gaussian)
    q *= np.sign(np.diag(r))  # make the factorization unique: same key, same matrix
    matrix = np.ascontiguousarray(q.T, dtype=np.float32)
    matrix.setflags(write=False)
    return matrix


class VectorRotation:
    """``rotate(v) = v @ Q.T`` for a secret orthogonal ``Q`` (row vectors in, row vectors out)."""

    def __init__(self, key: bytes, dimension: int) -> None:
        if not isinstance(key, bytes) or len(key) != 32:
            raise InvalidInput("rotation key must be 32 raw bytes")
        if isinstance(dimension, bool) or not isinstance(dimension, int) or dimension < 2:
            raise InvalidInput("rotation dimension must be an integer >= 2")
        self._key = key
        self._dimension = dimension

    @property
    def dimension(self) -> int:
        return self._dimension

    def __repr__(self) -> str:
        return f"VectorRotation(dimension={self._dimension})"

    def rotate(self, vectors: npt.ArrayLike) -> FloatArray:
        """Rotate one ``(dim,)`` vector or a ``(n, dim)`` batch; float32 out."""
        array = np.asarray(vectors, dtype=np.float32)
        if array.shape[-1:] != (self._dimension,) or array.ndim not in (1, 2):
            raise InvalidInput(f"expected vectors of dimension {self._dimension}")
        result: FloatArray = array @ _matrix(self._key, self._dimension)
        return result
