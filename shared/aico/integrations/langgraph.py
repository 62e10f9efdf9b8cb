"""``AicoStore``: a LangGraph ``BaseStore`` whose items live encrypted in aico's core database.

Needs the ``langgraph`` extra (``pip install aico[langgraph]``); nothing else in aico imports
this module. ``batch`` is the one interface (``abatch`` runs it on a worker thread): every
convenience of ``BaseStore`` (``get``, ``put``, ``delete``, ``search``, ``list_namespaces``
and their async twins) goes through it, as LangGraph intends.

- **Storage.** Values are JSON documents in ``integration_store_items``, in the encrypted
  core database; nothing is written anywhere else (no JSON file, no log with content).
- **Users.** Every namespace belongs to an aico user: the label at ``user_position``
  (default 0: ``(user_id, "memories")``), or one fixed ``user_id`` for every namespace.
  Items reference ``users`` with ``ON DELETE CASCADE``, so ``MemoryManager.forget(user)``
  removes them with everything else; a user the namespace names is created on first write
  unless ``create_users=False`` (then ``NotFound``).
- **Search.** ``index`` says which fields are indexed (LangGraph's ``IndexConfig``
  ``fields``, default ``["$"]``, the whole document); ``put(..., index=False | [paths])``
  overrides it per item. Indexed texts go to FTS5 (BM25) and are embedded by aico's
  configured model (no ``embed`` function: nothing leaves the machine), and
  ``search(query=...)`` fuses both like aico's own memory search. ``SearchItem.score`` is
  the fused score in ``[0, 1]``. Store items are not in ``MemoryManager.search``: they are
  in their own tables, found only through this store.
- **TTL.** ``supports_ttl = True``; ``TTLConfig`` ``default_ttl`` (minutes),
  ``refresh_on_read``, ``sweep_interval_minutes`` (a sweeper thread; ``sweep_ttl()`` by
  hand) and ``omit_expired`` are honoured.

Errors are ``aico.errors`` types; a bad namespace is ``InvalidNamespace``, which is also
LangGraph's ``InvalidNamespaceError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from langgraph.store.base import (
    BaseStore,
    GetOp,
    IndexConfig,
    InvalidNamespaceError,
    Item,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    TTLConfig,
    get_text_at_path,
    tokenize_path,
)

from aico.ai.embeddings import Encoder
from aico.ai.memory.manager import MemoryManager
from aico.config import Config
from aico.errors import InvalidInput, ReadOnly
from aico.integrations._items import IndexedText, ItemPut, ItemQuery, StoredItem, StoreItems
from aico.integrations._setup import ensure_schema
from aico.validation import MAX_QUERY, check_id, check_json, check_text

__all__ = ["AicoStore", "InvalidNamespace"]

_MAX_LABEL = 256
_MAX_DEPTH = 32
_MAX_KEY = 1024
_MAX_TEXTS = 1000
_MAX_LIMIT = 10_000
_MAX_TTL_MINUTES = 100 * 365 * 24 * 60.0
_REINDEX_BATCH = 256


class InvalidNamespace(InvalidInput, InvalidNamespaceError):
    """A namespace LangGraph or this store cannot use (both error types catch it)."""


def _labels(namespace: object, what: str) -> tuple[str, ...]:
    if not isinstance(namespace, tuple | list):
        raise InvalidNamespace(f"{what} must be a tuple of strings")
    labels = tuple(namespace)
    if len(labels) > _MAX_DEPTH:
        raise InvalidNamespace(f"{what} has more than {_MAX_DEPTH} labels")
    for label in labels:
        if not isinstance(label, str) or not label:
            raise InvalidNamespace(f"{what} labels must be non-empty strings")
        if "." in label:
            raise InvalidNamespace(f"{what} labels cannot contain periods ('.')")
        try:
            check_text(label, f"{what} label", limit=_MAX_LABEL)
        except InvalidInput as exc:
            raise InvalidNamespace(str(exc)) from None
    return labels


def _leaves(value: Any) -> Iterator[str]:
    """The scalar leaves of a JSON value: what BM25 indexes for ``$`` (not the keys)."""
    if isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    elif isinstance(value, str):
        yield value
    elif value is not None and not isinstance(value, bool):
        yield str(value)


def _strings(value: Any) -> Iterator[str]:
    """Every string of a JSON value, keys included."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, str):
        yield value


def _index_texts(value: dict[str, Any], fields: Sequence[str]) -> tuple[IndexedText, ...]:
    """LangGraph's texts for ``fields`` (``get_text_at_path``), named like its stores do."""
    out: list[IndexedText] = []
    for path in fields:
        if path == "$":
            dense = get_text_at_path(value, "$")[0]
            out.append(IndexedText("$", "\n".join(_leaves(value)), dense))
            continue
        texts = get_text_at_path(value, tokenize_path(path))
        for index, text in enumerate(texts):
            name = f"{path}.{index}" if len(texts) > 1 else path
            out.append(IndexedText(name, text, text))
    if len(out) > _MAX_TEXTS:
        raise InvalidInput(f"an item may have at most {_MAX_TEXTS} indexed texts")
    return tuple(out)


def _when(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC)


def _matches(condition: MatchCondition, namespace: tuple[str, ...]) -> bool:
    """LangGraph's rule: ``*`` is any one label; prefix and suffix align on labels."""
    path = tuple(condition.path)
    if len(namespace) < len(path):
        return False
    pairs = (
        zip(namespace, path, strict=False)
        if condition.match_type == "prefix"
        else zip(reversed(namespace), reversed(path), strict=False)
    )
    return all(p == "*" or n == p for n, p in pairs)


class AicoStore(BaseStore):
    """LangGraph's long-term memory store over an open ``MemoryManager`` (see the module).

    The manager stays the caller's (``close`` here stops the TTL sweeper only);
    ``AicoStore.open`` opens and closes one for you. ``clock`` (unix seconds) exists for
    tests of TTL; ``encoder`` defaults to the manager's.
    """

    supports_ttl = True

    def __init__(
        self,
        memory: MemoryManager,
        *,
        user_position: int = 0,
        user_id: str | None = None,
        index: IndexConfig | Literal[False] | None = None,
        ttl: TTLConfig | None = None,
        create_users: bool = True,
        encoder: Encoder | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if isinstance(user_position, bool) or not isinstance(user_position, int):
            raise InvalidInput("user_position must be a label position (0, 1, ...)")
        if user_position < 0 or user_position >= _MAX_DEPTH:
            raise InvalidInput(f"user_position must be between 0 and {_MAX_DEPTH - 1}")
        self._user_id = None if user_id is None else check_id(user_id, "user_id")
        self._position = user_position
        self.memory = memory
        self.encoder = encoder or memory.semantic.encoder
        self._fields = self._index_fields(index)
        self.index_config: IndexConfig | None = (
            None if self._fields is None else {"dims": self.encoder.dimension}
        )
        if self.index_config is not None and self._fields is not None:
            self.index_config["fields"] = list(self._fields)
        self._ttl = self._ttl_config(ttl)
        self.ttl_config = self._ttl
        self._create_users = bool(create_users)
        self._clock = clock
        self._read_only = bool(memory.read_only)
        ensure_schema(memory.store)
        self._items = StoreItems(
            memory.store.connection("core"),
            fingerprint=self.encoder.fingerprint,
            dimension=self.encoder.dimension,
            fusion=memory.semantic.config.fusion,
            candidates=memory.semantic.config.candidates,
        )
        self._stop = threading.Event()
        self._sweeper: threading.Thread | None = None
        if not self._read_only:
            self.reindex()
            if self._ttl.get("sweep_interval_minutes"):
                self.start_ttl_sweeper()

    @classmethod
    @contextlib.contextmanager
    def open(
        cls,
        data_dir: str | Path | None = None,
        *,
        passphrase: str | None = None,
        config: Config | None = None,
        encoder: Encoder | None = None,
        read_only: bool = False,
        **options: Any,
    ) -> Iterator[AicoStore]:
        """Open a data dir (``MemoryManager.open``) and a store on it; both close after."""
        memory = MemoryManager.open(
            data_dir, passphrase=passphrase, config=config, encoder=encoder, read_only=read_only
        )
        try:
            store = cls(memory, **options)
            try:
                yield store
            finally:
                store.close()
        finally:
            memory.close()

    # -- configuration --------------------------------------------------------------

    def _index_fields(self, index: IndexConfig | Literal[False] | None) -> tuple[str, ...] | None:
        if index is False:
            return None
        if index is None:
            return ("$",)
        if not isinstance(index, Mapping):
            raise InvalidInput("index must be an IndexConfig mapping, False or None")
        if index.get("embed") is not None:
            raise InvalidInput(
                "AicoStore embeds with aico's configured model; give no 'embed' (or pass encoder=)"
            )
        dims = index.get("dims")
        if dims is not None and dims != self.encoder.dimension:
            raise InvalidInput(
                f"index dims must be the encoder's dimension ({self.encoder.dimension})"
            )
        return self._paths(index.get("fields") or ["$"])

    @staticmethod
    def _paths(fields: object) -> tuple[str, ...]:
        if isinstance(fields, str) or not isinstance(fields, list | tuple):
            raise InvalidInput("index fields must be a list of JSON paths")
        for path in fields:
            if not isinstance(path, str) or not path:
                raise InvalidInput("index fields must be non-empty strings")
            check_text(path, "index field", limit=_MAX_LABEL)
        return tuple(fields)

    @staticmethod
    def _ttl_config(ttl: TTLConfig | None) -> TTLConfig:
        config: TTLConfig = dict(ttl or {})  # type: ignore[assignment]
        unknown = set(config) - {
            "default_ttl",
            "refresh_on_read",
            "sweep_interval_minutes",
            "omit_expired",
        }
        if unknown:
            raise InvalidInput(f"unknown TTLConfig key(s): {sorted(unknown)}")
        if config.get("default_ttl") is not None:
            _ttl_minutes(config["default_ttl"])
        interval = config.get("sweep_interval_minutes")
        if interval is not None and (
            isinstance(interval, bool)
            or not isinstance(interval, int | float)
            or not 0 < interval <= _MAX_TTL_MINUTES
        ):
            raise InvalidInput("sweep_interval_minutes must be a positive number of minutes")
        return config

    # -- the interface --------------------------------------------------------------

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Run ops in order of their kind: reads see the state before this batch's puts
        (like ``InMemoryStore`` and ``SqliteStore``); puts of one key, last one wins; TTL
        refreshes and every put commit in one transaction."""
        ops = list(ops)
        for op in ops:
            self._check(op)
        now = self._clock()
        live = now if self._ttl.get("omit_expired") else None
        results: list[Result] = [None] * len(ops)
        refresh: list[int] = []
        self._gets(ops, results, refresh, live)
        queries = self._embed_queries(ops)
        for i, op in enumerate(ops):
            if isinstance(op, SearchOp):
                found = self._search(op, queries, live)
                if op.refresh_ttl:
                    refresh += [item.id for item in found]
                results[i] = [self._search_item(item) for item in found]
            elif isinstance(op, ListNamespacesOp):
                results[i] = self._list(op, live)
        puts = self._puts(ops)
        if puts or (refresh and not self._read_only):
            if puts and self._read_only:
                raise ReadOnly("this store's memory manager was opened read-only")
            vectors = self._embed_puts(puts)
            self._items.write(
                puts, vectors, refresh=refresh, now=now, create_users=self._create_users
            )
        return results

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """``batch`` on a worker thread: the event loop never waits on libSQL or the model."""
        return await asyncio.to_thread(self.batch, list(ops))

    # -- validation -----------------------------------------------------------------

    def _check(self, op: Op) -> None:
        if isinstance(op, GetOp | PutOp):
            labels = _labels(op.namespace, "namespace")
            if not labels:
                raise InvalidNamespace("namespace cannot be empty")
            self._owner(labels)
            if not isinstance(op.key, str):
                raise InvalidInput("key must be a string")
            check_text(op.key, "key", limit=_MAX_KEY)
        elif isinstance(op, SearchOp):
            _labels(op.namespace_prefix, "namespace prefix")
            _page(op.limit, op.offset)
            if op.query is not None:
                check_text(op.query, "query", limit=MAX_QUERY)
        elif isinstance(op, ListNamespacesOp):
            for condition in op.match_conditions or ():
                if condition.match_type not in ("prefix", "suffix"):
                    raise InvalidInput("match_type must be 'prefix' or 'suffix'")
                _labels(condition.path, "namespace path")
            if op.max_depth is not None and (
                isinstance(op.max_depth, bool)
                or not isinstance(op.max_depth, int)
                or op.max_depth < 1
            ):
                raise InvalidInput("max_depth must be a positive integer")
            _page(op.limit, op.offset)
        else:
            raise InvalidInput(f"unknown store operation {type(op).__name__}")

    def _owner(self, namespace: tuple[str, ...]) -> str:
        """The aico user a namespace belongs to."""
        if self._user_id is not None:
            return self._user_id
        if len(namespace) <= self._position:
            raise InvalidNamespace(
                f"this store keeps the user id at namespace position {self._position}; "
                "the namespace is too short"
            )
        try:
            return check_id(namespace[self._position], "the namespace's user id")
        except InvalidInput as exc:
            raise InvalidNamespace(str(exc)) from None

    def _scope(self, prefix: tuple[str, ...]) -> str | None:
        """The user a search prefix is limited to, when the prefix names one."""
        if self._user_id is not None:
            return self._user_id
        if len(prefix) > self._position:
            return prefix[self._position]
        return None

    # -- reads ----------------------------------------------------------------------

    def _gets(
        self, ops: list[Op], results: list[Result], refresh: list[int], live: float | None
    ) -> None:
        wanted: dict[tuple[str, ...], list[int]] = {}
        for i, op in enumerate(ops):
            if isinstance(op, GetOp):
                wanted.setdefault(tuple(op.namespace), []).append(i)
        for namespace, indexes in wanted.items():
            keys = [str(ops[i].key) for i in indexes]  # type: ignore[union-attr]
            found = self._items.get(namespace, keys, now=live)
            for i in indexes:
                op = ops[i]
                assert isinstance(op, GetOp)
                item = found.get(op.key)
                results[i] = None if item is None else self._item(item)
                if item is not None and op.refresh_ttl:
                    refresh.append(item.id)

    def _embed_queries(self, ops: list[Op]) -> dict[str, Any]:
        if self._fields is None:
            return {}
        texts = {op.query for op in ops if isinstance(op, SearchOp) and op.query}
        return {text: self.encoder.encode_query(text) for text in texts}

    def _search(
        self, op: SearchOp, queries: Mapping[str, Any], live: float | None
    ) -> list[StoredItem]:
        prefix = tuple(op.namespace_prefix)
        text = op.query or None
        return self._items.search(
            ItemQuery(
                prefix=prefix,
                filter=op.filter,
                limit=op.limit,
                offset=op.offset,
                text=text,
                vector=None if text is None else queries.get(text),
                user_id=self._scope(prefix),
            ),
            now=live,
        )

    def _list(self, op: ListNamespacesOp, live: float | None) -> list[tuple[str, ...]]:
        conditions = tuple(op.match_conditions or ())
        literal: tuple[str, ...] = ()
        for condition in conditions:
            if condition.match_type == "prefix":
                head: list[str] = []
                for label in condition.path:
                    if label == "*":
                        break
                    head.append(label)
                if len(head) > len(literal):
                    literal = tuple(head)
        found = [
            ns
            for ns in self._items.namespaces(literal, now=live)
            if all(_matches(c, ns) for c in conditions)
        ]
        if op.max_depth is not None:
            found = list({ns[: op.max_depth] for ns in found})
        found.sort()
        return found[op.offset : op.offset + op.limit]

    def _item(self, item: StoredItem) -> Item:
        return Item(
            value=item.value,
            key=item.key,
            namespace=item.namespace,
            created_at=_when(item.created_at),
            updated_at=_when(item.updated_at),
        )

    def _search_item(self, item: StoredItem) -> SearchItem:
        return SearchItem(
            namespace=item.namespace,
            key=item.key,
            value=item.value,
            created_at=_when(item.created_at),
            updated_at=_when(item.updated_at),
            score=item.score,
        )

    # -- writes ---------------------------------------------------------------------

    def _puts(self, ops: list[Op]) -> list[ItemPut]:
        last: dict[tuple[tuple[str, ...], str], PutOp] = {}
        for op in ops:
            if isinstance(op, PutOp):
                last[(tuple(op.namespace), op.key)] = op
        return [self._put(op) for op in last.values()]

    def _put(self, op: PutOp) -> ItemPut:
        namespace = tuple(op.namespace)
        owner = self._owner(namespace)
        if op.value is None:
            return ItemPut(namespace, op.key, owner, None)
        if not isinstance(op.value, Mapping):
            raise InvalidInput("value must be a mapping with string keys")
        value = dict(op.value)
        if any(not isinstance(k, str) for k in value):
            raise InvalidInput("value must be a mapping with string keys")
        text = check_json(value, "value")
        value = json.loads(text)  # what is stored is what is indexed
        if any("\x00" in s for s in _strings(value)):
            # JSON escapes it, but SQLite's text functions and FTS5 stop at a NUL.
            raise InvalidInput("value must not contain NUL characters")
        fields = self._fields
        if fields is not None and op.index is not None:
            fields = None if op.index is False else self._paths(op.index)
        texts = () if fields is None else _index_texts(value, fields)
        ttl = None if op.ttl is None else _ttl_minutes(op.ttl)
        return ItemPut(namespace, op.key, owner, text, fields, texts, ttl)

    def _embed_puts(self, puts: Sequence[ItemPut]) -> list[Any]:
        texts = [t.dense for put in puts for t in put.texts]
        if not texts:
            return [None] * len(puts)
        matrix = self.encoder.encode(texts)
        out: list[Any] = []
        start = 0
        for put in puts:
            n = len(put.texts)
            out.append(matrix[start : start + n] if n else None)
            start += n
        return out

    # -- maintenance ----------------------------------------------------------------

    def reindex(self) -> int:
        """Embed again what another model embedded (after ``aico semantic reembed``), and
        index items that came without their index (an import); runs on open. Returns the
        items whose texts were made again."""
        if self._read_only:
            raise ReadOnly("this store's memory manager was opened read-only")
        done = last = 0
        while True:
            stale = self._items.stale(last, _REINDEX_BATCH)
            if not stale:
                break
            for item_id, value_text, fields in stale:
                value = json.loads(value_text)
                texts = _index_texts(value if isinstance(value, dict) else {}, fields)
                vectors = self.encoder.encode([t.dense for t in texts]) if texts else None
                self._items.reindex(item_id, texts, vectors)
                last = item_id
                done += bool(texts)
        if done:
            self._items.optimize()
        return done

    def sweep_ttl(self) -> int:
        """Delete every expired item now; returns how many."""
        if self._read_only:
            raise ReadOnly("this store's memory manager was opened read-only")
        return self._items.sweep(self._clock())

    def start_ttl_sweeper(self, sweep_interval_minutes: float | None = None) -> None:
        """Sweep every ``sweep_interval_minutes`` (default: the TTLConfig's, else 5) on a
        daemon thread until ``stop_ttl_sweeper`` or ``close``."""
        if self._sweeper is not None and self._sweeper.is_alive():
            return
        minutes = sweep_interval_minutes or self._ttl.get("sweep_interval_minutes") or 5
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(float(minutes) * 60.0):
                with contextlib.suppress(Exception):  # the next round tries again
                    self.sweep_ttl()

        self._sweeper = threading.Thread(target=loop, name="aico-store-ttl", daemon=True)
        self._sweeper.start()

    def stop_ttl_sweeper(self, timeout: float | None = None) -> bool:
        """Stop the sweeper thread; False if it did not stop within ``timeout``."""
        self._stop.set()
        sweeper, self._sweeper = self._sweeper, None
        if sweeper is None:
            return True
        sweeper.join(timeout)
        return not sweeper.is_alive()

    def close(self) -> None:
        """Stop the TTL sweeper. The memory manager is the caller's to close."""
        self.stop_ttl_sweeper(timeout=5.0)

    def __enter__(self) -> AicoStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _page(limit: object, offset: object) -> None:
    for value, what in ((limit, "limit"), (offset, "offset")):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidInput(f"{what} must be a non-negative integer")
    assert isinstance(limit, int)
    if limit > _MAX_LIMIT:
        raise InvalidInput(f"limit must be at most {_MAX_LIMIT}")


def _ttl_minutes(value: object) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not 0 < value <= _MAX_TTL_MINUTES
    ):
        raise InvalidInput("ttl must be a positive number of minutes (at most 100 years)")
    return float(value)
