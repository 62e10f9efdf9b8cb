"""Fixtures shared by every test folder: cheap keys and real encrypted stores in tmp dirs."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

from aico.config import Config, load_config
from aico.data.libsql import EncryptedLibSQLConnection
from aico.data.store import DataStore
from aico.security import KdfParams, MasterKey, Purpose

PASSPHRASE = "correct horse battery staple"


@pytest.fixture(scope="session")
def embedding_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private model cache, so tests never touch (or depend on) the user's cache.

    Session-wide and here, not in tests/ai: every test folder that runs the real model
    (the CLI tests too) shares one ONNX export (~10 s) per run.
    """
    return tmp_path_factory.mktemp("embedding-cache")


@pytest.fixture
def fast_kdf() -> KdfParams:
    return KdfParams.for_tests()


@pytest.fixture
def test_config() -> Config:
    """Defaults with cheap Argon2 parameters, ignoring the developer's own config and env."""
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
def master_key() -> MasterKey:
    return MasterKey.generate()


@pytest.fixture
def conn(tmp_path: Path, master_key: MasterKey) -> Iterator[EncryptedLibSQLConnection]:
    """A fresh encrypted database with nothing in it."""
    c = EncryptedLibSQLConnection(
        tmp_path / "test.db",
        master_key.subkey(Purpose.libsql("test")),
        seal_key=master_key.subkey(Purpose.seal("test")),
    )
    yield c
    c.close()


@pytest.fixture
def store(tmp_path: Path, test_config: Config) -> Iterator[DataStore]:
    """An initialized data dir: key file + every database at its latest schema."""
    s = DataStore.initialize(tmp_path / "data", PASSPHRASE, config=test_config)
    yield s
    s.close()
