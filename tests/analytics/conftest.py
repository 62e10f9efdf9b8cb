"""Fixtures for the analytics tests: a real data dir (fake encoder) with a known history."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# --import-mode=importlib puts no test folder on sys.path; the support module lives here.
if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))

from history import PASSPHRASE

from aico.ai.embeddings import HashingEncoder
from aico.ai.memory import MemoryManager
from aico.config import Config


@pytest.fixture
def memory(tmp_path: Path, test_config: Config) -> Iterator[MemoryManager]:
    """A fresh data dir opened with the fast fake encoder; closed after the test."""
    manager = MemoryManager.initialize(
        tmp_path / "data", PASSPHRASE, config=test_config, encoder=HashingEncoder()
    )
    yield manager
    manager.close()
