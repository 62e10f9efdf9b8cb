"""AsyncMemoryManager: the async face over one MemoryManager core, on real stores.

pytest-asyncio is not used: each test drives its own loop with ``asyncio.run``.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Self

import pytest

import aico.ai.memory
from aico.ai.embeddings import HashingEncoder
from aico.ai.memory import AsyncMemoryManager, MemoryManager
from aico.data.repositories import UserService
from aico.errors import InvalidInput, NotFound, StoreClosed

PASSPHRASE = "async manager passphrase"
MARKER = "wombat-teapot-4417"


class GatedClock:
    """A clock whose next call, once armed, blocks its (worker) thread until released."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now
        self.threads: set[int] = set()
        self.entered = threading.Event()
        self.release = threading.Event()
        self._armed = False
        self._lock = threading.Lock()

    def arm(self) -> None:
        self.entered.clear()
        self.release.clear()
        with self._lock:
            self._armed = True

    def __call__(self) -> float:
        self.threads.add(threading.get_ident())
        with self._lock:
            hold, self._armed = self._armed, False
        if hold:
            self.entered.set()
            if not self.release.wait(30):
                raise RuntimeError("the gated clock was never released")
        return self.now


@pytest.fixture
def clock() -> GatedClock:
    return GatedClock()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "d"


@pytest.fixture
def manager(data_dir, test_config, clock):
    m = MemoryManager.initialize(
        data_dir, PASSPHRASE, config=test_config, encoder=HashingEncoder(), clock=clock
    )
    UserService(m.store.connection("core")).create_user("A", user_id="a")
    yield m
    clock.release.set()
    m.close()


def message_count(m: MemoryManager) -> int:
    return int(m.store.connection("conversations").fetch_value("SELECT count(*) FROM messages"))


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.005)


def run(test: Callable[[AsyncMemoryManager], Awaitable[None]], m: MemoryManager, **kw) -> None:
    async def main() -> None:
        async with AsyncMemoryManager.from_manager(m, **kw) as face:
            await test(face)

    asyncio.run(main())


# ---- parity: one twin per public MemoryManager method --------------------------------

TWINS = {"close": "aclose", "__enter__": "__aenter__", "__exit__": "__aexit__"}
ASYNC_ONLY = {"from_manager", "aclose", "__aenter__", "__aexit__"}
CONSTRUCTORS = {"from_store", "open", "initialize"}  # also take max_workers; return Self


def public_methods(cls: type) -> dict[str, object]:
    """Public functions and classmethods, plus the context-manager dunders."""
    methods = {}
    for name in dir(cls):
        if name.startswith("_") and name not in {*TWINS, *TWINS.values()}:
            continue
        raw = inspect.getattr_static(cls, name)
        if isinstance(raw, classmethod | staticmethod) or inspect.isfunction(raw):
            methods[name] = raw
    return methods


def test_every_public_method_has_an_async_twin_with_the_same_signature():
    sync_methods = public_methods(MemoryManager)
    async_methods = public_methods(AsyncMemoryManager)
    assert {"store_message", "assemble_context", "rotate_master_key", "open"} <= set(sync_methods)
    for name, sync_raw in sync_methods.items():
        twin = TWINS.get(name, name)
        assert twin in async_methods, f"MemoryManager.{name} has no AsyncMemoryManager.{twin}"
        async_raw = async_methods[twin]
        assert isinstance(sync_raw, classmethod) == isinstance(async_raw, classmethod), name
        assert inspect.iscoroutinefunction(getattr(AsyncMemoryManager, twin)), twin

        want = inspect.signature(getattr(MemoryManager, name), eval_str=True)
        got = inspect.signature(getattr(AsyncMemoryManager, twin), eval_str=True)
        got_params = list(got.parameters.values())
        if name in CONSTRUCTORS:
            assert got_params[-1].name == "max_workers", twin
            assert got_params[-1].kind is inspect.Parameter.KEYWORD_ONLY, twin
            got_params = got_params[:-1]
        assert got_params == list(want.parameters.values()), f"{twin} parameters differ"
        if want.return_annotation is MemoryManager:
            assert got.return_annotation is Self, twin
        else:
            assert got.return_annotation == want.return_annotation, f"{twin} returns another type"
    extra = set(async_methods) - {TWINS.get(n, n) for n in sync_methods} - ASYNC_ONLY
    assert not extra, f"AsyncMemoryManager has methods MemoryManager lacks: {sorted(extra)}"


def test_exported_lazily_from_aico_ai_memory():
    from aico.ai.memory import async_manager

    assert aico.ai.memory.AsyncMemoryManager is async_manager.AsyncMemoryManager
    assert "AsyncMemoryManager" in aico.ai.memory.__all__
    assert aico.ai.memory.__all__ == sorted(aico.ai.memory.__all__)


# ---- behaviour on real stores ---------------------------------------------------------


def test_round_trip_store_end_session_search_context_forget(manager):
    async def test(face: AsyncMemoryManager) -> None:
        assert face.sync is manager and face.store is manager.store
        assert face.config is manager.config and face.last_repair == manager.last_repair
        for role, text in [
            ("user", f"My secret password hint is {MARKER}, remember it."),
            ("assistant", "Noted, I will keep that in mind."),
            ("user", "Also I like hiking in the mountains."),
        ]:
            await face.store_message("a", "s1", role, text)
        assert len(await face.recent("a", "s1", 10)) == 3
        assert await face.end_session("s1") >= 1
        hits = await face.search("a", MARKER, 3)
        assert hits and MARKER in hits[0].text
        fresh = await face.store_message("a", "s2", "user", f"what was {MARKER} again?")
        bundle = await face.assemble_context("a", "s2", MARKER)
        assert [w.id for w in bundle.working] == [fresh]
        assert any(MARKER in h.text for h in bundle.memories)
        assert manager.recent("a", "s2", 5)[0].id == fresh  # the sync face sees it too

        one = await face.forget("a", message_id=fresh)
        assert one.messages == 1 and await face.recent("a", "s2", 5) == []
        report = await face.forget_user("a")
        assert report.messages == 3 and report.segments >= 1
        assert await face.search("a", MARKER, 3) == []
        assert message_count(manager) == 0

    run(test, manager)


def test_typed_errors_cross_the_thread(manager):
    async def test(face: AsyncMemoryManager) -> None:
        with pytest.raises(NotFound, match="create the user first"):
            await face.store_message("nobody", "s", "user", "hi")
        with pytest.raises(InvalidInput, match="role"):
            await face.store_message("a", "s", "narrator", "hi")

    run(test, manager)


def test_concurrent_store_messages_all_land(manager):
    async def test(face: AsyncMemoryManager) -> None:
        ids = await asyncio.gather(
            *(face.store_message("a", f"s{i % 4}", "user", f"message {i}") for i in range(200))
        )
        assert len(set(ids)) == 200
        assert message_count(manager) == 200
        for s in range(4):
            assert len(await face.recent("a", f"s{s}", 100)) == 50

    run(test, manager)


def test_loop_stays_responsive_while_calls_run(manager, clock):
    loop_thread = threading.get_ident()

    async def test(face: AsyncMemoryManager) -> None:
        ticks = 0

        async def heartbeat() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.001)
                ticks += 1
                if ticks == 20:
                    clock.release.set()  # the slow call can only end after 20 loop ticks

        clock.arm()
        beat = asyncio.create_task(heartbeat())
        slow = asyncio.create_task(face.store_message("a", "slow", "user", "slow one"))
        await until(clock.entered.is_set)
        start = ticks
        batch = await asyncio.gather(
            *(face.store_message("a", "fast", "user", f"m{i}") for i in range(50))
        )
        during_batch = ticks - start
        await slow
        beat.cancel()
        assert ticks >= 20 and len(batch) == 50
        assert during_batch >= 1  # the loop kept ticking while the 50 calls ran
        assert message_count(manager) == 51

    clock.threads.clear()
    run(test, manager)
    assert clock.threads and loop_thread not in clock.threads  # never on the loop thread


def test_a_cancelled_call_that_started_still_commits(manager, clock):
    async def test(face: AsyncMemoryManager) -> None:
        clock.arm()
        task = asyncio.create_task(face.store_message("a", "s", "user", "committed anyway"))
        await until(clock.entered.is_set)  # the worker is inside store_message
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert message_count(manager) == 0
        clock.release.set()
        await until(lambda: message_count(manager) == 1)
        # The log commit is the acknowledgement; working memory's append follows it on the
        # same worker, so a read on another worker may come just before it: wait for it.
        await until(
            lambda: [m.content for m in manager.recent("a", "s", 5)] == ["committed anyway"]
        )
        assert [m.content for m in await face.recent("a", "s", 5)] == ["committed anyway"]

    run(test, manager)


def test_a_cancelled_call_still_queued_never_runs(manager, clock):
    async def test(face: AsyncMemoryManager) -> None:
        clock.arm()
        first = asyncio.create_task(face.store_message("a", "s", "user", "first"))
        await until(clock.entered.is_set)  # the only worker is busy
        queued = asyncio.create_task(face.store_message("a", "s", "user", "dropped"))
        await asyncio.sleep(0.01)
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued
        clock.release.set()
        await first
        await face.store_message("a", "s", "user", "last")  # FIFO: after any queued call
        contents = [m.content for m in await face.recent("a", "s", 5)]
        assert contents == ["last", "first"]

    run(test, manager, max_workers=1)


def test_calls_after_aclose_raise_store_closed(manager):
    async def main() -> None:
        face = AsyncMemoryManager.from_manager(manager)
        await face.store_message("a", "s", "user", "before close")
        await face.aclose()
        await face.aclose()  # idempotent
        assert face.closed
        calls = {
            "store_message": face.store_message("a", "s", "user", "x"),
            "end_session": face.end_session("s"),
            "consolidate": face.consolidate("s"),
            "search": face.search("a", "x"),
            "recent": face.recent("a", "s", 1),
            "assemble_context": face.assemble_context("a", "s", "x"),
            "maintenance": face.maintenance(),
            "repair": face.repair(),
            "forget": face.forget("a"),
            "forget_user": face.forget_user("a"),
            "rotate_master_key": face.rotate_master_key("new passphrase"),
            "backup": face.backup(),
            "export": face.export("a", "unused.aico"),
            "import_": face.import_("unused.aico"),
            "record_context_use": face.record_context_use("a", None),  # type: ignore[arg-type]
        }
        for call in calls.values():
            with pytest.raises(StoreClosed):
                await call
        assert set(calls) == set(public_methods(MemoryManager)) - CONSTRUCTORS - {
            "close",
            "rotate_store",
            "__enter__",
            "__exit__",
        }

    asyncio.run(main())
    with pytest.raises(StoreClosed):  # one core: the sync face is closed too
        manager.store_message("a", "s", "user", "x")


def test_aclose_waits_for_calls_in_flight(manager, clock, data_dir, test_config):
    async def main() -> None:
        face = AsyncMemoryManager.from_manager(manager)
        clock.arm()
        call = asyncio.create_task(face.store_message("a", "s", "user", "in flight"))
        await until(clock.entered.is_set)
        closing = asyncio.create_task(face.aclose())
        await asyncio.sleep(0.05)
        assert not closing.done() and face.closed
        with pytest.raises(StoreClosed):
            await face.recent("a", "s", 1)  # refused while the close waits
        clock.release.set()
        await closing
        assert call.done() and isinstance(await call, str)

    asyncio.run(main())
    with MemoryManager.open(
        data_dir, passphrase=PASSPHRASE, config=test_config, encoder=HashingEncoder()
    ) as again:
        assert message_count(again) == 1


def test_async_initialize_and_open(data_dir, test_config):
    async def main() -> None:
        async with await AsyncMemoryManager.initialize(
            data_dir, PASSPHRASE, config=test_config, encoder=HashingEncoder(), max_workers=2
        ) as face:
            UserService(face.store.connection("core")).create_user("A", user_id="a")
            await face.store_message("a", "s", "user", "kept across opens")
        face = await AsyncMemoryManager.open(
            data_dir, passphrase=PASSPHRASE, config=test_config, encoder=HashingEncoder()
        )
        try:
            assert [m.content for m in await face.recent("a", "s", 5)] == ["kept across opens"]
            assert (await face.maintenance()).swept == 0
        finally:
            await face.aclose()
        with pytest.raises(InvalidInput, match="max_workers"):
            await AsyncMemoryManager.open(data_dir, passphrase=PASSPHRASE, max_workers=0)

    asyncio.run(main())
    with pytest.raises(InvalidInput, match="max_workers"):
        AsyncMemoryManager(MemoryManager.__new__(MemoryManager), max_workers=0)


def test_a_cancelled_initialize_closes_the_manager_it_made(
    data_dir, test_config, clock, monkeypatch
):
    closed: list[MemoryManager] = []
    real_close = MemoryManager.close

    def spy_close(self: MemoryManager) -> None:
        closed.append(self)
        real_close(self)

    monkeypatch.setattr(MemoryManager, "close", spy_close)

    async def main() -> None:
        clock.arm()
        task = asyncio.create_task(
            AsyncMemoryManager.initialize(
                data_dir, PASSPHRASE, config=test_config, encoder=HashingEncoder(), clock=clock
            )
        )
        await until(clock.entered.is_set)  # the open is under way on its worker
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        clock.release.set()
        await until(lambda: len(closed) == 1)

    asyncio.run(main())
    assert closed[0]._closed
    with MemoryManager.open(
        data_dir, passphrase=PASSPHRASE, config=test_config, encoder=HashingEncoder()
    ) as again:
        assert message_count(again) == 0
