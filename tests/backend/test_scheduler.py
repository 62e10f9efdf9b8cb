"""The scheduler on a simulated clock: each job on its interval, idle sessions consolidated,
working memory swept, state and history in the tasks table, interrupted jobs retried,
failures retried with backoff, never two runs at once."""

from __future__ import annotations

import asyncio
import time

import pytest
from backend_support import PASSPHRASE, backend_test_config, make_data_dir

from aico.ai.embeddings import HashingEncoder
from aico.ai.memory import AsyncMemoryManager, MemoryManager
from aico.data.repositories import TaskRepository
from aico.errors import InvalidInput
from aico_backend import BackendSettings, Job, Scheduler, Service

T0 = 1_900_000_000.0


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _config():
    return backend_test_config(
        scheduler={
            "enabled": True,
            "sweep_interval_s": 300.0,
            "maintenance_interval_s": 300.0,
            "outbox_interval_s": 60.0,
            "retry_s": 10.0,
            "operations": False,
        }
    )


def _service(data_dir, clock, *, create: bool) -> Service:
    config = _config()
    if create:
        manager = make_data_dir(data_dir, config)
        manager.close()
    manager = MemoryManager.open(
        data_dir, passphrase=PASSPHRASE, config=config, encoder=HashingEncoder(), clock=clock
    )
    return Service(
        AsyncMemoryManager.from_manager(manager), BackendSettings.from_config(config), clock=clock
    )


def test_jobs_run_on_their_intervals_and_do_their_work(tmp_path):
    clock = Clock()

    async def scenario():
        svc = _service(tmp_path / "data", clock, create=True)
        scheduler = svc.scheduler
        assert scheduler is not None
        try:
            await scheduler.prepare()
            await svc.memory.store_message("maya", "s1", "user", "I planted tomatoes today")
            # New jobs are due at once.
            assert sorted(await scheduler.run_due()) == [
                "maintenance",
                "semantic-outbox",
                "working-sweep",
            ]
            clock.now += 30
            assert await scheduler.run_due() == []
            clock.now += 31  # 61 s: only the outbox (every 60 s)
            assert await scheduler.run_due() == ["semantic-outbox"]
            assert svc.memory.sync.semantic.count("maya") == 0  # not idle for 30 min yet
            clock.now = T0 + 31 * 60  # the session has been idle for 31 minutes
            ran = await scheduler.run_due()
            assert "maintenance" in ran
            assert svc.memory.sync.semantic.count("maya") == 1  # consolidated, once
            jobs = {j["name"]: j for j in await scheduler.status()}
            assert jobs["maintenance"]["last_result"]["segments_created"] == 1
            assert jobs["maintenance"]["status"] == "completed"
            assert jobs["maintenance"]["next_run_at"] == pytest.approx(clock.now + 300)
            # A day later the working-memory entry has expired and the sweep removes it.
            clock.now = T0 + 25 * 3600
            await scheduler.run_due()
            jobs = {j["name"]: j for j in await scheduler.status()}
            # Maintenance sweeps first too; between them the entry is gone.
            swept = jobs["working-sweep"]["last_result"]["swept"]
            assert swept + jobs["maintenance"]["last_result"]["swept"] == 1
            assert svc.memory.sync.working.recent("s1", 10) == []
            history = await svc.run(svc.tasks.history, "maintenance", limit=50)
            assert len(history) == 3 and all(r.status == "completed" for r in history)
            assert all(r.payload["duration_s"] >= 0 for r in history)
        finally:
            await svc.stop()

    asyncio.run(scenario())


def test_schedules_survive_a_restart_and_an_interrupted_job_is_retried(tmp_path):
    clock = Clock()

    async def first_run():
        svc = _service(tmp_path / "data", clock, create=True)
        try:
            await svc.scheduler.prepare()
            await svc.scheduler.run_due()
            # The process "dies" while maintenance runs: its row says running.
            clock.now += 400
            assert (await svc.run(svc.tasks.start, "maintenance")) is not None
        finally:
            await svc.stop()

    async def second_run():
        svc = _service(tmp_path / "data", clock, create=False)
        try:
            await svc.scheduler.prepare()
            assert svc.scheduler.recovered == ["maintenance"]
            jobs = {j["name"]: j for j in await svc.scheduler.status()}
            assert jobs["maintenance"]["status"] == "failed"
            assert "interrupted" in jobs["maintenance"]["last_error"]
            # The others kept their place in time: the sweep is due at T0 + 300.
            assert jobs["working-sweep"]["next_run_at"] == pytest.approx(T0 + 300, abs=1)
            ran = await svc.scheduler.run_due()
            assert "maintenance" in ran
            jobs = {j["name"]: j for j in await svc.scheduler.status()}
            assert jobs["maintenance"]["status"] == "completed"
            assert (
                jobs["maintenance"]["attempts"] == 0 and jobs["maintenance"]["last_error"] is None
            )
        finally:
            await svc.stop()

    asyncio.run(first_run())
    asyncio.run(second_run())


def test_failures_are_retried_with_backoff(store):
    clock = Clock()
    outcomes = [InvalidInput("first"), InvalidInput("second"), None]
    calls = []

    async def flaky():
        calls.append(clock.now)
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome
        return {"done": 1}

    async def offload(fn, *args, **kwargs):
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def scenario():
        tasks = TaskRepository(store.connection("core"), clock=clock)
        scheduler = Scheduler(
            tasks, [Job("flaky", 3600.0, flaky)], offload=offload, clock=clock, retry_s=10.0
        )
        await scheduler.prepare()
        assert await scheduler.run_due() == ["flaky"]
        job = tasks.get("flaky")
        assert (job.status, job.attempts, job.last_error) == ("failed", 1, "InvalidInput: first")
        assert job.next_run_at == pytest.approx(T0 + 10)
        clock.now += 10
        await scheduler.run_due()
        job = tasks.get("flaky")
        assert job.attempts == 2 and job.next_run_at == pytest.approx(clock.now + 20)
        clock.now += 20
        await scheduler.run_due()
        job = tasks.get("flaky")
        assert (job.status, job.attempts, job.last_error) == ("completed", 0, None)
        assert job.payload == {"last_result": {"done": 1}}
        assert [r.status for r in tasks.history("flaky")] == ["completed", "failed", "failed"]

    asyncio.run(scenario())
    assert calls == [T0, T0 + 10, T0 + 30]


def test_a_job_never_overlaps_itself(store):
    clock = Clock()
    runs = []

    async def offload(fn, *args, **kwargs):
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def scenario():
        gate = asyncio.Event()

        async def slow():
            runs.append(clock.now)
            await gate.wait()
            return None

        tasks = TaskRepository(store.connection("core"), clock=clock)
        scheduler = Scheduler(tasks, [Job("slow", 1.0, slow)], offload=offload, clock=clock)
        other = Scheduler(tasks, [Job("slow", 1.0, slow)], offload=offload, clock=clock)
        await scheduler.prepare()
        first = asyncio.create_task(scheduler.run_due())
        while not runs:
            await asyncio.sleep(0.01)
        clock.now += 5  # due again while still running: neither loop may start it
        assert await other.run_due() == []
        second = asyncio.create_task(scheduler.run_due())
        await asyncio.sleep(0.05)
        assert len(runs) == 1 and tasks.get("slow").status == "running"
        gate.set()
        assert await first == ["slow"]
        assert await second == []  # waited for the first pass; by then it was not due
        assert len(runs) == 1

    asyncio.run(scenario())


def test_scheduler_in_health_over_http(tmp_path):
    from backend_support import start_api

    api = start_api(tmp_path / "data", _config())
    try:
        with api.client("admin") as admin:
            for _ in range(100):
                health = admin.get("/v1/health").json()
                jobs = {j["name"]: j for j in health["scheduler"]["jobs"]}
                if (
                    jobs
                    and all(j["last_run_at"] for j in jobs.values())
                    and all(j["status"] == "completed" for j in jobs.values())
                ):
                    break
                time.sleep(0.05)
            assert health["scheduler"]["running"] is True
            assert set(jobs) == {"working-sweep", "semantic-outbox", "maintenance"}
            for job in jobs.values():
                assert job["status"] == "completed" and job["next_run_at"] > job["last_run_at"]
            listed = admin.get("/v1/tasks").json()
            assert {j["task_id"] for j in listed["jobs"]} == set(jobs)
            assert len(listed["history"]) >= 3
    finally:
        api.server.stop()


def test_the_storage_jobs_and_the_scheduled_backup_run_in_the_service(tmp_path):
    from aico.operations import SERVICE_JOBS, job_interval, list_backups
    from aico.operations.backup import backup_directory

    clock = Clock()
    config = backend_test_config(scheduler={"enabled": True, "operations": True})

    async def scenario():
        manager = make_data_dir(tmp_path / "data", config)
        manager.close()
        manager = MemoryManager.open(
            tmp_path / "data",
            passphrase=PASSPHRASE,
            config=config,
            encoder=HashingEncoder(),
            clock=clock,
        )
        svc = Service(
            AsyncMemoryManager.from_manager(manager),
            BackendSettings.from_config(config),
            clock=clock,
        )
        try:
            await svc.scheduler.prepare()
            ran = await svc.scheduler.run_due()
            assert set(SERVICE_JOBS) | {"backup"} <= set(ran)
            assert "lmdb-compact" not in ran  # needs working memory closed
            jobs = {j["name"]: j for j in await svc.scheduler.status()}
            for name in (*SERVICE_JOBS, "backup"):
                assert jobs[name]["status"] == "completed", name
            for name in SERVICE_JOBS:
                every = job_interval(name, config)
                assert jobs[name]["next_run_at"] == pytest.approx(clock.now + every, abs=1)
            backups = list_backups(backup_directory(manager.store.layout, config))
            assert len(backups) == 1 and jobs["backup"]["last_result"]["files"] > 0
            # Not due again until backup_interval (24 h) has passed.
            clock.now += 25 * 3600
            assert "backup" in await svc.scheduler.run_due()
            assert len(list_backups(backup_directory(manager.store.layout, config))) == 2
        finally:
            await svc.stop()

    asyncio.run(scenario())
