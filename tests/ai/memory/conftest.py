"""Fixtures for the memory tests.

Semantic memory (prefix ``sem_``): the core database with the test users, and stores over a
local Chroma directory with the fast fake encoder or the real MiniLM (``onnx_encoder`` from
``tests/ai/conftest.py``, loaded once per session).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# --import-mode=importlib puts no test folder on sys.path; the support modules live here.
if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))

from semantic_support import open_core

from aico.ai.embeddings import Encoder, HashingEncoder
from aico.ai.memory.semantic import SemanticConfig, SemanticMemoryStore
from aico.data.libsql import EncryptedLibSQLConnection
from aico.security import MasterKey

SemStoreFactory = Callable[..., SemanticMemoryStore]


@pytest.fixture
def sem_master() -> MasterKey:
    return MasterKey.generate()


@pytest.fixture
def sem_core(tmp_path: Path, sem_master: MasterKey) -> Iterator[EncryptedLibSQLConnection]:
    """The encrypted core database with the semantic schema and users alice and bob."""
    conn = open_core(tmp_path / "db" / "aico.db", sem_master)
    yield conn
    conn.close()


@pytest.fixture
def sem_open(
    tmp_path: Path, sem_core: EncryptedLibSQLConnection, sem_master: MasterKey
) -> Iterator[SemStoreFactory]:
    """Open stores on ``sem_core`` (local Chroma under tmp_path unless told); all closed after."""
    opened: list[SemanticMemoryStore] = []

    def factory(
        encoder: Encoder | None = None,
        *,
        config: SemanticConfig | None = None,
        chroma_url: str | None = None,
        check_model: bool = True,
        read_only: bool = False,
    ) -> SemanticMemoryStore:
        store = SemanticMemoryStore.open(
            sem_core,
            sem_master,
            encoder or HashingEncoder(),
            chroma_path=None if chroma_url else tmp_path / "chroma",
            chroma_url=chroma_url,
            config=config,
            check_model=check_model,
            read_only=read_only,
        )
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()


@pytest.fixture
def sem_store(sem_open: SemStoreFactory) -> SemanticMemoryStore:
    """A store with the fast fake encoder."""
    return sem_open()
