"""The SQL of the mem0 face: cached embeddings of mem0 memories, and their event history.

A mem0 memory is a fact (``FactRepository``); what mem0 keeps beside it lives here, in the
"integrations" tables, keyed by the fact and its user (both ``ON DELETE CASCADE`` from
``users``, the vectors also from ``facts``):

- ``integration_mem0_vectors``: the embedding of a memory's text, valid while the fact's
  ``updated_at`` and the model fingerprint are the ones recorded. A fact changed by anyone
  (the backend's mem0 router, ``aico facts``) is simply embedded again on the next search.
- ``integration_mem0_history``: ``ADD``/``UPDATE``/``DELETE`` with a time. Never text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from aico.data.repositories._base import chunks
from aico.errors import SemanticMemoryError

__all__ = ["Mem0Rows"]

FloatArray = npt.NDArray[np.float32]
EVENTS = ("ADD", "UPDATE", "DELETE")


class Connection(Protocol):
    def execute(self, sql: str, params: Any = ...) -> Any: ...
    def fetch_all(self, sql: str, params: Any = ...) -> list[dict[str, Any]]: ...


class Mem0Rows:
    """Vectors and history of mem0 memories on the core database's connection."""

    def __init__(self, conn: Connection, *, fingerprint: str, dimension: int) -> None:
        self.conn = conn
        self.fingerprint = fingerprint
        self.dimension = dimension

    def vectors(self, stamps: dict[str, float]) -> dict[str, FloatArray]:
        """The current vectors of these facts (``fact_id -> updated_at``); stale ones left out."""
        out: dict[str, FloatArray] = {}
        for chunk in chunks(list(stamps), 500):
            marks = ",".join("?" * len(chunk))
            for row in self.conn.fetch_all(
                "SELECT fact_id, fact_updated_at, vector FROM integration_mem0_vectors "
                f"WHERE vector_fingerprint = ? AND fact_id IN ({marks})",
                (self.fingerprint, *chunk),
            ):
                fact_id = str(row["fact_id"])
                if float(row["fact_updated_at"]) == stamps[fact_id]:
                    out[fact_id] = _vector(row["vector"], self.dimension)
        return out

    def put_vector(self, fact_id: str, user_id: str, updated_at: float, vector: FloatArray) -> None:
        """Store a fact's vector, unless the fact changed or went since it was embedded."""
        self.conn.execute(
            "INSERT INTO integration_mem0_vectors (fact_id, user_id, fact_updated_at, vector, "
            "vector_fingerprint) SELECT ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM facts "
            "WHERE fact_id = ? AND updated_at = ?) ON CONFLICT (fact_id) DO UPDATE SET "
            "fact_updated_at = excluded.fact_updated_at, vector = excluded.vector, "
            "vector_fingerprint = excluded.vector_fingerprint",
            (
                fact_id,
                user_id,
                updated_at,
                np.asarray(vector, dtype="<f4").tobytes(),
                self.fingerprint,
                fact_id,
                updated_at,
            ),
        )

    def record(self, memory_id: str, user_id: str, event: str, when: float) -> None:
        """One history event (the memory's id, never its text)."""
        if event not in EVENTS:
            raise ValueError(f"event must be one of {EVENTS}")
        self.conn.execute(
            "INSERT INTO integration_mem0_history (memory_id, user_id, event, created_at) "
            "VALUES (?, ?, ?, ?)",
            (memory_id, user_id, event, when),
        )

    def history(self, memory_id: str) -> list[dict[str, Any]]:
        return self.conn.fetch_all(
            "SELECT id, memory_id, user_id, event, created_at FROM integration_mem0_history "
            "WHERE memory_id = ? ORDER BY id",
            (memory_id,),
        )

    def forget_all(self, fact_ids: Sequence[str]) -> None:
        """Drop the history of these memories (``reset``); their vectors go with the facts."""
        for chunk in chunks(list(fact_ids), 500):
            marks = ",".join("?" * len(chunk))
            self.conn.execute(
                f"DELETE FROM integration_mem0_history WHERE memory_id IN ({marks})", chunk
            )


def _vector(blob: Any, dimension: int) -> FloatArray:
    if not isinstance(blob, bytes | bytearray | memoryview) or len(blob) != 4 * dimension:
        raise SemanticMemoryError(f"a stored memory vector is not {dimension} float32 values")
    return np.frombuffer(bytes(blob), dtype="<f4").astype(np.float32)
