"""Fixtures of the integration tests: real encrypted data dirs with the fast hashing encoder.

Each test gets its own data dir (``MemoryManager.initialize`` with cheap Argon2 and
``HashingEncoder``: about 50 ms), and the LangGraph contract tests run each case against
``AicoStore`` and LangGraph's own ``InMemoryStore`` given the same embeddings.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# --import-mode=importlib puts no test folder on sys.path; the support module lives here.
if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))

from integration_support import PASSPHRASE

from aico.ai.embeddings import HashingEncoder
from aico.ai.memory import MemoryManager
from aico.config import Config
from aico.data.repositories import UserService


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def open_memory(data_dir: Path, test_config: Config) -> Iterator[Callable[..., MemoryManager]]:
    """Open (creating on first call) the test data dir; every manager is closed after."""
    opened: list[MemoryManager] = []

    def factory(*, read_only: bool = False, encoder: object = None) -> MemoryManager:
        enc = encoder or HashingEncoder()
        if not data_dir.exists():
            MemoryManager.initialize(data_dir, PASSPHRASE, config=test_config, encoder=enc).close()
        manager = MemoryManager.open(
            data_dir, passphrase=PASSPHRASE, config=test_config, encoder=enc, read_only=read_only
        )
        opened.append(manager)
        return manager

    yield factory
    for manager in reversed(opened):
        manager.close()


@pytest.fixture
def memory(open_memory: Callable[..., MemoryManager]) -> MemoryManager:
    """An open manager on a fresh data dir with users maya and bob."""
    manager = open_memory()
    users = UserService(manager.store.connection("core"))
    users.create_user("Maya", user_id="maya")
    users.create_user("Bob", user_id="bob")
    return manager
