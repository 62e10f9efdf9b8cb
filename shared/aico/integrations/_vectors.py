"""``VectorCache``: the store's text vectors in process memory, kept current by two counters.

Reading 10k vectors out of libSQL for every search took ~100 ms (the driver hands rows over
one by one); a search over the cache is a matrix product. The cache stays exact without
trusting anything but the database: ``integration_store_state`` counts text rows inserted
and deleted (triggers, in the writing transaction, whichever process writes), and text ids
are AUTOINCREMENT, so

- counters unchanged: nothing changed, the cache is current;
- only ``inserts`` moved: the new rows are exactly those above the largest cached id;
- ``deletes`` moved: the live ids are read (an index-only scan) and the gone ones dropped.

Vectors are copies of what the encrypted database holds, in memory only; nothing here
touches the disk.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from aico.errors import SemanticMemoryError

__all__ = ["Snapshot", "VectorCache"]

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]

_TEXTS = "integration_store_texts"


class Connection(Protocol):
    def fetch_all(self, sql: str, params: Any = ...) -> list[dict[str, Any]]: ...
    def fetch_one(self, sql: str, params: Any = ...) -> dict[str, Any] | None: ...


@dataclass(frozen=True)
class Snapshot:
    """One row per text with a vector of the cache's model: its item, namespace, owner.

    ``scope`` masks are memoized per snapshot: an agent asks the same prefix again and again.
    """

    items: IntArray
    namespaces: list[str]
    users: list[str]
    matrix: FloatArray
    _masks: dict[tuple[str, str | None], npt.NDArray[np.bool_]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def scope(self, prefix: str, user: str | None) -> npt.NDArray[np.bool_]:
        """Rows under the joined namespace ``prefix`` ("" for all) owned by ``user`` (None: any)."""
        key = (prefix, user)
        mask = self._masks.get(key)
        if mask is None:
            if len(self._masks) > 64:
                self._masks.clear()
            names = np.asarray(self.namespaces, dtype=str)
            mask = np.ones(len(self.namespaces), dtype=bool)
            if prefix:
                mask &= (names == prefix) | np.char.startswith(names, prefix + ".")
            if user is not None:
                mask &= np.asarray(self.users, dtype=str) == user
            self._masks[key] = mask
        return mask


class VectorCache:
    """Text ids, their items and vectors of one model (``fingerprint``), synced on demand."""

    def __init__(self, conn: Connection, fingerprint: str, dimension: int) -> None:
        self._conn = conn
        self._fingerprint = fingerprint
        self._dimension = dimension
        self._lock = threading.Lock()
        self._state: tuple[int, int] | None = None
        self._ids: IntArray = np.zeros(0, dtype=np.int64)
        self._snap = Snapshot(np.zeros(0, dtype=np.int64), [], [], np.zeros((0, dimension), "<f4"))

    def snapshot(self) -> Snapshot:
        """The current rows (synced with the database first)."""
        with self._lock:
            self._sync()
            return self._snap

    def _counters(self) -> tuple[int, int]:
        row = self._conn.fetch_one("SELECT inserts, deletes FROM integration_store_state")
        if row is None:
            raise SemanticMemoryError("the store's state row is missing; run 'aico db verify'")
        return int(row["inserts"]), int(row["deletes"])

    def _sync(self) -> None:
        state = self._counters()
        if state == self._state:
            return
        if self._state is not None and state[1] != self._state[1]:
            live = np.fromiter(
                (
                    int(r["id"])
                    for r in self._conn.fetch_all(
                        f"SELECT id FROM {_TEXTS} WHERE vector_fingerprint = ?",
                        (self._fingerprint,),
                    )
                ),
                dtype=np.int64,
            )
            keep = np.isin(self._ids, live)
            old = self._snap
            self._ids = self._ids[keep]
            picked = np.flatnonzero(keep).tolist()
            self._snap = Snapshot(
                old.items[keep],
                [old.namespaces[i] for i in picked],
                [old.users[i] for i in picked],
                old.matrix[keep],
            )
        last = int(self._ids.max()) if len(self._ids) else 0
        rows = self._conn.fetch_all(
            f"SELECT t.id AS id, t.item_id AS item, i.namespace AS ns, i.user_id AS user, "
            f"t.vector AS vector FROM {_TEXTS} AS t "
            "JOIN integration_store_items AS i ON i.id = t.item_id "
            "WHERE t.id > ? AND t.vector_fingerprint = ? ORDER BY t.id",
            (last, self._fingerprint),
        )
        if rows:
            dim = self._dimension
            blob = b"".join(_check(r["vector"], dim) for r in rows)
            added = np.frombuffer(blob, dtype="<f4").reshape(len(rows), dim).astype(np.float32)
            old = self._snap
            self._ids = np.concatenate([self._ids, [int(r["id"]) for r in rows]])
            self._snap = Snapshot(
                np.concatenate([old.items, [int(r["item"]) for r in rows]]).astype(np.int64),
                old.namespaces + [str(r["ns"]) for r in rows],
                old.users + [str(r["user"]) for r in rows],
                np.concatenate([old.matrix, added]),
            )
        self._state = state


def _check(blob: Any, dimension: int) -> bytes:
    if not isinstance(blob, bytes | bytearray | memoryview) or len(blob) != 4 * dimension:
        raise SemanticMemoryError(f"a stored item vector is not {dimension} float32 values")
    return bytes(blob)
