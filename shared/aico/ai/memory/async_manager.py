"""``AsyncMemoryManager``: the async face of ``MemoryManager``, for an asyncio backend.

One core, two faces (httpx's ``Client``/``AsyncClient``): the async face holds a
``MemoryManager`` (``.sync``) and runs each call of it on a worker thread of its own small,
bounded ``ThreadPoolExecutor``. It validates, stores and reads nothing itself, so the two
faces cannot drift; ``tests/ai/memory/test_async_manager.py`` fails when a public
``MemoryManager`` method has no twin here with the same parameters, defaults and types.

Concurrency. The blocking work never runs on the event loop thread, so the loop keeps
serving while a call runs. libSQL holds the GIL for the length of a statement, so calls do
not run SQL in parallel; what overlaps is the work that releases the GIL (LMDB, ONNX
inference, Chroma), and above all the loop itself, which is never blocked. The executor is
the face's own (``max_workers``, default ``DEFAULT_MAX_WORKERS``): a busy backend queues on
it instead of exhausting the loop's default executor.

Cancellation. Cancelling the task that awaits a call does not interrupt the thread: a call
a worker has started runs to completion and its effects stay (a ``store_message`` whose log
transaction committed is stored); only its result is lost (an error it raises is logged).
A call still queued for a worker when its task is cancelled is dropped and never runs. A
cancelled ``open``/``initialize``/``from_store`` closes the manager it would have returned.

Lifecycle (httpx's ``aclose``): ``aclose()`` or ``async with``. After ``aclose`` every call
raises ``StoreClosed``; ``aclose`` waits for the calls already submitted, then closes the
shared core (the sync face too, whoever opened it) and the executor. It is idempotent, and a
cancelled ``aclose`` still closes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ParamSpec, Self, TypeVar

from aico.ai.embeddings import Encoder
from aico.ai.memory.manager import (
    ContextBundle,
    ForgetReport,
    MaintenanceReport,
    MemoryManager,
    RepairReport,
    RotationReport,
)
from aico.ai.memory.semantic import SearchHit, SearchMode, SegmentSource
from aico.ai.memory.working import WorkingMessage
from aico.config import Config
from aico.data.repositories.conversations import Attachment
from aico.data.store import DataStore
from aico.errors import InvalidInput, StoreClosed

__all__ = ["DEFAULT_MAX_WORKERS", "AsyncMemoryManager"]

log = logging.getLogger(__name__)

DEFAULT_MAX_WORKERS = 4
"""Worker threads per face: more buys little while libSQL statements hold the GIL."""

P = ParamSpec("P")
T = TypeVar("T")
_Future = concurrent.futures.Future[Any]


def _new_executor(max_workers: int) -> concurrent.futures.ThreadPoolExecutor:
    if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
        raise InvalidInput("max_workers must be a positive integer")
    return concurrent.futures.ThreadPoolExecutor(
        max_workers=max_workers, thread_name_prefix="aico-memory"
    )


def _log_orphan(future: _Future) -> None:
    """The outcome nobody awaits any more (its task was cancelled): log an error."""
    if not future.cancelled() and (exc := future.exception()) is not None:
        log.warning("memory call finished after its task was cancelled: %s", type(exc).__name__)


class AsyncMemoryManager:
    """Async twin of ``MemoryManager``: the same methods, ``async``, over the same core.

    ``AsyncMemoryManager(manager)`` (or ``from_manager``) wraps an open ``MemoryManager``
    and takes over its closing; ``open``/``initialize``/``from_store`` open one off the loop.
    See the module docstring for threads, cancellation and closing.
    """

    sync: MemoryManager
    """The shared core: the sync face of the same stores."""

    def __init__(self, manager: MemoryManager, *, max_workers: int = DEFAULT_MAX_WORKERS) -> None:
        self._setup(manager, _new_executor(max_workers))

    def _setup(
        self, manager: MemoryManager, executor: concurrent.futures.ThreadPoolExecutor
    ) -> None:
        self.sync = manager
        self._executor = executor
        self._lock = threading.Lock()  # guards _closed and _inflight against worker callbacks
        self._closed = False
        self._inflight: set[_Future] = set()
        self._closing: _Future | None = None

    # ---- construction --------------------------------------------------------------

    @classmethod
    def from_manager(
        cls, manager: MemoryManager, *, max_workers: int = DEFAULT_MAX_WORKERS
    ) -> Self:
        """Wrap an open ``MemoryManager``; ``aclose`` closes it."""
        return cls(manager, max_workers=max_workers)

    @classmethod
    async def _construct(
        cls,
        max_workers: int,
        factory: Callable[P, MemoryManager],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> Self:
        """Run a blocking ``MemoryManager`` constructor on the new face's own executor."""
        executor = _new_executor(max_workers)
        future = executor.submit(factory, *args, **kwargs)
        try:
            manager = await asyncio.wrap_future(future)
        except asyncio.CancelledError:

            def abandon(done: _Future) -> None:
                try:
                    if not done.cancelled() and done.exception() is None:
                        done.result().close()  # nobody will get it: release its stores
                finally:
                    executor.shutdown(wait=False)

            future.add_done_callback(abandon)
            raise
        except BaseException:
            executor.shutdown(wait=False)
            raise
        face = cls.__new__(cls)
        face._setup(manager, executor)
        return face

    @classmethod
    async def from_store(
        cls,
        store: DataStore,
        *,
        config: Config | None = None,
        encoder: Encoder | None = None,
        clock: Callable[[], float] = time.time,
        read_only: bool = False,
        max_workers: int = DEFAULT_MAX_WORKERS,
    ) -> Self:
        """``MemoryManager.from_store`` off the loop."""
        return await cls._construct(
            max_workers,
            MemoryManager.from_store,
            store,
            config=config,
            encoder=encoder,
            clock=clock,
            read_only=read_only,
        )

    @classmethod
    async def open(
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
        max_workers: int = DEFAULT_MAX_WORKERS,
    ) -> Self:
        """``MemoryManager.open`` off the loop (a backend passes ``passphrase`` or ``env``:
        an interactive prompt would run on a worker thread)."""
        return await cls._construct(
            max_workers,
            MemoryManager.open,
            data_dir,
            passphrase=passphrase,
            config=config,
            encoder=encoder,
            env=env,
            interactive=interactive,
            clock=clock,
            read_only=read_only,
        )

    @classmethod
    async def initialize(
        cls,
        data_dir: str | Path,
        passphrase: str,
        *,
        config: Config | None = None,
        encoder: Encoder | None = None,
        clock: Callable[[], float] = time.time,
        max_workers: int = DEFAULT_MAX_WORKERS,
    ) -> Self:
        """``MemoryManager.initialize`` off the loop."""
        return await cls._construct(
            max_workers,
            MemoryManager.initialize,
            data_dir,
            passphrase,
            config=config,
            encoder=encoder,
            clock=clock,
        )

    @classmethod
    async def rotate_store(
        cls,
        store: DataStore,
        passphrase: str,
        *,
        config: Config | None = None,
        encoder: Encoder | None = None,
    ) -> RotationReport:
        """``MemoryManager.rotate_store`` on a one-off worker thread (it runs to the end)."""
        executor = _new_executor(1)
        try:
            future = executor.submit(
                MemoryManager.rotate_store, store, passphrase, config=config, encoder=encoder
            )
            return await asyncio.wrap_future(future)
        finally:
            executor.shutdown(wait=False)

    # ---- read-only views of the core ---------------------------------------------------

    @property
    def store(self) -> DataStore:
        return self.sync.store

    @property
    def config(self) -> Config:
        return self.sync.config

    @property
    def last_repair(self) -> RepairReport:
        return self.sync.last_repair

    @property
    def closed(self) -> bool:
        return self._closed

    # ---- the one way a call reaches the core ---------------------------------------------

    async def _call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        with self._lock:
            if self._closed:
                raise StoreClosed("the memory manager is closed")
            future = self._executor.submit(fn, *args, **kwargs)
            self._inflight.add(future)
        future.add_done_callback(self._settled)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            # wrap_future cancelled a queued call; a started one runs on: log its error.
            future.add_done_callback(_log_orphan)
            raise

    def _settled(self, future: _Future) -> None:
        with self._lock:
            self._inflight.discard(future)

    # ---- lifecycle -----------------------------------------------------------------

    async def aclose(self) -> None:
        """Refuse new calls, wait for the submitted ones, close the core; idempotent."""
        with self._lock:
            self._closed = True
            if self._closing is None:
                pending = tuple(self._inflight)
                self._closing = self._executor.submit(self._close_core, pending)
                self._closing.add_done_callback(lambda _: self._executor.shutdown(wait=False))
            closing = self._closing
        # Shielded: a cancelled aclose must not cancel the queued close.
        await asyncio.shield(asyncio.wrap_future(closing))

    def _close_core(self, pending: tuple[_Future, ...]) -> None:
        # Every pending call was submitted before this one, so none waits behind it.
        concurrent.futures.wait(pending)
        self.sync.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ---- the async twins, one per public MemoryManager method ------------------------

    async def store_message(
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
        """``MemoryManager.store_message``: the id once the log has committed the message."""
        return await self._call(
            self.sync.store_message,
            user_id,
            session_id,
            role,
            content,
            conversation_id=conversation_id,
            timestamp=timestamp,
            tokens=tokens,
            cost=cost,
            tool_calls=tool_calls,
            tool_results=tool_results,
            metadata=metadata,
            attachments=attachments,
            provider=provider,
            model=model,
            title=title,
        )

    async def end_session(self, session_id: str, *, consolidate: bool = True) -> int:
        """``MemoryManager.end_session``."""
        return await self._call(self.sync.end_session, session_id, consolidate=consolidate)

    async def consolidate(self, session_id: str) -> int:
        """``MemoryManager.consolidate``."""
        return await self._call(self.sync.consolidate, session_id)

    async def search(
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
        """``MemoryManager.search``."""
        return await self._call(
            self.sync.search,
            user_id,
            query,
            k,
            mode=mode,
            conversation_id=conversation_id,
            role=role,
            start=start,
            end=end,
            min_score=min_score,
            source=source,
            now=now,
        )

    async def recent(self, user_id: str, session_id: str, limit: int) -> list[WorkingMessage]:
        """``MemoryManager.recent``."""
        return await self._call(self.sync.recent, user_id, session_id, limit)

    async def assemble_context(
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
        """``MemoryManager.assemble_context``."""
        return await self._call(
            self.sync.assemble_context,
            user_id,
            session_id,
            query,
            max_tokens=max_tokens,
            recent=recent,
            k=k,
            min_score=min_score,
        )

    async def record_context_use(
        self,
        user_id: str,
        bundle: ContextBundle,
        *,
        seconds: float | None = None,
        context_id: str | None = None,
    ) -> None:
        """``MemoryManager.record_context_use``."""
        await self._call(
            self.sync.record_context_use,
            user_id,
            bundle,
            seconds=seconds,
            context_id=context_id,
        )

    async def maintenance(self) -> MaintenanceReport:
        """``MemoryManager.maintenance``."""
        return await self._call(self.sync.maintenance)

    async def repair(self, *, full: bool = True) -> RepairReport:
        """``MemoryManager.repair``."""
        return await self._call(self.sync.repair, full=full)

    async def forget(
        self,
        user_id: str,
        *,
        conversation_id: str | None = None,
        message_id: str | None = None,
    ) -> ForgetReport:
        """``MemoryManager.forget``."""
        return await self._call(
            self.sync.forget, user_id, conversation_id=conversation_id, message_id=message_id
        )

    async def backup(self, **options: Any) -> Any:
        """``MemoryManager.backup``."""
        return await self._call(self.sync.backup, **options)

    async def export(self, user_id: str, path: str | Path, **options: Any) -> Any:
        """``MemoryManager.export``."""
        return await self._call(self.sync.export, user_id, path, **options)

    async def import_(self, path: str | Path, **options: Any) -> Any:
        """``MemoryManager.import_``."""
        return await self._call(self.sync.import_, path, **options)

    async def forget_user(self, user_id: str) -> ForgetReport:
        """``MemoryManager.forget_user``."""
        return await self._call(self.sync.forget_user, user_id)

    async def rotate_master_key(self, passphrase: str) -> RotationReport:
        """``MemoryManager.rotate_master_key`` (on an error the core is closed)."""
        return await self._call(self.sync.rotate_master_key, passphrase)
