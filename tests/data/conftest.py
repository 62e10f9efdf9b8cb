"""Fixtures for the libSQL connection tests: fixed raw keys, handles closed after each test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from aico.data.libsql import EncryptedLibSQLConnection

DB_KEY = bytes(range(32))
SEAL_KEY = bytes(range(32, 64))
OTHER_KEY = bytes(range(64, 96))


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "db" / "test.db"


@pytest.fixture
def open_db(db_path: Path) -> Iterator[Callable[..., EncryptedLibSQLConnection]]:
    """``open_db(**kwargs)`` opens ``db_path`` with the test keys; every handle is closed after."""
    opened: list[EncryptedLibSQLConnection] = []

    def _open(
        path: Path | None = None, key: bytes = DB_KEY, **kwargs: Any
    ) -> EncryptedLibSQLConnection:
        kwargs.setdefault("seal_key", SEAL_KEY)
        conn = EncryptedLibSQLConnection(path or db_path, key, **kwargs)
        opened.append(conn)
        return conn

    yield _open
    for conn in opened:
        conn.close()
