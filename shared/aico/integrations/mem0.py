"""``Memory`` and ``AsyncMemory``: mem0's Python API over aico's encrypted store.

Code written for mem0 switches by changing one import::

    from aico.integrations.mem0 import Memory      # was: from mem0 import Memory
    m = Memory.open("~/aico-data")                 # was: Memory() / Memory.from_config(...)
    m.add("I'm allergic to nuts", user_id="maya")
    m.search("what can't I eat?", user_id="maya")

Same method names and return shapes as mem0's ``Memory`` (``add``, ``search``, ``get``,
``get_all``, ``update``, ``delete``, ``delete_all``, ``history``, ``reset``). No extra
is needed. The mapping (docs/integrations.md has the table), the same as the companion
backend's mem0 router, which can import the shared pieces from here (``CATEGORY``,
``META_KEY``, ``memory_dict``, ``entity_ids``):

- a mem0 *memory* is a memory-album fact of category ``mem0``; ``agent_id``, ``run_id``,
  the message's ``role`` and ``name`` (mem0's ``actor_id``) sit in the fact's metadata
  under ``META_KEY``. Every memory belongs to an aico user (created on first use unless
  ``create_users=False``), so ``MemoryManager.forget(user)`` removes it with the rest;
- ``add(..., infer=False)`` stores each non-system message verbatim, as mem0 does with
  ``infer=False``. There is no LLM here: ``infer=True`` needs an ``extractor`` (a callable
  from the messages to the fact texts to keep), otherwise it is ``InvalidInput``;
- ``search`` ranks by the cosine similarity of aico's configured embedding model
  (``score``), after ``filters``; embeddings are computed once per memory and cached in the
  encrypted database, and made again when the memory changes;
- ``history`` returns events (``ADD``, ``UPDATE``, ``DELETE`` and when): mem0 keeps the old
  and new text of every change in a plaintext SQLite file, which would keep a deleted
  memory's words; aico keeps no text in its history, so ``old_memory`` and ``new_memory``
  are always None;
- ``reset`` deletes every mem0 memory of every user (and their history), nothing else.

Errors are ``aico.errors`` types; those mem0 raises as ``ValueError`` are ``ValueError``
here too (``InvalidInput``, ``MemoryNotFound``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import hashlib
import math
import operator
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import numpy as np

from aico.ai.embeddings import Encoder
from aico.ai.memory.manager import MemoryManager
from aico.config import Config
from aico.data.repositories import Fact, FactRepository
from aico.errors import InvalidInput, NotFound
from aico.integrations._mem0_rows import Mem0Rows
from aico.integrations._setup import ensure_schema
from aico.validation import MAX_QUERY, check_id, check_json, check_text

__all__ = [
    "CATEGORY",
    "META_KEY",
    "AsyncMemory",
    "Extractor",
    "Memory",
    "MemoryNotFound",
    "entity_ids",
    "memory_dict",
]

CATEGORY = "mem0"
"""The fact category of a mem0 memory."""

META_KEY = "_mem0"
"""Where ``agent_id``, ``run_id``, ``role`` and ``actor_id`` live inside a fact's metadata."""

Extractor = Callable[[list[dict[str, str]]], Iterable[str]]
"""``infer=True``: the messages (``role``, ``content``, maybe ``name``) in, facts to keep out."""

_IDS = ("user_id", "agent_id", "run_id")
_PROMOTED = ("agent_id", "run_id", "actor_id", "role")
_MAX_MEMORIES = 10_000
_MAX_K = 1000
_OPS = ("eq", "ne", "in", "nin", "gt", "gte", "lt", "lte", "contains", "icontains")
_ORDER: dict[str, Callable[[Any, Any], Any]] = {
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}

P = ParamSpec("P")
T = TypeVar("T")


class MemoryNotFound(NotFound, ValueError):
    """No mem0 memory with this id (a ``ValueError`` too, as mem0 raises)."""


# ---- the mapping, shared with the backend's mem0 router ---------------------------------


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC).isoformat()


def memory_dict(fact: Fact, score: float | None = None) -> dict[str, Any]:
    """A fact in mem0's v1.1 shape (``id``, ``memory``, ``hash``, ``metadata``, ...)."""
    extra = fact.metadata.get(META_KEY) or {}
    out: dict[str, Any] = {
        "id": fact.fact_id,
        "memory": fact.content,
        "hash": hashlib.md5(fact.content.encode(), usedforsecurity=False).hexdigest(),
        "metadata": {k: v for k, v in fact.metadata.items() if k != META_KEY} or None,
        "categories": [fact.category],
        "created_at": _iso(fact.created_at),
        "updated_at": _iso(fact.updated_at),
        "user_id": fact.user_id,
    }
    for key in _PROMOTED:
        if extra.get(key) is not None:
            out[key] = extra[key]
    if score is not None:
        out["score"] = score
    return out


def _walk_ids(filters: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    for key, value in filters.items():
        if key in _IDS and isinstance(value, str):
            yield key, value
        elif isinstance(value, Mapping):
            yield from _walk_ids(value)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, Mapping):
                    yield from _walk_ids(item)


def entity_ids(
    user_id: str | None = None,
    agent_id: str | None = None,
    run_id: str | None = None,
    filters: Mapping[str, Any] | None = None,
) -> dict[str, str | None]:
    """``user_id``/``agent_id``/``run_id`` given directly (mem0 1.x) or anywhere in a v2
    ``filters`` tree (``{"AND": [{"user_id": ...}]}``); a direct one wins."""
    found: dict[str, str | None] = {"user_id": user_id, "agent_id": agent_id, "run_id": run_id}
    if filters is not None and not isinstance(filters, Mapping):
        raise InvalidInput("filters must be a mapping")
    for key, value in _walk_ids(filters or {}):
        found[key] = found[key] or value
    for key, value in found.items():
        if value is not None:
            check_id(value, key)
    return found


def _extra(fact: Fact) -> dict[str, Any]:
    extra = fact.metadata.get(META_KEY)
    return extra if isinstance(extra, dict) else {}


def _field(fact: Fact, key: str) -> Any:
    if key == "user_id":
        return fact.user_id
    if key in _PROMOTED:
        return _extra(fact).get(key)
    return fact.metadata.get(key) if key != META_KEY else None


def _holds(fact: Fact, filters: Mapping[str, Any]) -> bool:
    """mem0's metadata filters: ``AND``/``OR``/``NOT`` lists, ``{"key": value}``, ``"*"`` for
    any value, and the operators eq, ne, in, nin, gt, gte, lt, lte, contains, icontains."""
    for key, condition in filters.items():
        if key in ("AND", "OR", "NOT"):
            if not isinstance(condition, list) or not all(
                isinstance(c, Mapping) for c in condition
            ):
                raise InvalidInput(f"{key} takes a list of filter mappings")
            results = [_holds(fact, c) for c in condition]
            ok = all(results) if key == "AND" else any(results) if key == "OR" else not any(results)
        elif isinstance(condition, Mapping):
            ok = all(_op(_field(fact, key), op, v) for op, v in condition.items())
        elif condition == "*":
            ok = _field(fact, key) is not None
        else:
            ok = _field(fact, key) == condition
        if not ok:
            return False
    return True


def _check_filters(filters: Mapping[str, Any]) -> None:
    """Refuse a malformed filter up front, also when there is nothing to filter yet."""
    for key, condition in filters.items():
        if key in ("AND", "OR", "NOT"):
            if not isinstance(condition, list) or not all(
                isinstance(c, Mapping) for c in condition
            ):
                raise InvalidInput(f"{key} takes a list of filter mappings")
            for sub in condition:
                _check_filters(sub)
        elif isinstance(condition, Mapping):
            for op, target in condition.items():
                _op(None, op, target)


def _op(value: Any, op: str, target: Any) -> bool:
    if op not in _OPS:
        raise InvalidInput(f"filter operators are {', '.join(_OPS)}")
    if op == "eq":
        return bool(value == target)
    if op == "ne":
        return bool(value != target)
    if op in ("in", "nin"):
        if not isinstance(target, list):
            raise InvalidInput(f"'{op}' takes a list")
        return (value in target) == (op == "in")
    if op in ("contains", "icontains"):
        if not isinstance(target, str):
            raise InvalidInput(f"'{op}' takes a string")
        if not isinstance(value, str):
            return False
        return target.lower() in value.lower() if op == "icontains" else target in value
    numeric = isinstance(value, int | float) and isinstance(target, int | float)
    if isinstance(value, bool) or isinstance(target, bool):
        return False
    if not numeric and not (isinstance(value, str) and isinstance(target, str)):
        return False
    return bool(_ORDER[op](value, target))


def _messages(messages: object) -> list[dict[str, str]]:
    """mem0's accepted forms: a string, one message dict, or a list of them."""
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    elif isinstance(messages, Mapping):
        messages = [messages]
    if not isinstance(messages, list) or not messages:
        raise InvalidInput("messages must be a string, a message dict or a non-empty list")
    out: list[dict[str, str]] = []
    for message in messages:
        if not isinstance(message, Mapping):
            raise InvalidInput("each message must be a dict with 'role' and 'content'")
        role, content = message.get("role"), message.get("content")
        if not isinstance(role, str) or not isinstance(content, str):
            raise InvalidInput("each message needs a string 'role' and 'content'")
        check_text(role, "message role", required=True, limit=32)
        item = {"role": role, "content": check_text(content, "message content", required=True)}
        name = message.get("name")
        if name is not None:
            item["name"] = check_id(name, "message name")
        out.append(item)
    return out


# ---- the sync face ------------------------------------------------------------------------


class Memory:
    """mem0's ``Memory`` over an open ``MemoryManager`` (see the module docstring).

    ``Memory.open`` opens a data dir and closes it in ``close``; given a manager, ``close``
    leaves it open (it is the caller's). ``encoder`` defaults to the manager's.
    """

    def __init__(
        self,
        memory: MemoryManager,
        *,
        extractor: Extractor | None = None,
        encoder: Encoder | None = None,
        create_users: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if extractor is not None and not callable(extractor):
            raise InvalidInput("extractor must be a callable")
        self.memory = memory
        self.encoder = encoder or memory.semantic.encoder
        self.extractor = extractor
        self._create_users = bool(create_users)
        self._clock = clock
        self._owns = False
        ensure_schema(memory.store)
        self._conn = memory.store.connection("core")
        self._facts = FactRepository(self._conn, clock=clock)
        self._rows = Mem0Rows(
            self._conn, fingerprint=self.encoder.fingerprint, dimension=self.encoder.dimension
        )

    @classmethod
    def open(
        cls,
        data_dir: str | Path | None = None,
        *,
        passphrase: str | None = None,
        config: Config | None = None,
        encoder: Encoder | None = None,
        read_only: bool = False,
        **options: Any,
    ) -> Memory:
        """Open a data dir (``MemoryManager.open``); ``close`` closes it again."""
        manager = MemoryManager.open(
            data_dir, passphrase=passphrase, config=config, encoder=encoder, read_only=read_only
        )
        try:
            memory = cls(manager, **options)
        except BaseException:
            manager.close()
            raise
        memory._owns = True
        return memory

    def close(self) -> None:
        """Close the data dir if ``Memory.open`` opened it; idempotent."""
        if self._owns:
            self._owns = False
            self.memory.close()

    def __enter__(self) -> Memory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing --------------------------------------------------------------------

    def add(
        self,
        messages: str | Mapping[str, Any] | list[Mapping[str, Any]],
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        infer: bool = False,
        memory_type: str | None = None,
        prompt: str | None = None,
    ) -> dict[str, Any]:
        """Store memories; ``{"results": [{"id", "memory", "event": "ADD", ...}]}``."""
        ids = entity_ids(user_id, agent_id, run_id)
        user = self._user(ids)
        if memory_type is not None or prompt is not None:
            raise InvalidInput(
                "memory_type and prompt drive mem0's LLM; aico has none (use infer=False)"
            )
        base = self._metadata(metadata)
        parsed = _messages(messages)
        scope = {k: v for k in ("agent_id", "run_id") if (v := ids[k]) is not None}
        items: list[tuple[str, dict[str, Any]]] = []
        if infer:
            if self.extractor is None:
                raise InvalidInput(
                    "infer=True needs an LLM to pick the facts, and aico has none: use "
                    "infer=False (each message kept as a memory, verbatim), or give "
                    "Memory(..., extractor=) a callable that returns the facts to keep"
                )
            for text in self.extractor(parsed):
                if not isinstance(text, str):
                    raise InvalidInput("the extractor must return strings")
                items.append((text, dict(scope)))
        else:
            for message in parsed:
                if message["role"] == "system":
                    continue
                extra = {**scope, "role": message["role"]}
                if "name" in message:
                    extra["actor_id"] = message["name"]
                items.append((message["content"], extra))
        for text, _ in items:
            check_text(text, "memory", required=True, limit=10_000)
        vectors: Any = self.encoder.encode([text for text, _ in items]) if items else []
        results: list[dict[str, Any]] = []
        now = self._clock()
        with self._conn.transaction():
            self._ensure_user(user)
            for (text, extra), vector in zip(items, vectors, strict=True):
                fact = self._facts.remember(
                    user, text, category=CATEGORY, metadata={**base, META_KEY: extra}
                )
                self._rows.put_vector(fact.fact_id, user, fact.updated_at, vector)
                self._rows.record(fact.fact_id, user, "ADD", now)
                results.append(
                    {
                        "id": fact.fact_id,
                        "memory": fact.content,
                        "event": "ADD",
                        "actor_id": extra.get("actor_id"),
                        "role": extra.get("role"),
                    }
                )
        return {"results": results}

    def update(
        self,
        memory_id: str,
        data: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        *,
        text: str | None = None,
    ) -> dict[str, str]:
        """Replace a memory's text (``data``, or ``text=``) and/or merge into its metadata."""
        fact = self._mem0_fact(memory_id)
        new_text = data if data is not None else text
        if new_text is None and metadata is None:
            raise InvalidInput("give the new text and/or metadata")
        changes: dict[str, Any] = {}
        vector = None
        if new_text is not None:
            changes["content"] = check_text(new_text, "memory", required=True, limit=10_000)
            vector = self.encoder.encode([new_text])[0]
        if metadata is not None:
            merged = {**fact.metadata, **self._metadata(metadata)}
            merged[META_KEY] = _extra(fact)
            changes["metadata"] = merged
        with self._conn.transaction():
            updated = self._facts.update(fact.fact_id, **changes)
            if vector is not None:
                self._rows.put_vector(updated.fact_id, updated.user_id, updated.updated_at, vector)
            self._rows.record(fact.fact_id, fact.user_id, "UPDATE", self._clock())
        return {"message": "Memory updated successfully!"}

    def delete(self, memory_id: str) -> dict[str, str]:
        """Delete one memory; its vector goes with it, the history keeps only the event."""
        fact = self._mem0_fact(memory_id)
        with self._conn.transaction():
            self._rows.record(fact.fact_id, fact.user_id, "DELETE", self._clock())
            self._facts.delete(fact.fact_id)
        return {"message": "Memory deleted successfully!"}

    def delete_all(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
    ) -> dict[str, str]:
        """Delete every memory of a user (and/or agent, run); at least one must be given."""
        ids = entity_ids(user_id, agent_id, run_id)
        if all(v is None for v in ids.values()):
            raise InvalidInput(
                "give user_id, agent_id or run_id (reset() deletes every mem0 memory)"
            )
        facts = self._select(ids, None)
        now = self._clock()
        with self._conn.transaction():
            for fact in facts:
                self._rows.record(fact.fact_id, fact.user_id, "DELETE", now)
                self._facts.delete(fact.fact_id)
        return {"message": "Memories deleted successfully!"}

    def reset(self) -> None:
        """Delete every mem0 memory of every user, and all their history."""
        with self._conn.transaction():
            self._conn.execute("DELETE FROM integration_mem0_history")
            self._conn.execute("DELETE FROM facts WHERE category = ?", (CATEGORY,))

    # -- reading --------------------------------------------------------------------

    def get(self, memory_id: str) -> dict[str, Any] | None:
        """The memory in mem0's shape, or None."""
        try:
            return memory_dict(self._mem0_fact(memory_id))
        except MemoryNotFound:
            return None

    def get_all(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        filters: Mapping[str, Any] | None = None,
        top_k: int | None = None,
        limit: int | None = None,
    ) -> dict[str, Any]:
        """``{"results": [...]}``: the memories that match, newest first."""
        ids = entity_ids(user_id, agent_id, run_id, filters)
        k = _count(top_k if top_k is not None else limit, default=100, maximum=_MAX_MEMORIES)
        return {"results": [memory_dict(f) for f in self._select(ids, filters)[:k]]}

    def search(
        self,
        query: str,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        top_k: int | None = None,
        limit: int | None = None,
        filters: Mapping[str, Any] | None = None,
        threshold: float | None = None,
    ) -> dict[str, Any]:
        """``{"results": [...]}`` best first, each with ``score`` (cosine, in [-1, 1])."""
        ids = entity_ids(user_id, agent_id, run_id, filters)
        check_text(query, "query", required=True, limit=MAX_QUERY)
        k = _count(top_k if top_k is not None else limit, default=100, maximum=_MAX_K)
        if threshold is not None and (
            isinstance(threshold, bool)
            or not isinstance(threshold, int | float)
            or not math.isfinite(threshold)
            or not 0.0 <= threshold <= 1.0
        ):
            raise InvalidInput("threshold must be a number between 0 and 1")
        facts = self._select(ids, filters)
        if not facts:
            return {"results": []}
        matrix = np.stack([v for v in self._vectors(facts)])
        scores = np.clip(matrix @ self.encoder.encode_query(query), -1.0, 1.0)
        ranked = sorted(zip(scores.tolist(), facts, strict=True), key=lambda p: -p[0])
        return {
            "results": [
                memory_dict(f, round(float(s), 6))
                for s, f in ranked[:k]
                if threshold is None or s >= threshold
            ]
        }

    def history(self, memory_id: str) -> list[dict[str, Any]]:
        """What happened to a memory, oldest first: events and times, never text."""
        memory_id = check_id(memory_id, "memory_id")
        current = self.get(memory_id)
        out = []
        for row in self._rows.history(memory_id):
            when = _iso(float(row["created_at"]))
            out.append(
                {
                    "id": str(row["id"]),
                    "memory_id": str(row["memory_id"]),
                    "old_memory": None,
                    "new_memory": None,
                    "event": str(row["event"]),
                    "created_at": when,
                    "updated_at": when,
                    "is_deleted": int(row["event"] == "DELETE"),
                    "actor_id": None if current is None else current.get("actor_id"),
                    "role": None if current is None else current.get("role"),
                }
            )
        return out

    # -- helpers --------------------------------------------------------------------

    def _user(self, ids: Mapping[str, str | None]) -> str:
        user = ids["user_id"]
        if user is None:
            raise InvalidInput("user_id is required: every aico memory belongs to a user")
        return user

    def _ensure_user(self, user_id: str) -> None:
        exists = self._conn.fetch_value("SELECT 1 FROM users WHERE user_id = ?", (user_id,))
        if exists is not None:
            return
        if not self._create_users:
            raise NotFound("no user with this user_id")
        self._conn.execute(
            "INSERT OR IGNORE INTO users (user_id, display_name) VALUES (?, ?)",
            (user_id, user_id[:200]),
        )

    @staticmethod
    def _metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
        if metadata is None:
            return {}
        if not isinstance(metadata, Mapping):
            raise InvalidInput("metadata must be a mapping")
        if META_KEY in metadata:
            raise InvalidInput(f"metadata key {META_KEY!r} is reserved")
        check_json(metadata, "metadata")
        return dict(metadata)

    def _mem0_fact(self, memory_id: str) -> Fact:
        try:
            fact = self._facts.get(check_id(memory_id, "memory_id"))
        except NotFound:
            raise MemoryNotFound("no memory with this memory_id") from None
        if fact.category != CATEGORY:
            raise MemoryNotFound("no memory with this memory_id")
        return fact

    def _select(
        self, ids: Mapping[str, str | None], filters: Mapping[str, Any] | None
    ) -> list[Fact]:
        """The mem0 memories of the ids (a user's, or every user's for agent/run ids)."""
        if all(v is None for v in ids.values()):
            raise InvalidInput("give user_id, agent_id or run_id (directly or in filters)")
        if filters:
            _check_filters(filters)
        user = ids["user_id"]
        if user is not None:
            facts = self._facts.list(user, category=CATEGORY, limit=_MAX_MEMORIES)
        else:
            rows = self._conn.fetch_all(
                "SELECT * FROM facts WHERE category = ? ORDER BY created_at DESC, fact_id LIMIT ?",
                (CATEGORY, _MAX_MEMORIES),
            )
            facts = [Fact.from_row(r) for r in rows]
        wanted = {k: v for k, v in ids.items() if k != "user_id" and v is not None}
        facts = [f for f in facts if all(_extra(f).get(k) == v for k, v in wanted.items())]
        if filters:
            facts = [f for f in facts if _holds(f, filters)]
        return facts

    def _vectors(self, facts: Sequence[Fact]) -> list[Any]:
        """Each fact's embedding: cached, or made now (and cached, unless read-only)."""
        have = self._rows.vectors({f.fact_id: f.updated_at for f in facts})
        missing = [f for f in facts if f.fact_id not in have]
        if missing:
            made = self.encoder.encode([f.content for f in missing])
            if not self.memory.read_only:
                with self._conn.transaction():
                    for fact, vector in zip(missing, made, strict=True):
                        self._rows.put_vector(fact.fact_id, fact.user_id, fact.updated_at, vector)
            have.update({f.fact_id: v for f, v in zip(missing, made, strict=True)})
        return [have[f.fact_id] for f in facts]


def _count(value: object, *, default: int, maximum: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise InvalidInput(f"top_k / limit must be an integer between 1 and {maximum}")
    return value


# ---- the async face -----------------------------------------------------------------------


class AsyncMemory:
    """mem0's ``AsyncMemory``: ``Memory``'s methods, awaited, each on a worker thread.

    One core, a thin face: ``AsyncMemory(manager)`` builds a ``Memory`` (``.sync``) with
    the same options, or ``AsyncMemory.from_memory(memory)`` wraps one.
    """

    def __init__(self, memory: MemoryManager, **options: Any) -> None:
        self.sync = Memory(memory, **options)

    @classmethod
    def from_memory(cls, memory: Memory) -> AsyncMemory:
        face = cls.__new__(cls)
        face.sync = memory
        return face

    @staticmethod
    async def _run(func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        return await asyncio.to_thread(functools.partial(func, *args, **kwargs))

    async def add(self, messages: Any, **kwargs: Any) -> dict[str, Any]:
        return await self._run(self.sync.add, messages, **kwargs)

    async def search(self, query: str, **kwargs: Any) -> dict[str, Any]:
        return await self._run(self.sync.search, query, **kwargs)

    async def get(self, memory_id: str) -> dict[str, Any] | None:
        return await self._run(self.sync.get, memory_id)

    async def get_all(self, **kwargs: Any) -> dict[str, Any]:
        return await self._run(self.sync.get_all, **kwargs)

    async def update(
        self, memory_id: str, data: str | None = None, metadata: Mapping[str, Any] | None = None
    ) -> dict[str, str]:
        return await self._run(self.sync.update, memory_id, data, metadata)

    async def delete(self, memory_id: str) -> dict[str, str]:
        return await self._run(self.sync.delete, memory_id)

    async def delete_all(self, **kwargs: Any) -> dict[str, str]:
        return await self._run(self.sync.delete_all, **kwargs)

    async def history(self, memory_id: str) -> list[dict[str, Any]]:
        return await self._run(self.sync.history, memory_id)

    async def reset(self) -> None:
        await self._run(self.sync.reset)

    async def aclose(self) -> None:
        await self._run(self.sync.close)
