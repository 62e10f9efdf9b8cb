"""``MemoryManager``: the one place that coordinates the three stores.

- **store** a message: one core-database transaction writes the message log row and the
  ``session_metadata`` update, around the sealed working-memory (LMDB) append.
- **assemble context**: recent working memory + hybrid long-term search + relevant facts,
  de-duplicated and trimmed to a token budget.
- **consolidate**: a session that ended, expired or went idle is segmented into long-term
  memory (segments + FTS5 + outbox) and its messages marked, in one transaction; the
  outbox then embeds and indexes the segments in Chroma.
- **maintain**: sweep expired working memory, consolidate idle sessions, replay the outbox.
- **forget** a user everywhere: LMDB, segments and Chroma, message log, facts, feedback,
  logs, sessions; then checkpoint so the WAL holds no copy.
- **rotate** the master key across all three (``key_rotation``): libSQL is rekeyed, working
  memory re-sealed and the Chroma index retired while the new key is pending, then the
  index is rebuilt under the new key; every open finishes a rebuild a crash left undone.

A crash between two steps is repaired rather than prevented: working memory reconciles
``session_metadata`` on open, consolidation is idempotent (messages are marked in the same
transaction that writes their segments), and the outbox replays indexing.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from aico.ai.embeddings import Encoder, default_encoder
from aico.ai.memory.key_rotation import finish_index_rekey, index_rebuild_pending
from aico.ai.memory.semantic import (
    Message,
    SearchHit,
    SemanticConfig,
    SemanticMemoryStore,
    query_terms,
    segment_messages,
)
from aico.ai.memory.working import WorkingMemoryStore, WorkingMessage
from aico.config import Config, load_config, resolve_data_dir
from aico.data.repositories import Fact, FactRepository, LogRepository, UserService
from aico.data.store import DataStore
from aico.errors import InvalidInput, ModelMismatch, NotFound

__all__ = [
    "ContextBundle",
    "ForgetReport",
    "MaintenanceReport",
    "MemoryManager",
    "RotationReport",
]

ROLES = ("user", "assistant", "system", "tool")
_T = TypeVar("_T")


def estimate_tokens(text: str) -> int:
    """About four characters per token for English; cheap and never zero for non-empty text."""
    return max(1, math.ceil(len(text) / 4)) if text else 0


@dataclass(frozen=True)
class ContextBundle:
    """What the companion's prompt gets, already trimmed to ``max_tokens``."""

    working: tuple[WorkingMessage, ...]
    memories: tuple[SearchHit, ...]
    facts: tuple[Fact, ...]
    token_estimate: int
    max_tokens: int
    dropped: int = 0

    def render(self) -> str:
        """A plain-text block for a prompt: facts, relevant memories, then the recent turns."""
        parts: list[str] = []
        if self.facts:
            parts.append("Things you know about the user:")
            parts += [f"- {f.content}" for f in self.facts]
        if self.memories:
            parts.append("Relevant earlier conversations:")
            parts += [f"- {m.text}" for m in self.memories]
        if self.working:
            parts.append("Recent conversation:")
            parts += [f"{m.role}: {m.content}" for m in self.working]
        return "\n".join(parts)


@dataclass(frozen=True)
class MaintenanceReport:
    swept: int
    consolidated_sessions: int
    segments_created: int
    outbox_processed: int
    outbox_remaining: int = 0


@dataclass(frozen=True)
class ForgetReport:
    user_id: str
    working_entries: int
    segments: int
    messages: int
    facts_and_feedback: bool
    logs: int
    details: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class RotationReport:
    """What a master-key rotation did, per store.

    ``steps`` holds each rotation step's counts (``working_memory``: records re-sealed and
    dropped; ``semantic_index``: whether a rebuild was needed); ``index_vectors`` is the
    number of vectors the Chroma rebuild wrote, or None when nothing was rebuilt.
    ``index_rebuild_pending`` is True when the rebuild could not run yet (the configured
    model differs from the stored vectors' one): the next open after a ``reembed`` does it.
    """

    old_key_id: str
    new_key_id: str
    steps: dict[str, dict[str, int]]
    index_vectors: int | None
    index_rebuild_pending: bool = False


class MemoryManager:
    """Coordinates DataStore (libSQL), WorkingMemoryStore (LMDB) and SemanticMemoryStore."""

    def __init__(
        self,
        store: DataStore,
        working: WorkingMemoryStore,
        semantic: SemanticMemoryStore,
        *,
        config: Config | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.working = working
        self.semantic = semantic
        self.config = config or load_config()
        self.clock = clock
        self._core = store.connection("core")
        self._closed = False

    # ---- construction --------------------------------------------------------------

    @classmethod
    def from_store(
        cls,
        store: DataStore,
        *,
        config: Config | None = None,
        encoder: Encoder | None = None,
        clock: Callable[[], float] = time.time,
    ) -> MemoryManager:
        """Open working and semantic memory on an unlocked ``DataStore``."""
        config = config or load_config()
        working, semantic = _open_memory(
            store, config, encoder or configured_encoder(config), clock
        )
        return cls(store, working, semantic, config=config, clock=clock)

    @classmethod
    def open(
        cls,
        data_dir: str | Path | None = None,
        *,
        passphrase: str | None = None,
        config: Config | None = None,
        encoder: Encoder | None = None,
        env: Mapping[str, str] | None = None,
        interactive: bool | None = None,
        clock: Callable[[], float] = time.time,
    ) -> MemoryManager:
        """Unlock a data dir (see ``DataStore.open``) and open every memory store.

        The model starts loading before the passphrase is stretched: it needs no key and
        would otherwise hold up the first search (cold start 10k: 0.98 -> 0.73 s). Chroma's
        index is not loaded ahead: its load holds the GIL and so delayed everything else
        (see ``SemanticMemoryStore``, "Opening and cold start" in docs/semantic-memory.md).
        """
        config = config or load_config(env=env)
        directory = Path(data_dir) if data_dir is not None else resolve_data_dir(config, env)
        encoder = encoder or configured_encoder(config)
        preload_encoder(encoder)
        store = DataStore.open(
            directory, passphrase=passphrase, config=config, env=env, interactive=interactive
        )
        try:
            store.migrate()
            return cls.from_store(store, config=config, encoder=encoder, clock=clock)
        except BaseException:
            store.close()
            raise

    @classmethod
    def initialize(
        cls,
        data_dir: str | Path,
        passphrase: str,
        *,
        config: Config | None = None,
        encoder: Encoder | None = None,
        clock: Callable[[], float] = time.time,
    ) -> MemoryManager:
        """Create a new data dir (key file, databases, schemas) and open it."""
        config = config or load_config()
        store = DataStore.initialize(data_dir, passphrase, config=config)
        try:
            return cls.from_store(store, config=config, encoder=encoder, clock=clock)
        except BaseException:
            store.close()
            raise

    # ---- key rotation --------------------------------------------------------------

    def rotate_master_key(self, passphrase: str) -> RotationReport:
        """Rotate the master key across libSQL, working memory and the Chroma index.

        The memory stores close first (their keys change under them); the ``DataStore``
        rotation rekeys the databases and runs the ``key_rotation`` steps while the new key
        is pending; then the stores reopen under the new key and the index is rebuilt. On an
        error the manager is closed; re-running, or the next ``open``, resumes the rotation.
        """
        old_id = self.store.master_key.key_id
        encoder = self.semantic.encoder
        try:
            self.semantic.close()
            self.working.close()
            new_id = self.store.rotate_master_key(passphrase)
            self._core = self.store.connection("core")
            self.working, self.semantic = _open_memory(
                self.store, self.config, encoder, self.clock, finish_rekey=False
            )
            vectors = finish_index_rekey(self.semantic, self.store.data_dir)
        except BaseException:
            self.close()
            raise
        return RotationReport(old_id, new_id, dict(self.store.last_rotation), vectors)

    @classmethod
    def rotate_store(
        cls,
        store: DataStore,
        passphrase: str,
        *,
        config: Config | None = None,
        encoder: Encoder | None = None,
    ) -> RotationReport:
        """Rotate a data dir no manager has open (``aico keys rotate``).

        Same steps as ``rotate_master_key``; the semantic store (and the embedding model,
        for its identity) is opened only when the Chroma index needs a rebuild.
        """
        config = config or load_config()
        old_id = store.master_key.key_id
        new_id = store.rotate_master_key(passphrase)
        steps = dict(store.last_rotation)
        vectors = None
        if index_rebuild_pending(store.data_dir):
            try:
                semantic = _open_semantic(store, config, encoder or configured_encoder(config))
            except ModelMismatch:
                # The keys are rotated; the index waits for the model to match (its old
                # vectors are already gone, the marker stays).
                return RotationReport(old_id, new_id, steps, None, index_rebuild_pending=True)
            try:
                vectors = finish_index_rekey(semantic, store.data_dir)
            finally:
                semantic.close()
        return RotationReport(old_id, new_id, steps, vectors)

    def close(self) -> None:
        """Close every store; idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self.semantic.close()
        finally:
            try:
                self.working.close()
            finally:
                self.store.close()

    def __enter__(self) -> MemoryManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- storing -------------------------------------------------------------------

    def store_message(
        self,
        user_id: str,
        session_id: str,
        role: str,
        content: str,
        *,
        conversation_id: str | None = None,
        timestamp: float | None = None,
    ) -> str:
        """Store one message durably (libSQL) and in working memory; returns its id."""
        if role not in ROLES:
            raise InvalidInput(f"role must be one of {', '.join(ROLES)}")
        if not isinstance(content, str) or not content.strip():
            raise InvalidInput("content must be a non-empty string")
        created = self.clock() if timestamp is None else float(timestamp)
        message_id = uuid.uuid4().hex
        # One core transaction holds the log row and working memory's session_metadata
        # update (a nested savepoint); the LMDB write happens inside it, so a rejected
        # append (bad id, another user's session) leaves no log row behind. A crash after
        # the LMDB commit but before this one is repaired by working memory's reconcile.
        with self._core.transaction():
            if self._core.fetch_value("SELECT 1 FROM users WHERE user_id = ?", (user_id,)) is None:
                raise NotFound(f"no user with id {user_id!r}; create the user first")
            self._core.execute(
                "INSERT INTO memory_messages (message_id, user_id, session_id, "
                "conversation_id, role, content, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (message_id, user_id, session_id, conversation_id, role, content, created),
            )
            self.working.append(
                user_id,
                session_id,
                role,
                content,
                conversation_id=conversation_id,
                message_id=message_id,
            )
        return message_id

    def end_session(self, session_id: str, *, consolidate: bool = True) -> int:
        """Mark the session ended and (by default) consolidate it now; returns segments made."""
        self.working.end_session(session_id)
        return self.consolidate(session_id) if consolidate else 0

    # ---- consolidation -------------------------------------------------------------

    def consolidate(self, session_id: str) -> int:
        """Turn the session's unconsolidated messages into long-term segments.

        Segments and the ``consolidated_at`` marks are written in one transaction, so a
        crash leaves either both or neither; embedding happens afterwards via the outbox.
        """
        rows = self._core.fetch_all(
            "SELECT message_id, user_id, conversation_id, role, content, created_at "
            "FROM memory_messages WHERE session_id = ? AND consolidated_at IS NULL "
            "ORDER BY created_at, message_id",
            (session_id,),
        )
        if not rows:
            return 0
        by_user: dict[tuple[str, str | None], list[dict[str, Any]]] = {}
        for row in rows:
            by_user.setdefault((row["user_id"], row["conversation_id"]), []).append(row)
        made = 0
        with self._core.transaction():
            for (user_id, conversation_id), group in by_user.items():
                segments = segment_messages(
                    user_id,
                    [Message(r["role"], r["content"], r["created_at"]) for r in group],
                    conversation_id=conversation_id,
                    session_id=session_id,
                    config=self.semantic.config.segmentation,
                )
                made += len(self.semantic.add_segments(segments, index=False))
            marks = ", ".join("?" for _ in rows)
            self._core.execute(
                f"UPDATE memory_messages SET consolidated_at = ? WHERE message_id IN ({marks})",
                (self.clock(), *(r["message_id"] for r in rows)),
            )
            self._core.execute(
                "UPDATE session_metadata SET status = 'consolidated', updated_at = ? "
                "WHERE session_id = ? AND status IN ('ended', 'expired')",
                (self.clock(), session_id),
            )
        self.semantic.process_outbox()
        return made

    def _sessions_to_consolidate(self, now: float) -> list[str]:
        idle = float(self.config.get("memory.consolidation.idle_minutes")) * 60.0
        rows = self._core.fetch_all(
            "SELECT DISTINCT m.session_id FROM memory_messages m "
            "LEFT JOIN session_metadata s ON s.session_id = m.session_id "
            "WHERE m.consolidated_at IS NULL AND (s.session_id IS NULL "
            "OR s.status IN ('ended', 'expired') OR s.last_activity_at < ?)",
            (now - idle,),
        )
        return [r["session_id"] for r in rows]

    # ---- reading -------------------------------------------------------------------

    def assemble_context(
        self,
        user_id: str,
        session_id: str,
        query: str,
        *,
        max_tokens: int | None = None,
        recent: int | None = None,
        k: int | None = None,
        min_score: float | None = None,
    ) -> ContextBundle:
        """Recent turns + relevant long-term memories + facts, within ``max_tokens``.

        Priority when the budget is tight: the newest turns, then facts, then memories;
        memories that repeat a message already in working memory are dropped.
        """
        section = self.config.section("memory.context")
        budget = int(max_tokens if max_tokens is not None else section["max_tokens"])
        if budget < 1:
            raise InvalidInput("max_tokens must be positive")
        n_recent = int(recent if recent is not None else section["recent_messages"])
        n_memories = int(k if k is not None else section["memories_k"])
        working = [
            m for m in self.working.recent(session_id, n_recent) if m.user_id == user_id
        ]  # newest first
        hits = self.semantic.search(user_id, query, n_memories, min_score=min_score)
        facts = self._relevant_facts(user_id, query, int(section["facts_k"]))

        seen = {m.content.strip() for m in working}
        fresh_hits = [h for h in hits if h.text.strip() not in seen and not _covered(h.text, seen)]
        budgeter = _Budget(budget)
        kept_working = budgeter.take(working, lambda m: m.content)
        kept_facts = budgeter.take(facts, lambda f: f.content)
        kept_hits = budgeter.take(fresh_hits, lambda h: h.text)
        used, dropped = budgeter.used, budgeter.dropped
        return ContextBundle(
            working=tuple(reversed(kept_working)),  # chronological for the prompt
            memories=tuple(kept_hits),
            facts=tuple(kept_facts),
            token_estimate=used,
            max_tokens=budget,
            dropped=dropped,
        )

    def _relevant_facts(self, user_id: str, query: str, limit: int) -> list[Fact]:
        """Facts sharing query terms first (then favourites, then newest)."""
        facts = FactRepository(self._core).list(user_id, limit=500)
        terms = set(query_terms(query))

        def score(fact: Fact) -> tuple[int, int, float]:
            words = set(query_terms(fact.content))
            return (len(terms & words), int(fact.is_favorite), fact.created_at)

        ranked = sorted(facts, key=score, reverse=True)
        return [f for f in ranked if score(f)[0] > 0 or f.is_favorite][:limit]

    # ---- maintenance ---------------------------------------------------------------

    def maintenance(self) -> MaintenanceReport:
        """Sweep expired working memory, consolidate idle sessions, replay the outbox."""
        now = self.clock()
        swept = self.working.sweep(now=now)
        sessions = self._sessions_to_consolidate(now)
        made = sum(self.consolidate(s) for s in sessions)
        outbox = self.semantic.process_outbox()
        return MaintenanceReport(
            swept=swept,
            consolidated_sessions=len(sessions),
            segments_created=made,
            outbox_processed=outbox.indexed + outbox.deleted,
            outbox_remaining=outbox.remaining,
        )

    # ---- forgetting ----------------------------------------------------------------

    def forget_user(self, user_id: str) -> ForgetReport:
        """Delete everything of ``user_id`` from every store, then flush WALs."""
        working = self.working.delete_user(user_id)
        segments = self.semantic.delete_user(user_id)
        messages = self._core.execute(
            "DELETE FROM memory_messages WHERE user_id = ?", (user_id,)
        ).rowcount
        logs = LogRepository(self._core).delete_for_user(user_id)
        profile = True
        try:
            UserService(self._core).delete_user(user_id)  # cascades facts + feedback
        except NotFound:
            profile = False
        self._core.execute("DELETE FROM session_metadata WHERE user_id = ?", (user_id,))
        sessions_db = self.store.connection("sessions")
        sessions_db.execute(
            "DELETE FROM session_cache WHERE session_id IN "
            "(SELECT id FROM sessions WHERE user_id = ?)",
            (user_id,),
        )
        sessions_db.execute("DELETE FROM sessions WHERE user_id = ?", (user_id,))
        sessions_db.execute("DELETE FROM user_preferences WHERE user_id = ?", (user_id,))
        for conn in (self._core, sessions_db):
            conn.checkpoint("TRUNCATE")
        return ForgetReport(
            user_id=user_id,
            working_entries=working,
            segments=segments,
            messages=max(messages, 0),
            facts_and_feedback=profile,
            logs=logs,
        )


class _Budget:
    """Greedy token budget shared by the parts of a context, in priority order."""

    def __init__(self, limit: int) -> None:
        self.limit, self.used, self.dropped = limit, 0, 0

    def take(self, items: Iterable[_T], text: Callable[[_T], str]) -> list[_T]:
        kept: list[_T] = []
        for item in items:
            cost = estimate_tokens(text(item))
            if self.used + cost > self.limit:
                self.dropped += 1
                continue
            kept.append(item)
            self.used += cost
        return kept


def _covered(text: str, seen: Iterable[str]) -> bool:
    """True when every line of a memory is already one of the working-memory messages."""
    lines = [line.split(": ", 1)[-1].strip() for line in text.splitlines() if line.strip()]
    seen_set = set(seen)
    return bool(lines) and all(line in seen_set for line in lines)


def configured_encoder(config: Config) -> Encoder:
    """The default encoder, caching its ONNX export where ``memory.semantic`` says."""
    cache = config.get("memory.semantic.model_cache_dir")
    return default_encoder(cache_dir=Path(cache).expanduser() if cache else None)


def preload_encoder(encoder: Encoder) -> None:
    """Load an encoder's model on a daemon thread, if it can load ahead of its first use.

    A failure is not reported here: the first ``encode`` raises it, typed, where a caller
    handles errors.
    """
    load = getattr(encoder, "load", None)
    # Only a model that is ready to load: a first-time ONNX export takes a child process
    # and half a minute, which belongs in the foreground where its errors are seen.
    if callable(load) and getattr(encoder, "exported", False):

        def run() -> None:
            with contextlib.suppress(Exception):
                load()

        threading.Thread(target=run, name="aico-model-load", daemon=True).start()


def _open_semantic(
    store: DataStore,
    config: Config,
    encoder: Encoder,
) -> SemanticMemoryStore:
    url = config.section("memory.semantic")["chroma_url"] or None
    return SemanticMemoryStore.open(
        store.connection("core"),
        store.master_key,
        encoder,
        chroma_path=None if url else semantic_dir(store.data_dir),
        chroma_url=url,
        config=semantic_config(config),
    )


def _open_memory(
    store: DataStore,
    config: Config,
    encoder: Encoder,
    clock: Callable[[], float],
    *,
    finish_rekey: bool = True,
) -> tuple[WorkingMemoryStore, SemanticMemoryStore]:
    """Working and semantic memory under the store's key.

    Also finishes an index rebuild a rotation left pending, so a crash after the key file
    changed is repaired by the next open rather than leaving a stale index.
    """
    working = WorkingMemoryStore.from_config(
        store.data_dir, store.master_key, config, metadata=store.connection("core"), clock=clock
    )
    try:
        semantic = _open_semantic(store, config, encoder)
        try:
            if finish_rekey:
                finish_index_rekey(semantic, store.data_dir)
        except BaseException:
            semantic.close()
            raise
    except BaseException:
        working.close()
        raise
    return working, semantic


def semantic_dir(data_dir: str | Path) -> Path:
    return Path(data_dir) / "memory" / "semantic" / "chroma"


def semantic_config(config: Config) -> SemanticConfig:
    """``[memory.semantic]`` minus the keys that are not retrieval tuning."""
    values = {
        k: v
        for k, v in config.section("memory.semantic").items()
        if k not in ("embedding_model", "chroma_url", "model_cache_dir")
    }
    return SemanticConfig.from_mapping(values)
