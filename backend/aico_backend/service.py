"""``Service``: what one running backend holds, and the one way its handlers reach a store.

The memory manager's verbs are already async (``AsyncMemoryManager``). The repositories
(users, facts, feedback, tokens, tasks, the conversation views) are blocking, so handlers
call them through ``run``, on this service's own small thread pool: the event loop is never
blocked by a statement, and a busy backend queues there instead of growing threads.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from aico.ai.memory import AsyncMemoryManager
from aico.data.repositories import (
    TOKEN_HASH_PURPOSE,
    FactRepository,
    FeedbackRepository,
    TaskRepository,
    TokenRepository,
    UserService,
)
from aico.errors import AicoError
from aico_backend.auth import FailedAuthLimiter, Principal
from aico_backend.conversations import ConversationViews
from aico_backend.errors import Unauthorized
from aico_backend.scheduler import Scheduler, default_jobs
from aico_backend.settings import BackendSettings

__all__ = ["Service"]

log = logging.getLogger("aico_backend")

T = TypeVar("T")
_TOUCH_EVERY_S = 60.0


class Service:
    """The memory manager, the repositories over its stores, the scheduler, the limits."""

    def __init__(
        self,
        memory: AsyncMemoryManager,
        settings: BackendSettings,
        *,
        clock: Callable[[], float] = time.time,
        owns_memory: bool = True,
    ) -> None:
        self.memory = memory
        self.settings = settings
        self.clock = clock
        self.owns_memory = owns_memory
        self.read_only = memory.sync.read_only
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=settings.workers, thread_name_prefix="aico-backend"
        )
        store = memory.store
        core = store.connection("core")
        self.users = UserService(core, clock=clock)
        self.facts = FactRepository(core, clock=clock)
        self.feedback = FeedbackRepository(core, clock=clock)
        self.tokens = TokenRepository(
            core,
            store.master_key.subkey(TOKEN_HASH_PURPOSE),
            key_id=store.master_key.key_id,
            clock=clock,
        )
        self.tasks = TaskRepository(core, clock=clock)
        self.conversations = ConversationViews(
            store.connection("conversations"), self.users, clock=clock
        )
        self.limiter = FailedAuthLimiter(settings.auth_failures_per_minute)
        self.scheduler: Scheduler | None = None
        if settings.scheduler.enabled and not self.read_only:
            self.scheduler = Scheduler(
                self.tasks,
                default_jobs(memory, settings.scheduler, self.run, clock),
                offload=self.run,
                clock=clock,
                retry_s=settings.scheduler.retry_s,
                history_keep=settings.scheduler.history_keep,
            )
        self._touched: dict[str, float] = {}
        self.started_at = clock()
        self.ready = False

    async def run(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Call a blocking function on the service's pool."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    # ---- auth ------------------------------------------------------------------------

    async def authenticate(self, token: str, client: str) -> Principal:
        """The principal of a token, or ``Unauthorized`` (counted against ``client``)."""
        self.limiter.check(client)
        found = await self.run(self.tokens.verify, token)
        if found is None:
            self.limiter.failed(client)
            raise Unauthorized("the token is not valid")
        now = self.clock()
        if not self.read_only and now - self._touched.get(found.token_id, 0.0) >= _TOUCH_EVERY_S:
            self._touched[found.token_id] = now
            with contextlib.suppress(AicoError):
                await self.run(self.tokens.touch, found.token_id, now)
        return Principal(found.token_id, found.user_id)

    # ---- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        if self.scheduler is not None:
            await self.scheduler.start()
        self.ready = True

    async def stop(self) -> None:
        """Scheduler first (its job finishes), then the pool, then the stores (sealed)."""
        self.ready = False
        try:
            if self.scheduler is not None:
                await self.scheduler.stop()
        finally:
            await asyncio.to_thread(self._executor.shutdown, wait=True)
            if self.owns_memory:
                await self.memory.aclose()
