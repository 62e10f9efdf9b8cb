"""``StoreItems``: the LangGraph store's rows in the core database (no LangGraph import).

The SQL half of ``AicoStore``: items, their indexed texts (FTS5 rows and vectors), TTL,
namespace listing and the hybrid ranking. The ``langgraph`` module turns LangGraph ops
into calls here and results back into LangGraph items; this module knows nothing of ops.

Search is hybrid like ``SemanticMemoryStore.search``: BM25 over the FTS5 index and the
exact cosine over the stored vectors, fused by ``aico.ai.memory.semantic.fusion.fuse``
(so a lexical match never scores like a non-match), best text of an item standing for the
item. Both halves run over the candidates in SQL (namespace prefix, filter, expiry), so a
filter never drops a match after the ranking. Items with nothing indexed come last, without
a score, as ``InMemoryStore`` returns them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from aico.ai.memory.semantic.fts import match_expression, query_terms
from aico.ai.memory.semantic.fusion import FusionConfig, fuse
from aico.data.repositories._base import chunks
from aico.errors import InvalidInput, NotFound
from aico.integrations._filters import compile_filter
from aico.integrations._vectors import VectorCache

__all__ = [
    "IndexedText",
    "ItemPut",
    "ItemQuery",
    "StoreItems",
    "StoredItem",
    "namespace_text",
]

FloatArray = npt.NDArray[np.float32]

ITEMS = "integration_store_items"
TEXTS = "integration_store_texts"
FTS = "integration_store_fts"
_COLUMNS = "i.id, i.namespace, i.key, i.value, i.created_at, i.updated_at"
_IN = 500


class Connection(Protocol):
    """The part of ``EncryptedLibSQLConnection`` used here."""

    def execute(self, sql: str, params: Any = ...) -> Any: ...
    def fetch_all(self, sql: str, params: Any = ...) -> list[dict[str, Any]]: ...
    def fetch_one(self, sql: str, params: Any = ...) -> dict[str, Any] | None: ...
    def fetch_value(self, sql: str, params: Any = ...) -> Any: ...
    def transaction(self) -> Any: ...


def namespace_text(namespace: Sequence[str]) -> str:
    """Labels joined with ``.``: LangGraph forbids ``.`` in a label, so this is one-to-one."""
    return ".".join(namespace)


def _namespace(text: str) -> tuple[str, ...]:
    return tuple(text.split("."))


@dataclass(frozen=True)
class IndexedText:
    """One indexed text of an item: ``lexical`` goes to BM25, ``dense`` is embedded."""

    field: str
    lexical: str
    dense: str


@dataclass(frozen=True)
class ItemPut:
    """A write: ``value`` (JSON text) None deletes. ``index_fields`` None: not indexed."""

    namespace: tuple[str, ...]
    key: str
    user_id: str
    value: str | None
    index_fields: tuple[str, ...] | None = None
    texts: tuple[IndexedText, ...] = ()
    ttl_minutes: float | None = None


@dataclass(frozen=True)
class ItemQuery:
    """A search over one namespace prefix; ``text`` None lists by recency instead."""

    prefix: tuple[str, ...]
    filter: Mapping[str, Any] | None
    limit: int
    offset: int
    text: str | None = None
    vector: FloatArray | None = None
    user_id: str | None = None


@dataclass(frozen=True)
class StoredItem:
    """An item as read; ``score`` is the fused score in ``[0, 1]`` of a ranked search."""

    id: int
    namespace: tuple[str, ...]
    key: str
    value: dict[str, Any]
    created_at: float
    updated_at: float
    score: float | None = None

    def __repr__(self) -> str:
        # The value and key are user content: never printed by accident.
        return f"StoredItem(id={self.id}, depth={len(self.namespace)}, score={self.score})"


def _item(row: Mapping[str, Any], score: float | None = None) -> StoredItem:
    value = json.loads(row["value"])
    return StoredItem(
        id=int(row["id"]),
        namespace=_namespace(str(row["namespace"])),
        key=str(row["key"]),
        value=value if isinstance(value, dict) else {},
        created_at=float(row["created_at"]),
        updated_at=float(row["updated_at"]),
        score=score,
    )


class StoreItems:
    """Reads and writes of the store's tables; takes the core database's connection.

    ``fingerprint`` and ``dimension`` describe the encoder whose vectors are used: rows
    made by another model are left out of the dense half until ``stale`` finds them and
    the caller re-embeds them (``AicoStore`` does on open).
    """

    def __init__(
        self,
        conn: Connection,
        *,
        fingerprint: str,
        dimension: int,
        fusion: FusionConfig | None = None,
        candidates: int = 50,
    ) -> None:
        self.conn = conn
        self.fingerprint = fingerprint
        self.dimension = dimension
        self.fusion = fusion or FusionConfig()
        self.candidates = candidates
        self._vectors = VectorCache(conn, fingerprint, dimension)

    # -- reading --------------------------------------------------------------------

    def _live(self, now: float | None) -> tuple[str, list[Any]]:
        if now is None:
            return "1", []
        return "(i.expires_at IS NULL OR i.expires_at >= ?)", [now]

    def get(
        self, namespace: tuple[str, ...], keys: Sequence[str], *, now: float | None
    ) -> dict[str, StoredItem]:
        """The items of ``namespace`` with these keys; ``now`` set: unexpired ones only."""
        live, live_params = self._live(now)
        found: dict[str, StoredItem] = {}
        for chunk in chunks(list(dict.fromkeys(keys)), _IN):
            marks = ",".join("?" * len(chunk))
            for row in self.conn.fetch_all(
                f"SELECT {_COLUMNS} FROM {ITEMS} AS i WHERE i.namespace = ? "
                f"AND i.key IN ({marks}) AND {live}",
                (namespace_text(namespace), *chunk, *live_params),
            ):
                found[str(row["key"])] = _item(row)
        return found

    def _where(self, q: ItemQuery, now: float | None) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if q.prefix:
            text = namespace_text(q.prefix)
            # A prefix is the namespace itself or a range: '.' + 1 is '/' in every encoding.
            clauses.append("(i.namespace = ? OR (i.namespace >= ? AND i.namespace < ?))")
            params += [text, text + ".", text + "/"]
        if q.user_id is not None:
            clauses.append("i.user_id = ?")
            params.append(q.user_id)
        live, live_params = self._live(now)
        flt, flt_params = compile_filter(q.filter, "i.value")
        clauses += [live, flt]
        params += live_params + flt_params
        return " AND ".join(clauses), params

    def search(self, q: ItemQuery, *, now: float | None) -> list[StoredItem]:
        """One page of ``q``: ranked by hybrid relevance with a query, else newest first."""
        where, params = self._where(q, now)
        if not q.text:
            rows = self.conn.fetch_all(
                f"SELECT {_COLUMNS} FROM {ITEMS} AS i WHERE {where} "
                "ORDER BY i.updated_at DESC, i.id DESC LIMIT ? OFFSET ?",
                (*params, q.limit, q.offset),
            )
            return [_item(r) for r in rows]
        want = q.offset + q.limit
        depth = max(self.candidates, 4 * want)
        bm25 = self._bm25(q.text, where, params, depth)
        dense, fill = self._dense(q, where, params, now, depth)
        fused = fuse(bm25, dense, self.fusion, dense_fill=fill(key for key, _ in bm25))
        ranked: list[tuple[int, float | None]] = [(f.key, f.score) for f in fused]
        if len(ranked) < want:
            seen = {key for key, _ in ranked}
            ranked += [(i, None) for i in self._unranked(where, params, seen, want - len(ranked))]
        page = ranked[q.offset : want]
        found = self._rows([key for key, _ in page])
        return [_item(found[key], score) for key, score in page if key in found]

    def _bm25(self, text: str, where: str, params: list[Any], n: int) -> list[tuple[int, float]]:
        expression = match_expression(query_terms(text))
        if expression is None:
            return []
        # CROSS JOIN keeps FTS5 the outer loop (see SemanticMemoryStore._bm25).
        rows = self.conn.fetch_all(
            f"SELECT t.item_id AS item, bm25({FTS}) AS score FROM {FTS} "
            f"CROSS JOIN {TEXTS} AS t ON t.id = {FTS}.rowid "
            f"CROSS JOIN {ITEMS} AS i ON i.id = t.item_id "
            f"WHERE {FTS} MATCH ? AND {where} ORDER BY score LIMIT ?",
            (f"{{body}} : ({expression})", *params, n),
        )
        best: dict[int, float] = {}
        for row in rows:  # best text of each item, lower bm25() is better
            item = int(row["item"])
            score = -float(row["score"])
            if item not in best or score > best[item]:
                best[item] = score
        return sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))

    def _dense(
        self, q: ItemQuery, where: str, params: list[Any], now: float | None, n: int
    ) -> tuple[list[tuple[int, float]], Callable[[Iterable[int]], dict[int, float]]]:
        """Top ``n`` items by exact cosine of their best text, and the cosine of any others.

        Over the cached vectors (``VectorCache``). Candidates come from SQL when a filter
        or expiry narrows them; a namespace prefix and an owner are matched in memory.
        """
        snap = self._vectors.snapshot()
        none: dict[int, float] = {}
        if q.vector is None or not len(snap.items):
            return [], lambda keys: none
        if q.filter or now is not None:
            ids = self.conn.fetch_all(f"SELECT i.id AS id FROM {ITEMS} AS i WHERE {where}", params)
            mask = np.isin(snap.items, np.fromiter((int(r["id"]) for r in ids), dtype=np.int64))
        else:
            mask = snap.scope(namespace_text(q.prefix), q.user_id)
        if not mask.any():
            return [], lambda keys: none
        # Score every row, then keep the candidates: cheaper than copying their rows out.
        scores = (snap.matrix @ np.asarray(q.vector, dtype=np.float32))[mask]
        owners = snap.items[mask]
        order = np.argsort(-scores, kind="stable")
        # The first occurrence of each item in descending order is its best text.
        unique, first = np.unique(owners[order], return_index=True)
        best = scores[order[first]]
        top = np.argsort(-best, kind="stable")[:n]
        ranked = list(zip(unique[top].tolist(), best[top].astype(float).tolist(), strict=True))

        def fill(keys: Iterable[int]) -> dict[int, float]:
            wanted = np.fromiter(keys, dtype=np.int64)
            at = np.searchsorted(unique, wanted)
            at = np.minimum(at, len(unique) - 1)
            hit = unique[at] == wanted
            return dict(
                zip(wanted[hit].tolist(), best[at[hit]].astype(float).tolist(), strict=True)
            )

        return ranked, fill

    def _unranked(self, where: str, params: list[Any], seen: set[int], n: int) -> list[int]:
        """Candidates neither half ranked (nothing indexed), newest first, up to ``n``."""
        rows = self.conn.fetch_all(
            f"SELECT i.id AS id FROM {ITEMS} AS i WHERE {where} AND NOT EXISTS ("
            f"SELECT 1 FROM {TEXTS} AS t WHERE t.item_id = i.id "
            "AND t.vector_fingerprint = ?) "
            "ORDER BY i.updated_at DESC, i.id DESC LIMIT ?",
            (*params, self.fingerprint, n + len(seen)),
        )
        return [int(r["id"]) for r in rows if int(r["id"]) not in seen][:n]

    def _rows(self, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        out: dict[int, dict[str, Any]] = {}
        for chunk in chunks(list(ids), _IN):
            marks = ",".join("?" * len(chunk))
            for row in self.conn.fetch_all(
                f"SELECT {_COLUMNS} FROM {ITEMS} AS i WHERE i.id IN ({marks})", tuple(chunk)
            ):
                out[int(row["id"])] = row
        return out

    def namespaces(self, prefix: tuple[str, ...], *, now: float | None) -> list[tuple[str, ...]]:
        """Every distinct namespace under a literal ``prefix`` (no wildcard), unsorted."""
        live, live_params = self._live(now)
        if prefix:
            text = namespace_text(prefix)
            rows = self.conn.fetch_all(
                f"SELECT DISTINCT i.namespace AS ns FROM {ITEMS} AS i WHERE "
                f"(i.namespace = ? OR (i.namespace >= ? AND i.namespace < ?)) AND {live}",
                (text, text + ".", text + "/", *live_params),
            )
        else:
            rows = self.conn.fetch_all(
                f"SELECT DISTINCT i.namespace AS ns FROM {ITEMS} AS i WHERE {live}",
                tuple(live_params),
            )
        return [_namespace(str(r["ns"])) for r in rows]

    # -- writing --------------------------------------------------------------------

    def write(
        self,
        puts: Sequence[ItemPut],
        vectors: Sequence[FloatArray | None],
        *,
        refresh: Iterable[int] = (),
        now: float,
        create_users: bool,
    ) -> None:
        """Apply puts (``vectors[i]`` for ``puts[i].texts``) and TTL refreshes, atomically.

        When a put deleted or replaced indexed text, the FTS5 index is optimized in the same
        transaction: a secure delete removes the rows, but a term can stay in the index's
        b-tree keys until its segments are rewritten, and a deleted item's words must not.
        """
        refresh_ids = list(dict.fromkeys(refresh))
        with self.conn.transaction():
            if refresh_ids:
                self._refresh(refresh_ids, now)
            removed = 0
            for put, vecs in zip(puts, vectors, strict=True):
                if put.value is None:
                    removed += self._texts_of(put.namespace, put.key)
                    self.conn.execute(
                        f"DELETE FROM {ITEMS} WHERE namespace = ? AND key = ?",
                        (namespace_text(put.namespace), put.key),
                    )
                    continue
                self._ensure_user(put.user_id, create_users)
                removed += self._upsert(put, vecs, now)
            if removed:
                self._optimize()

    def _texts_of(self, namespace: tuple[str, ...], key: str) -> int:
        return int(
            self.conn.fetch_value(
                f"SELECT count(*) FROM {TEXTS} AS t JOIN {ITEMS} AS i ON i.id = t.item_id "
                "WHERE i.namespace = ? AND i.key = ?",
                (namespace_text(namespace), key),
            )
            or 0
        )

    def _optimize(self) -> None:
        self.conn.execute(f"INSERT INTO {FTS} ({FTS}) VALUES ('optimize')")

    def _refresh(self, ids: list[int], now: float) -> None:
        for chunk in chunks(ids, _IN):
            marks = ",".join("?" * len(chunk))
            self.conn.execute(
                f"UPDATE {ITEMS} SET expires_at = ? + ttl_minutes * 60.0 "
                f"WHERE ttl_minutes IS NOT NULL AND id IN ({marks})",
                (now, *chunk),
            )

    def _ensure_user(self, user_id: str, create: bool) -> None:
        if create:
            self.conn.execute(
                "INSERT OR IGNORE INTO users (user_id, display_name) VALUES (?, ?)",
                (user_id, user_id[:200]),
            )
        elif self.conn.fetch_value("SELECT 1 FROM users WHERE user_id = ?", (user_id,)) is None:
            raise NotFound("no user with this user_id (the namespace names one)")

    def _upsert(self, put: ItemPut, vectors: FloatArray | None, now: float) -> int:
        """Insert or replace one item; returns how many old texts it replaced."""
        ns = namespace_text(put.namespace)
        expires = None if put.ttl_minutes is None else now + put.ttl_minutes * 60.0
        fields = None if put.index_fields is None else json.dumps(list(put.index_fields))
        self.conn.execute(
            f"INSERT INTO {ITEMS} (user_id, namespace, key, value, index_fields, created_at, "
            "updated_at, ttl_minutes, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (namespace, key) DO UPDATE SET user_id = excluded.user_id, "
            "value = excluded.value, index_fields = excluded.index_fields, "
            "updated_at = excluded.updated_at, ttl_minutes = excluded.ttl_minutes, "
            "expires_at = excluded.expires_at",
            (put.user_id, ns, put.key, put.value, fields, now, now, put.ttl_minutes, expires),
        )
        item_id = int(
            self.conn.fetch_value(
                f"SELECT id FROM {ITEMS} WHERE namespace = ? AND key = ?", (ns, put.key)
            )
        )
        old = self.conn.execute(f"DELETE FROM {TEXTS} WHERE item_id = ?", (item_id,))
        self._insert_texts(item_id, put.texts, vectors)
        return max(int(old.rowcount), 0)

    def _insert_texts(
        self, item_id: int, texts: Sequence[IndexedText], vectors: FloatArray | None
    ) -> None:
        if vectors is not None and len(vectors) != len(texts):
            raise InvalidInput("one vector per indexed text")
        for index, text in enumerate(texts):
            blob = None if vectors is None else np.asarray(vectors[index], "<f4").tobytes()
            cursor = self.conn.execute(
                f"INSERT INTO {TEXTS} (item_id, field, vector, vector_fingerprint) "
                "VALUES (?, ?, ?, ?)",
                (item_id, text.field, blob, None if blob is None else self.fingerprint),
            )
            self.conn.execute(
                f"INSERT INTO {FTS} (rowid, body) VALUES (?, ?)", (cursor.lastrowid, text.lexical)
            )

    def sweep(self, now: float) -> int:
        """Delete every item whose TTL ran out (texts, FTS rows and vectors go with it)."""
        with self.conn.transaction():
            result = self.conn.execute(
                f"DELETE FROM {ITEMS} WHERE expires_at IS NOT NULL AND expires_at < ?", (now,)
            )
            deleted = max(int(result.rowcount), 0)
            if deleted:
                self._optimize()
        return deleted

    # -- re-embedding ---------------------------------------------------------------

    def stale(self, after: int, limit: int) -> list[tuple[int, str, list[str]]]:
        """Indexed items (id above ``after``) to embed again: (id, value, paths).

        Those with a text of another model, and those with no text at all (rows copied in
        without their derived index, e.g. by an import); ascending ids, so a caller that
        pages by the last id sees each once.
        """
        rows = self.conn.fetch_all(
            f"SELECT i.id AS id, i.value AS value, i.index_fields AS fields FROM {ITEMS} AS i "
            "WHERE i.id > ? AND i.index_fields IS NOT NULL AND ("
            f"EXISTS (SELECT 1 FROM {TEXTS} AS t WHERE t.item_id = i.id "
            "AND t.vector_fingerprint IS NOT ?) "
            f"OR NOT EXISTS (SELECT 1 FROM {TEXTS} AS t WHERE t.item_id = i.id)) "
            "ORDER BY i.id LIMIT ?",
            (after, self.fingerprint, limit),
        )
        return [(int(r["id"]), str(r["value"]), list(json.loads(r["fields"]))) for r in rows]

    def reindex(
        self, item_id: int, texts: Sequence[IndexedText], vectors: FloatArray | None
    ) -> None:
        """Replace one item's texts and vectors (after a model change)."""
        with self.conn.transaction():
            self.conn.execute(f"DELETE FROM {TEXTS} WHERE item_id = ?", (item_id,))
            self._insert_texts(item_id, texts, vectors)

    def optimize(self) -> None:
        """Rewrite the FTS5 index (after re-embedding replaced every text)."""
        with self.conn.transaction():
            self._optimize()
