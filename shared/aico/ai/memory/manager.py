"""``MemoryManager``: the one coordinator of the stores.

The message log (conversations database) is the source of truth; everything else is
derived from it and repaired *from* it, never the other way round:

- **store** a message: one log transaction writes the message, its conversation, its
  session row and a working-outbox row; that commit is the acknowledgement. Working
  memory (LMDB) is appended afterwards, and its outbox row cleared in the next write.
- **consolidate** (``consolidation``): claim in the log, segments in the core database,
  done in the log; exactly once per message whoever calls it, replayed after a crash.
- **assemble context**: recent turns (LMDB, plus any the log holds that LMDB does not yet)
  + hybrid long-term search + relevant facts, within a token budget (``context``).
- **maintain**: sweep working memory, expire sessions, finish what a crash left, consolidate
  idle sessions, replay the semantic outbox.
- **forget** (``forget``): a user, a conversation or one message, from every store, proved
  by decrypted-page scans in the tests.
- **repair** (on open and in maintenance): pending forgets, pending consolidations, the
  working outbox, messages LMDB holds that the log does not, segments nothing would index.
- **rotate** the master key across all stores (``key_rotation``).

See docs/architecture.md ("MemoryManager") for the commit order and what each crash leaves.
"""

from __future__ import annotations

import contextlib
import logging
import math
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aico.ai.embeddings import Encoder
from aico.ai.memory._faults import fault
from aico.ai.memory.consolidation import Consolidator
from aico.ai.memory.context import ContextBundle, assemble, estimate_tokens, rank_facts
from aico.ai.memory.forget import LEDGER_PURPOSE, ForgetReport, Forgetter, LedgerEntry
from aico.ai.memory.key_rotation import finish_index_rekey, index_rebuild_pending
from aico.ai.memory.semantic import (
    OutboxResult,
    SearchHit,
    SearchMode,
    SegmentSource,
    SemanticMemoryStore,
)
from aico.ai.memory.stores import (
    configured_encoder,
    initialize_data_store,
    open_data_store,
    open_memory,
    open_semantic,
    preload_encoder,
    semantic_config,
)
from aico.ai.memory.upgrade import upgrade_store
from aico.ai.memory.working import WorkingMemoryStore, WorkingMessage
from aico.config import Config, load_config, resolve_data_dir
from aico.data.repositories import FactRepository
from aico.data.repositories.conversations import Attachment, ConversationLog, LoggedMessage
from aico.data.store import DataStore
from aico.errors import (
    AicoError,
    ConfigError,
    InvalidInput,
    ModelMismatch,
    NotFound,
    ReadOnly,
    SemanticMemoryError,
    StoreClosed,
)
from aico.validation import (
    MAX_QUERY,
    check_count,
    check_id,
    check_json,
    check_number,
    check_text,
    check_time,
)

if TYPE_CHECKING:
    from aico.ai.memory.files import FileMemory
    from aico.ai.memory.knowledge import Knowledge
    from aico.analytics import Analytics

__all__ = [
    "ContextBundle",
    "ForgetReport",
    "MaintenanceReport",
    "MemoryManager",
    "RepairReport",
    "RotationReport",
    "configured_encoder",
    "estimate_tokens",
    "semantic_config",
]

log = logging.getLogger(__name__)

#: Segments from before the language analysis analyzed per maintenance run (~0.2 ms each).
_ANALYZE_PER_RUN = 5000

ROLES = ("user", "assistant", "system", "tool")
_OUTBOX_BATCH = 64  # confirmed working-memory appends cleared per log write
_REPLAY_GRACE_S = 30.0


@dataclass(frozen=True)
class MaintenanceReport:
    swept: int
    consolidated_sessions: int
    segments_created: int
    outbox_processed: int
    outbox_remaining: int = 0
    sessions_expired: int = 0
    repaired: int = 0
    segments_analyzed: int = 0  # older segments given their language analysis


@dataclass(frozen=True)
class RepairReport:
    """What a repair pass made agree with the log (each a count)."""

    forgets_finished: int = 0
    consolidations_finished: int = 0
    working_replayed: int = 0
    working_phantoms_removed: int = 0
    working_restored: int = 0
    segments_requeued: int = 0
    legacy_messages_moved: int = 0

    @property
    def total(self) -> int:
        return (
            self.forgets_finished
            + self.consolidations_finished
            + self.working_replayed
            + self.working_restored
            + self.working_phantoms_removed
            + self.segments_requeued
        )


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
    """Coordinates the message log, working memory (LMDB) and semantic memory.

    Thread-safe: every store it holds is. Several processes may use one data dir (see
    docs/architecture.md, "Processes").
    """

    def __init__(
        self,
        store: DataStore,
        working: WorkingMemoryStore,
        semantic: SemanticMemoryStore,
        *,
        config: Config | None = None,
        clock: Callable[[], float] = time.time,
        repair: bool = True,
        read_only: bool = False,
    ) -> None:
        self.store = store
        self.read_only = read_only
        self.working = working
        self.semantic = semantic
        self.config = config or load_config()
        self.clock = clock
        self._closed = False
        # Working-outbox rows whose LMDB append is done: cleared in the next log write.
        self._appended: list[str] = []
        self._appended_lock = threading.Lock()
        # Messages whose LMDB append failed here: ``recent`` reads them from the log until
        # a replay put them in working memory.
        self._unappended: set[str] = set()
        self._files: FileMemory | None = None
        self._knowledge: Knowledge | None = None
        self._analytics: Analytics | None = None
        self._wire()
        self.last_repair = self.repair() if repair and not read_only else RepairReport()

    def _wire(self) -> None:
        self._core = self.store.connection("core")
        self._log_conn = self.store.connection("conversations")
        self.log = ConversationLog(self._log_conn)
        self._consolidator = Consolidator(self._log_conn, self._core, self.semantic, self.clock)
        self._index_on_end = str(self.config.get("memory.consolidation.index_on_end"))
        if self._index_on_end not in ("now", "batch"):
            raise ConfigError('memory.consolidation.index_on_end must be "now" or "batch"')
        self._forgetter = Forgetter(
            log_conn=self._log_conn,
            core_conn=self._core,
            sessions_conn=lambda: self.store.connection("sessions"),
            semantic=self.semantic,
            working=self.working,
            hash_key=self.store.master_key.subkey(LEDGER_PURPOSE),
            checkpoint=self._checkpoint_all,
            consolidate=lambda session_id: self._consolidator.consolidate(
                session_id, trigger="forget"
            ),
            clock=self.clock,
            elsewhere=self._forget_elsewhere,
        )

    # ---- construction --------------------------------------------------------------

    @classmethod
    def from_store(
        cls,
        store: DataStore,
        *,
        config: Config | None = None,
        encoder: Encoder | None = None,
        clock: Callable[[], float] = time.time,
        read_only: bool = False,
    ) -> MemoryManager:
        """Open working and semantic memory on an unlocked, migrated ``DataStore``."""
        config = config or load_config()
        working, semantic = open_memory(
            store, config, encoder or configured_encoder(config), clock, read_only=read_only
        )
        try:
            return cls(store, working, semantic, config=config, clock=clock, read_only=read_only)
        except BaseException:
            semantic.close()
            working.close()
            raise

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
        read_only: bool = False,
    ) -> MemoryManager:
        """Unlock a data dir (see ``DataStore.open``), upgrade it, and open every store.

        ``read_only=True`` is for inspecting a data dir, also on read-only media: nothing is
        migrated, repaired or written anywhere (not even a seal); the read verbs (search,
        recent, assemble_context) work and every write verb raises ``ReadOnly``. A data dir
        whose schemas are behind the code must be opened writable once, to migrate.

        The model starts loading before the passphrase is stretched: it needs no key and
        would otherwise hold up the first search (cold start 10k: 0.98 -> 0.73 s). Chroma's
        index is not loaded ahead: its load holds the GIL and so delayed everything else
        (see ``SemanticMemoryStore``, "Opening and cold start" in docs/semantic-memory.md).
        """
        config = config or load_config(env=env)
        directory = Path(data_dir) if data_dir is not None else resolve_data_dir(config, env)
        encoder = encoder or configured_encoder(config)
        preload_encoder(encoder)
        store = open_data_store(
            directory,
            passphrase=passphrase,
            config=config,
            env=env,
            interactive=interactive,
            read_only=read_only,
        )
        try:
            if read_only:
                _require_current(store)
            else:
                upgrade_store(store)
            return cls.from_store(
                store, config=config, encoder=encoder, clock=clock, read_only=read_only
            )
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
        store = initialize_data_store(data_dir, passphrase, config=config)
        try:
            upgrade_store(store)
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
        self._check_writable("rotate_master_key")
        old_id = self.store.master_key.key_id
        encoder = self.semantic.encoder
        try:
            self._flush_appended()
            self.semantic.close()
            self.working.close()
            new_id = self.store.rotate_master_key(passphrase)
            self.working, self.semantic = open_memory(
                self.store, self.config, encoder, self.clock, finish_rekey=False
            )
            self._wire()
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
                semantic = open_semantic(store, config, encoder or configured_encoder(config))
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
        try:
            if not self.read_only:
                with contextlib.suppress(AicoError):
                    self._flush_appended()
        finally:
            self._closed = True
            if self._analytics is not None:
                self._analytics.close()  # its DuckDB instance (it suppresses DuckDB's errors)
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

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosed("the memory manager is closed")

    def _check_writable(self, verb: str) -> None:
        self._check_open()
        if self.read_only:
            raise ReadOnly(f"{verb} writes, and this memory manager was opened read-only")

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
        tokens: int | None = None,
        cost: float = 0.0,
        tool_calls: Any = None,
        tool_results: Any = None,
        metadata: Mapping[str, Any] | None = None,
        attachments: Sequence[Attachment] = (),
        provider: str = "aico",
        model: str | None = None,
        title: str | None = None,
    ) -> str:
        """Store one message; returns its id once the log has committed it.

        The log commit is the acknowledgement: the message, its conversation (title,
        provider, model, token and cost totals), attachments, session row and a
        working-outbox row commit together. Working memory is written after; if that
        fails (disk full, a crash), the message is still stored and working memory is
        repaired from the log by the next open or maintenance.
        """
        self._check_writable("store_message")
        check_id(user_id, "user_id")
        check_id(session_id, "session_id")
        if conversation_id is not None:
            check_id(conversation_id, "conversation_id")
        if role not in ROLES:
            raise InvalidInput(f"role must be one of {', '.join(ROLES)}")
        check_text(content, "content", required=True)
        if title is not None:
            check_text(title, "title", limit=500)
        check_text(provider, "provider", required=True, limit=100)
        if model is not None:
            check_text(model, "model", limit=200)
        created = self.clock() if timestamp is None else check_time(timestamp)
        n_tokens = estimate_tokens(content) if tokens is None else check_count(tokens, "tokens")
        if isinstance(cost, bool) or not isinstance(cost, int | float) or not math.isfinite(cost):
            raise InvalidInput("cost must be a finite number")
        if metadata is not None and not isinstance(metadata, Mapping):
            raise InvalidInput("metadata must be a mapping")
        # Serialised once here so that bad JSON never reaches the log's transaction.
        for value, what in ((tool_calls, "tool_calls"), (tool_results, "tool_results")):
            if value is not None:
                check_json(value, what)
        if metadata:
            check_json(metadata, "metadata")
        for item in attachments:
            if not isinstance(item, Attachment):
                raise InvalidInput("attachments must be aico Attachment objects")
        message = LoggedMessage(
            id=uuid.uuid4().hex,
            user_id=user_id,
            session_id=session_id,
            conversation_id=conversation_id,
            role=role,
            content=content,
            timestamp=created,
            tokens=n_tokens,
            cost=float(cost),
            tool_calls=tool_calls,
            tool_results=tool_results,
            metadata=dict(metadata or {}),
        )
        with self._appended_lock:
            # Confirmed appends are cleared in batches, riding on this transaction.
            done: list[str] = []
            if len(self._appended) >= _OUTBOX_BATCH:
                done, self._appended = self._appended, []
        try:
            with self._log_conn.transaction():
                if done:
                    self.log.working_done(done)
                self.log.append(
                    message,
                    working_expires_at=created + self.working.ttl,
                    provider=provider,
                    model=model,
                    title=title,
                    attachments=attachments,
                    user_exists=lambda: self._user_exists(user_id),
                )
        except BaseException:
            with self._appended_lock:
                self._appended[:0] = done
            raise
        fault("after_log_commit")
        self._append_working(message)
        return message.id

    def _user_exists(self, user_id: str) -> bool:
        return (
            self._core.fetch_value("SELECT 1 FROM users WHERE user_id = ?", (user_id,)) is not None
        )

    def _write_working(self, message: LoggedMessage, *, unique: bool = False) -> None:
        self.working.append(
            message.user_id,
            message.session_id,
            message.role,
            message.content,
            conversation_id=message.conversation_id,
            message_id=message.id,
            created_at=message.timestamp,
            unique=unique,
        )

    def _append_working(self, message: LoggedMessage) -> bool:
        """Write a logged message to working memory; False if that failed (repaired later)."""
        try:
            self._write_working(message)
        except AicoError as exc:
            log.warning(
                "working memory: append failed (%s); repaired from the log", type(exc).__name__
            )
            with self._appended_lock:
                self._unappended.add(message.id)
            return False
        fault("after_working_append")
        with self._appended_lock:
            self._appended.append(message.id)
        return True

    def _flush_appended(self) -> None:
        with self._appended_lock:
            done, self._appended = self._appended, []
        if done:
            try:
                with self._log_conn.transaction():
                    self.log.working_done(done)
            except BaseException:
                with self._appended_lock:
                    self._appended[:0] = done
                raise

    def end_session(self, session_id: str, *, consolidate: bool = True) -> int:
        """Mark the session ended and (by default) consolidate it now; returns segments made.

        The segments are in libSQL and BM25 at once. With ``[memory.consolidation]
        index_on_end = "batch"`` (the default) they are embedded here only once a full
        outbox batch is queued, else by the next outbox pass (``maintenance``, the
        backend's outbox job, the next open): one session's few segments embedded alone
        cost the encoder about a third more each (docs/benchmarks.md, "Ingest"). ``"now"``
        embeds them before returning.
        """
        self._check_writable("end_session")
        check_id(session_id, "session_id")
        if not consolidate:
            with self._log_conn.transaction():
                self.log.end_session(session_id, self.clock())
            return 0
        made = self._consolidator.consolidate(session_id, trigger="session_end", end=True)
        if made and (self._index_on_end == "now" or self._consolidator.index_due()):
            self._index()
        return made

    # ---- consolidation -------------------------------------------------------------

    def consolidate(self, session_id: str) -> int:
        """Turn the session's unconsolidated messages into long-term segments, exactly once.

        Returns the segments made (0 when another caller already claimed the messages).
        Embedding follows through the outbox.
        """
        self._check_writable("consolidate")
        check_id(session_id, "session_id")
        made = self._consolidator.consolidate(session_id)
        if made:
            self._index()
        return made

    # ---- reading -------------------------------------------------------------------

    def search(
        self,
        user_id: str,
        query: str,
        k: int = 10,
        *,
        mode: SearchMode = "hybrid",
        conversation_id: str | None = None,
        role: str | None = None,
        start: float | None = None,
        end: float | None = None,
        min_score: float | None = None,
        source: SegmentSource | None = None,
        now: float | None = None,
    ) -> list[SearchHit]:
        """The ``k`` best long-term memories of ``user_id`` for ``query`` (read-only).

        ``source`` keeps conversations or files only (None: both). A relative time in the
        query ("last weekend") is resolved against ``now`` (default: the manager's clock)
        into a window that boosts what it holds (``SearchHit.time_window``).
        """
        self._check_open()
        check_id(user_id, "user_id")
        check_text(query, "query", limit=MAX_QUERY)
        if conversation_id is not None:
            check_id(conversation_id, "conversation_id")
        return self.semantic.search(
            user_id,
            query,
            k,
            mode=mode,
            conversation_id=conversation_id,
            role=role,
            start=start,
            end=end,
            min_score=min_score,
            now=self.clock() if now is None else check_time(now, "now"),
            source=source,
        )

    def recent(self, user_id: str, session_id: str, limit: int) -> list[WorkingMessage]:
        """The session's newest ``limit`` messages of ``user_id``, newest first (read-only).

        Working memory, plus, after an LMDB append failed in this process, the log's
        messages still waiting for it, so a recent turn is never missing. (A crashed
        process's are replayed by the next open; another live process replays its own.)
        """
        self._check_open()
        check_id(user_id, "user_id")
        check_id(session_id, "session_id")
        check_count(limit, "limit")
        working = [m for m in self.working.recent(session_id, limit) if m.user_id == user_id]
        if not self._unappended:
            return working  # the usual case: nothing of this process is waiting for LMDB
        have = {m.id for m in working}
        now = self.clock()
        extra = [
            _as_working(m, self.working.ttl)
            for m in self.log.pending_working(session_id=session_id, limit=limit)
            if m.id not in have and m.user_id == user_id and m.timestamp + self.working.ttl > now
        ]
        if not extra:
            return working
        merged = sorted(working + extra, key=lambda m: m.created_at, reverse=True)
        return merged[:limit]

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
        self._check_open()
        check_id(user_id, "user_id")
        check_id(session_id, "session_id")
        check_text(query, "query", limit=MAX_QUERY)
        section = self.config.section("memory.context")
        budget = check_count(
            max_tokens if max_tokens is not None else section["max_tokens"], "max_tokens"
        )
        if budget < 1:
            raise InvalidInput("max_tokens must be positive")
        n_recent = check_count(
            recent if recent is not None else section["recent_messages"], "recent"
        )
        n_memories = check_count(k if k is not None else section["memories_k"], "k")
        working = self.recent(user_id, session_id, n_recent)  # newest first
        hits = self.semantic.search(
            user_id, query, n_memories, min_score=min_score, now=self.clock()
        )
        facts = rank_facts(
            FactRepository(self._core).list(user_id, limit=500), query, int(section["facts_k"])
        )
        return assemble(working, hits, facts, budget)

    def record_context_use(
        self,
        user_id: str,
        bundle: ContextBundle,
        *,
        seconds: float | None = None,
        context_id: str | None = None,
    ) -> None:
        """Record that ``bundle`` went into the companion's prompt (a write; the caller that
        sends the prompt calls it, so ``assemble_context`` stays a read).

        Each file it holds gets a ``file_access_patterns`` row (what the file index ranks
        by), and the analytics side records which segments and facts were used and how
        long assembling took (``seconds``). The analytics record never fails the call.
        """
        self._check_writable("record_context_use")
        check_id(user_id, "user_id")
        if context_id is not None:
            check_id(context_id, "context_id")
        if seconds is not None:
            check_number(seconds, "seconds", low=0.0, high=86_400.0)
        if not isinstance(bundle, ContextBundle):
            raise InvalidInput("bundle must be a ContextBundle from assemble_context")
        files = [m.source_ref for m in bundle.memories if m.source == "file" and m.source_ref]
        for file_id in dict.fromkeys(files):
            try:
                self.files.record_access(user_id, file_id, context_id=context_id)
            except NotFound:
                continue  # re-indexed or deleted since the bundle was assembled
        self.analytics.record_context(user_id, bundle, 0.0 if seconds is None else seconds)

    # ---- maintenance ---------------------------------------------------------------

    def maintenance(self) -> MaintenanceReport:
        """Sweep, expire sessions, repair, consolidate idle sessions, replay the outbox."""
        self._check_writable("maintenance")
        now = self.clock()
        swept = self.working.sweep(now=now)
        with self._log_conn.transaction():
            expired = self.log.expire_sessions(now)
        repaired = self.repair(full=False)
        idle = float(self.config.get("memory.consolidation.idle_minutes")) * 60.0
        sessions = self.log.sessions_to_consolidate(now - idle)
        made = self._consolidator.consolidate_many(sessions, trigger="idle")
        outbox = self._index()
        analyzed = self.semantic.analyze_pending(limit=_ANALYZE_PER_RUN)
        return MaintenanceReport(
            swept=swept,
            consolidated_sessions=len(sessions),
            segments_created=made,
            outbox_processed=0 if outbox is None else outbox.indexed + outbox.deleted,
            outbox_remaining=self.semantic.pending_outbox() if outbox is None else outbox.remaining,
            sessions_expired=expired,
            repaired=repaired.total,
            segments_analyzed=analyzed,
        )

    def repair(self, *, full: bool = True) -> RepairReport:
        """Make every derived store agree with the log again (after a crash or failed write).

        In order: finish pending forgets (so nothing below re-creates forgotten data),
        finish pending consolidations, replay the working outbox into LMDB, queue index work
        for segments that have none. ``full`` (on open) also removes messages LMDB holds
        that the log does not, and finishes consolidations however recent (maintenance
        leaves those of the last minute to the process that is probably still on them).
        """
        self._check_writable("repair")
        forgets = self._forgetter.finish_pending()
        if forgets:
            self._discard_damaged_copies()
        older_than = None if full else self.clock() - 60.0
        consolidated = self._consolidator.finish_pending(older_than=older_than)
        replayed = self._replay_working(full=full)
        phantoms = restored = 0
        if full:
            held = self._working_by_session()
            phantoms = self._remove_working_phantoms(held)
            restored = self._restore_working(held)
        requeued = self.semantic.requeue_unindexed()
        report = RepairReport(
            forgets_finished=forgets,
            consolidations_finished=consolidated,
            working_replayed=replayed,
            working_phantoms_removed=phantoms,
            working_restored=restored,
            segments_requeued=requeued,
        )
        if report.total:
            log.info("repair: %s", report)
        return report

    def _replay_working(self, *, full: bool) -> int:
        """Append what the log holds and working memory was never given (see ``repair``).

        While another store has the data dir open, a row queued in the last
        ``_REPLAY_GRACE_S`` seconds is left alone: its writer is probably about to append
        it, and appending it here too would put it in working memory twice.
        """
        self._flush_appended()
        replayed = 0
        now = self.clock()
        # On open nothing of this manager is in flight; during maintenance its own writer
        # threads may be, and other stores may be at any time.
        grace = _REPLAY_GRACE_S if (not full or self.store.other_holders()) else None
        while True:
            pending = self.log.pending_working(limit=500, queued_before=grace)
            if not pending:
                return replayed
            done: list[str] = []
            for message in pending:
                if message.timestamp + self.working.ttl <= now:
                    done.append(message.id)  # expired anyway: nothing to cache
                    continue
                # InvalidInput: LMDB refuses it (stale state of another owner); the log keeps it.
                with contextlib.suppress(InvalidInput):
                    self._write_working(message, unique=True)
                done.append(message.id)
                replayed += 1
            with self._log_conn.transaction():
                self.log.working_done(done)
            with self._appended_lock:
                self._unappended.difference_update(done)
            if len(pending) < 500:
                return replayed

    def _working_by_session(self) -> dict[str, list[str]]:
        by_session: dict[str, list[str]] = {}
        for session_id, message_id in self.working.message_ids():
            by_session.setdefault(session_id, []).append(message_id)
        return by_session

    def _remove_working_phantoms(self, by_session: dict[str, list[str]]) -> int:
        """Delete working-memory messages the log does not hold (left by older code)."""
        removed = 0
        for session_id, ids in by_session.items():
            known = {
                str(r["id"])
                for r in self._log_conn.fetch_all(
                    "SELECT id FROM messages WHERE session_id = ?", (session_id,)
                )
            }
            phantoms = [i for i in ids if i not in known]
            if phantoms:
                removed += self.working.delete_messages(session_id, phantoms)
        return removed

    def _restore_working(self, held: dict[str, list[str]]) -> int:
        """Give working memory the log's live messages it lacks: it is only a cache.

        What puts it there: a deleted, replaced or quarantined environment (a damaged one
        is moved aside on open and a fresh one made), or a copy restored from elsewhere.
        Skipped while another store has the data dir open: its appends in flight would be
        made twice (the outbox replay covers those, with its grace period).
        """
        if self.store.other_holders():
            return 0
        now = self.clock()
        since = now - self.working.ttl
        restored = 0
        for session_id in self.log.live_sessions(now):
            have = set(held.get(session_id, ()))
            for message in self.log.messages_of_session(session_id, since=since):
                if message.id in have:
                    continue
                # InvalidInput: LMDB refuses it (stale state of another owner); the log keeps it.
                with contextlib.suppress(InvalidInput):
                    self._write_working(message, unique=True)
                    restored += 1
        if restored:
            log.warning("working memory: %d messages restored from the log", restored)
        return restored

    def _index(self) -> OutboxResult | None:
        """Replay the semantic outbox; None if the dense index failed (the work stays queued).

        The segments are committed already, so a Chroma failure (a damaged directory, a
        server that is down) must not fail the consolidation or maintenance that made them;
        search meanwhile uses the exact scan, and the next maintenance retries.
        """
        try:
            return self.semantic.process_outbox()
        except SemanticMemoryError as exc:
            log.warning("semantic outbox: indexing failed (%s); queued", type(exc).__name__)
            return None

    def _checkpoint_all(self) -> None:
        """Every database's WAL into its file and truncated: a forget's deleted pages do
        not stay behind in a WAL (knowledge.db and file_index.db hold user rows too)."""
        for name in self.store.databases:
            if self.store.path_of(name).exists():
                self.store.connection(name).checkpoint("TRUNCATE")

    # ---- forgetting ----------------------------------------------------------------

    def forget(
        self,
        user_id: str,
        *,
        conversation_id: str | None = None,
        message_id: str | None = None,
    ) -> ForgetReport:
        """Delete a user, one of their conversations, or one message, from every store.

        The log first (with a ledger row), then working memory, segments and FTS5 (then
        ``optimize``), Chroma (purged by a rebuild), facts, feedback, logs, preferences;
        then every WAL is checkpointed. A crash part way is finished by the next open.
        """
        self._check_writable("forget")
        self._flush_appended()
        report = self._forgetter.forget(
            user_id, conversation_id=conversation_id, message_id=message_id
        )
        self._discard_damaged_copies()
        return report

    def _forget_elsewhere(self, entry: LedgerEntry) -> dict[str, int]:
        """The forget's steps in the other stores (``Forgetter.apply`` calls it, also when
        it replays a pending forget): the file index, knowledge.db, the analytics copy."""
        counts: dict[str, int] = {}
        if entry.grain == "user":
            counts["files"] = self.files.purge_user(entry.user_id)
            counts["knowledge"] = self.knowledge.purge_user(entry.user_id)
            counts["analytics"] = self.analytics.purge_user(entry.user_id)
            return counts
        if entry.grain == "conversation" and entry.conversation_id is not None:
            counts["knowledge"] = self.knowledge.purge_conversation(
                entry.user_id, entry.conversation_id
            )
        if self.analytics.path.exists():
            # The copy follows the log: the export removes what the log no longer has
            # and rebuilds the file, so no removed row stays in one of its blocks.
            counts["analytics"] = self.analytics.export().rows_removed
        return counts

    def _discard_damaged_copies(self) -> None:
        """Delete working-memory environments moved aside as damaged.

        They hold sealed entries (no plaintext) of whoever was in working memory then,
        possibly of the user just forgotten, and a damaged file cannot be purged entry by
        entry: after a forget it goes whole. (A damaged Chroma index is never kept.)
        """
        memory = self.store.layout.working_memory.parent
        for copy in memory.glob(self.store.layout.working_memory.name + ".damaged-*"):
            shutil.rmtree(copy, ignore_errors=True)

    # ---- operations (aico.operations: imported on use, they build on this class) --------

    def backup(self, **options: Any) -> Any:
        """``aico.operations.create_backup`` of this data dir (``BackupReport``)."""
        from aico.operations import create_backup

        self._check_open()
        if not self.read_only:
            self._flush_appended()
        return create_backup(self.store, config=self.config, **options)

    def export(self, user_id: str, path: str | Path, **options: Any) -> Any:
        """``aico.operations.export_user``: one user's memory as a portable archive."""
        from aico.operations import export_user

        self._check_open()
        check_id(user_id, "user_id")
        return export_user(self.store, user_id, path, config=self.config, **options)

    def import_(self, path: str | Path, **options: Any) -> Any:
        """``aico.operations.import_user``: bring an exported user into this data dir."""
        from aico.operations import import_user

        self._check_writable("import_")
        return import_user(self, path, **options)

    def forget_user(self, user_id: str) -> ForgetReport:
        """``forget(user_id)``: everything of the user, everywhere."""
        return self.forget(user_id)

    # ---- the other stores' faces (imported on use; each is one small coordinator) -------

    @property
    def files(self) -> FileMemory:
        """The file index: folders indexed into ``file_index.db`` and semantic memory."""
        self._check_open()
        if self._files is None:
            from aico.ai.memory.files import FileMemory

            self._files = FileMemory(self)
        return self._files

    @property
    def knowledge(self) -> Knowledge:
        """The knowledge store: decisions, components, patterns, context feedback."""
        self._check_open()
        if self._knowledge is None:
            from aico.ai.memory.knowledge import Knowledge

            self._knowledge = Knowledge(self)
        return self._knowledge

    @property
    def analytics(self) -> Analytics:
        """The analytical side (DuckDB): activity, usage, memory use, system statistics."""
        self._check_open()
        if self._analytics is None:
            from aico.analytics import Analytics

            self._analytics = Analytics(self)
        return self._analytics


def _require_current(store: DataStore) -> None:
    """Read-only opens migrate nothing, so they need every schema at the code's version."""
    behind = sorted(
        d.database for d in store.status() if not d.exists or any(s.pending for s in d.schemas)
    )
    if behind:
        raise ReadOnly(
            f"the data dir's schemas are behind this code ({', '.join(behind)}); "
            "open it writable once to migrate"
        )


def _as_working(message: LoggedMessage, ttl: float) -> WorkingMessage:
    return WorkingMessage(
        id=message.id,
        session_id=message.session_id,
        user_id=message.user_id,
        role=message.role,
        content=message.content,
        created_at=message.timestamp,
        expires_at=message.timestamp + ttl,
        metadata={},
        conversation_id=message.conversation_id,
    )
