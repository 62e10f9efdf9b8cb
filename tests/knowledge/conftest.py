"""Fixtures for the knowledge tests: a real data dir (encrypted libSQL, LMDB, local Chroma)
with the fast hashing encoder, a controllable clock and two users."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from aico.ai.embeddings import HashingEncoder
from aico.ai.memory import MemoryManager
from aico.ai.memory.knowledge import Knowledge
from aico.config import Config, load_config
from aico.data.repositories import UserService
from aico.security import KdfParams

PASSPHRASE = "knowledge test passphrase"
T0 = 1_800_000_000.0


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def test_config_module() -> Config:
    """``test_config`` (tests/conftest.py) for module-scoped data dirs: cheap Argon2, no env."""
    params = KdfParams.for_tests()
    return load_config(
        env={},
        overrides={
            "security": {
                "use_keyring": False,
                "kdf_time_cost": params.time_cost,
                "kdf_memory_cost_kib": params.memory_cost_kib,
                "kdf_parallelism": params.parallelism,
            }
        },
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def manager(data_dir: Path, test_config: Config, clock: Clock) -> Iterator[MemoryManager]:
    m = MemoryManager.initialize(
        data_dir, PASSPHRASE, config=test_config, encoder=HashingEncoder(dimension=384), clock=clock
    )
    yield m
    m.close()


@pytest.fixture
def knowledge(manager: MemoryManager) -> Knowledge:
    return manager.knowledge


@pytest.fixture
def maya(manager: MemoryManager) -> str:
    return UserService(manager.store.connection("core")).create_user("Maya", user_id="maya").user_id


@pytest.fixture
def bob(manager: MemoryManager) -> str:
    return UserService(manager.store.connection("core")).create_user("Bob", user_id="bob").user_id


@pytest.fixture
def rows(manager: MemoryManager) -> Callable[[str], int]:
    """Rows of a knowledge table, whoever owns them (what a refused write must not change)."""
    conn = manager.store.connection("knowledge")
    return lambda table: int(conn.fetch_value(f"SELECT count(*) FROM {table}"))
