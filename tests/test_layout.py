"""``DataDir``: one object owns every path of a data dir, and everything else asks it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from aico.data.schemas import DATABASE_FILES
from aico.data.store import DataStore
from aico.errors import InvalidInput
from aico.layout import DATABASE_FILES as LAYOUT_FILES
from aico.layout import DataDir
from aico.security import KeyFile

from .conftest import PASSPHRASE


def test_every_path(tmp_path):
    d = DataDir(tmp_path)
    assert d.root == tmp_path
    assert d.key_file == tmp_path / "keys" / "master.key"
    assert dict(d.databases) == {
        "core": tmp_path / "db" / "core" / "aico.db",
        "conversations": tmp_path / "db" / "core" / "conversations.db",
        "sessions": tmp_path / "db" / "core" / "sessions.db",
        "knowledge": tmp_path / "db" / "knowledge" / "knowledge.db",
        "file_index": tmp_path / "db" / "knowledge" / "file_index.db",
    }
    assert d.database("core") == tmp_path / "db" / "core" / "aico.db"
    assert d.working_memory == tmp_path / "memory" / "working"
    assert d.chroma == tmp_path / "memory" / "semantic" / "chroma"
    assert d.index_rebuild_marker.parent == d.semantic == tmp_path / "memory" / "semantic"
    assert d.lock_file.parent == d.lock_gate.parent == d.lock_holders.parent == d.lock_dir
    assert d.lock_dir == tmp_path / "locks"
    assert d.backups == tmp_path / "backups"
    assert list(tmp_path.iterdir()) == []  # asking touches nothing


def test_a_value_object(tmp_path):
    d = DataDir(str(tmp_path))
    assert d == DataDir(tmp_path) and hash(d) == hash(DataDir(tmp_path))
    assert DataDir.of(d) is d and DataDir.of(tmp_path) == d
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.root = Path("/elsewhere")  # type: ignore[misc]
    with pytest.raises(TypeError):
        d.databases["core"] = tmp_path  # type: ignore[index]
    with pytest.raises(InvalidInput, match="unknown database 'nope'; known: conversations, core"):
        d.database("nope")


def test_the_old_spellings_derive_from_it(tmp_path):
    assert dict(LAYOUT_FILES) == DATABASE_FILES
    paths = dict(DataDir(tmp_path).databases)
    assert paths == {name: tmp_path / rel for name, rel in DATABASE_FILES.items()}
    assert KeyFile.default_path(tmp_path) == DataDir(tmp_path).key_file


def test_the_data_store_uses_it(tmp_path, test_config):
    with DataStore.initialize(DataDir(tmp_path / "d"), PASSPHRASE, config=test_config) as store:
        assert store.layout == DataDir(tmp_path / "d") and store.data_dir == tmp_path / "d"
        assert store.key_path == store.layout.key_file
        assert dict(store.databases) == dict(store.layout.databases)
        assert all(store.path_of(name).exists() for name in store.databases)
        assert store.layout.lock_file.exists()
