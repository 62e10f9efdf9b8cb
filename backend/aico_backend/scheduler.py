"""``Scheduler``: the service's background jobs, kept in the core ``tasks`` table.

Three jobs of the service (``default_jobs``), each on its interval from ``[backend.scheduler]``:

- ``working-sweep``: drop expired working-memory entries (``WorkingMemoryStore.sweep``);
- ``semantic-outbox``: index segments still queued (``SemanticMemoryStore.process_outbox``);
- ``maintenance``: ``MemoryManager.maintenance`` (expire sessions, repair from the log,
  consolidate idle sessions, then the outbox and a sweep again).

With ``operations = true`` (the default) also the storage specification's jobs a live
service can run (``operation_jobs``: ``aico.operations.SERVICE_JOBS`` on their own periods,
recorded under the same names ``aico maintenance run`` uses) and ``backup`` when one is due.

One loop runs them one at a time, so no job ever overlaps itself or another; each run is
claimed in the table first (``TaskRepository.start``), so the state is visible
(``/v1/health``, ``aico tasks list``) and survives a restart. A job still ``running`` when
the process died is retried at the next start (``recover``). A failed run is retried after
``retry_s``, doubling per consecutive failure, never later than its interval.

Time comes from ``clock`` and the loop only ever waits for the next due time, so a test
drives it with a simulated clock through ``run_due`` without sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, is_dataclass
from typing import Any, TypeVar

from aico.ai.memory import AsyncMemoryManager
from aico.data.repositories import Task, TaskRepository
from aico.errors import AicoError
from aico.operations import (
    SERVICE_JOBS,
    JobReport,
    job_interval,
    run_job,
    run_scheduled_backup,
)
from aico.operations.backup import BackupSettings
from aico_backend.errors import log_unexpected
from aico_backend.settings import SchedulerSettings

__all__ = ["Job", "Scheduler", "default_jobs", "describe_error", "operation_jobs"]

log = logging.getLogger("aico_backend.scheduler")

T = TypeVar("T")
Offload = Callable[..., Awaitable[Any]]
_MAX_WAIT_S = 60.0


@dataclass(frozen=True)
class Job:
    """A named job: ``run`` returns counts (shown in the history), never user content."""

    name: str
    every: float
    run: Callable[[], Awaitable[Mapping[str, Any] | None]]


def describe_error(exc: BaseException) -> str:
    """The error as the tasks table keeps it: aico's message (never content) or a type."""
    if isinstance(exc, AicoError):
        return f"{type(exc).__name__}: {exc}"
    return type(exc).__name__


def _counts(report: Any) -> dict[str, Any]:
    if is_dataclass(report) and not isinstance(report, type):
        return {k: v for k, v in asdict(report).items() if isinstance(v, int | float | bool)}
    return {}


def default_jobs(
    memory: AsyncMemoryManager,
    settings: SchedulerSettings,
    offload: Offload,
    clock: Callable[[], float],
) -> list[Job]:
    """The sweep, the semantic outbox and maintenance, over ``memory``'s public API."""
    core = memory.sync

    async def sweep() -> Mapping[str, Any]:
        return {"swept": await offload(core.working.sweep, now=clock())}

    async def outbox() -> Mapping[str, Any]:
        return _counts(await offload(core.semantic.process_outbox))

    async def maintenance() -> Mapping[str, Any]:
        return _counts(await memory.maintenance())

    jobs = [
        Job("working-sweep", settings.sweep_interval_s, sweep),
        Job("semantic-outbox", settings.outbox_interval_s, outbox),
        Job("maintenance", settings.maintenance_interval_s, maintenance),
    ]
    if settings.operations:
        jobs += operation_jobs(memory, offload, clock)
    return jobs


def operation_jobs(
    memory: AsyncMemoryManager, offload: Offload, clock: Callable[[], float]
) -> list[Job]:
    """The storage specification's jobs a live service can run (``SERVICE_JOBS``: retention,
    optimize, index compaction, archival, health), each on its own period, plus ``backup``
    once the newest backup is ``[storage.backup] backup_interval`` old ("0s": never)."""
    manager = memory.sync
    config = manager.config

    def operation(name: str) -> Callable[[], Awaitable[Mapping[str, Any]]]:
        async def run() -> Mapping[str, Any]:
            report: JobReport = await offload(run_job, manager, name)
            return report.result()

        return run

    async def backup() -> Mapping[str, Any]:
        done = await offload(run_scheduled_backup, manager.store, config, now=clock())
        if done is None:
            return {"skipped": "not due"}
        return {
            "files": len(done.files),
            "archive_bytes": done.archive_bytes,
            "pruned": len(done.pruned),
        }

    jobs = [Job(name, job_interval(name, config), operation(name)) for name in SERVICE_JOBS]
    every = BackupSettings.from_config(config).backup_interval_s
    if every > 0:
        jobs.append(Job("backup", every, backup))
    return jobs


class Scheduler:
    """Runs ``jobs`` when due, one at a time; see the module docstring."""

    def __init__(
        self,
        tasks: TaskRepository,
        jobs: Sequence[Job],
        *,
        offload: Offload,
        clock: Callable[[], float] = time.time,
        retry_s: float = 30.0,
        history_keep: int = 50,
    ) -> None:
        self.tasks = tasks
        self.jobs = {job.name: job for job in jobs}
        self.offload = offload
        self.clock = clock
        self.retry_s = retry_s
        self.history_keep = history_keep
        self.recovered: list[str] = []
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._stopping = False
        self._loop_task: asyncio.Task[None] | None = None

    # ---- lifecycle -------------------------------------------------------------------

    async def prepare(self) -> None:
        """Retry what a crash interrupted and (re)register every job's schedule."""
        self.recovered = await self.offload(self.tasks.recover)
        if self.recovered:
            log.warning("scheduler: retrying interrupted job(s): %s", ", ".join(self.recovered))
        for job in self.jobs.values():
            await self.offload(self.tasks.schedule, job.name, job.name, every=job.every)

    async def start(self) -> None:
        """``prepare``, then run the loop in the background until ``stop``."""
        await self.prepare()
        self._loop_task = asyncio.create_task(self._loop(), name="aico-scheduler")

    async def stop(self) -> None:
        """Let the running job finish, then end the loop; idempotent."""
        self._stopping = True
        self._wake.set()
        task, self._loop_task = self._loop_task, None
        if task is not None:
            await asyncio.shield(task)

    @property
    def running(self) -> bool:
        return self._loop_task is not None and not self._loop_task.done()

    # ---- running ---------------------------------------------------------------------

    async def run_due(self) -> list[str]:
        """Run every job due at ``clock()``, one after another; returns their names."""
        async with self._lock:
            due = await self.offload(self.tasks.due, self.clock())
            ran = []
            for task in due:
                job = self.jobs.get(task.task_id)
                if job is None or self._stopping:
                    continue
                if await self._run(job):
                    ran.append(job.name)
            return ran

    async def _run(self, job: Job) -> bool:
        claimed: Task | None = await self.offload(self.tasks.start, job.name)
        if claimed is None:
            return False  # running elsewhere
        started = self.clock()
        try:
            result = await job.run()
        except Exception as exc:
            if not isinstance(exc, AicoError):
                log_unexpected(exc, f"job {job.name}")
            error = describe_error(exc)
            delay = min(job.every, self.retry_s * 2 ** max(claimed.attempts - 1, 0))
            log.warning("scheduler: %s failed (%s); retry in %.0fs", job.name, error, delay)
            await self.offload(self.tasks.fail, job.name, error, next_run_at=self.clock() + delay)
            await self._record(claimed, "failed", started, error=error)
            return True
        await self.offload(
            self.tasks.complete,
            job.name,
            next_run_at=self.clock() + job.every,
            result=dict(result or {}) or None,
        )
        await self._record(claimed, "completed", started, result=result)
        return True

    async def _record(
        self,
        claimed: Task,
        status: str,
        started: float,
        *,
        error: str | None = None,
        result: Mapping[str, Any] | None = None,
    ) -> None:
        with contextlib.suppress(AicoError):
            await self.offload(
                self.tasks.record_run,
                claimed,
                status=status,
                started_at=started,
                finished_at=self.clock(),
                error=error,
                result=result,
                keep=self.history_keep,
            )

    async def _loop(self) -> None:
        while not self._stopping:
            try:
                await self.run_due()
                delay = await self._until_next()
            except Exception as exc:  # the table itself failed (disk full...): keep going
                if not isinstance(exc, AicoError):
                    log_unexpected(exc, "scheduler loop")
                else:
                    log.warning("scheduler: %s", describe_error(exc))
                delay = self.retry_s
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)

    async def _until_next(self) -> float:
        jobs: list[Task] = await self.offload(self.tasks.jobs)
        times = [t.next_run_at for t in jobs if t.task_id in self.jobs and t.next_run_at]
        if not times:
            return _MAX_WAIT_S
        return min(max(min(times) - self.clock(), 0.05), _MAX_WAIT_S)

    # ---- status ----------------------------------------------------------------------

    async def status(self) -> list[dict[str, Any]]:
        """Each job's state, for ``/v1/health``."""
        jobs: list[Task] = await self.offload(self.tasks.jobs)
        return [
            {
                "name": t.task_id,
                "schedule": t.schedule,
                "status": t.status,
                "attempts": t.attempts,
                "last_run_at": t.last_run_at,
                "next_run_at": t.next_run_at,
                "last_error": t.last_error,
                "last_result": t.payload.get("last_result"),
            }
            for t in jobs
            if t.task_id in self.jobs
        ]
