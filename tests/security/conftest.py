"""Fixtures for the key hierarchy: cheap Argon2, a fresh key file, an isolated keyring."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest
from keyring.backends import fail

from aico.security import KdfParams, KeyFile, MasterKey
from aico.security.testing import InMemoryKeyring

PASSPHRASE = "correct horse battery staple"


@pytest.fixture(autouse=True)
def isolated_keyring() -> Iterator[None]:
    """Never touch the developer's OS keyring: start each test with the fail backend
    and restore whatever backend was active before."""
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    try:
        yield
    finally:
        keyring.set_keyring(previous)


@pytest.fixture
def memory_keyring() -> InMemoryKeyring:
    backend = InMemoryKeyring()
    keyring.set_keyring(backend)
    return backend


@pytest.fixture
def params() -> KdfParams:
    return KdfParams.for_tests()


@pytest.fixture
def key_path(tmp_path: Path) -> Path:
    return KeyFile.default_path(tmp_path)


@pytest.fixture
def master(key_path: Path, params: KdfParams) -> MasterKey:
    """A key file at ``key_path`` wrapped under ``PASSPHRASE``; returns its master key."""
    return KeyFile.create(key_path, PASSPHRASE, params)
