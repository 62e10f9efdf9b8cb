"""The libSQL handle the parts of a semantic store use: the caller's connection, or a
read-only view of it.

A store opened with ``read_only=True`` never holds the connection itself, only a
``ReadOnlyConnection``: it forwards ``SELECT`` statements (which, outside a transaction, run on
the connection's ``query_only`` readers) and refuses everything else with ``ReadOnly``. So a
read-only store cannot write to libSQL even through a path its own checks missed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn, TypeAlias

from aico.data.libsql import EncryptedLibSQLConnection
from aico.data.libsql.params import Params
from aico.errors import ReadOnly

__all__ = ["Connection", "ReadOnlyConnection"]


class ReadOnlyConnection:
    """``fetch_*`` of ``SELECT`` statements only; every write raises ``ReadOnly``."""

    def __init__(self, conn: EncryptedLibSQLConnection) -> None:
        self._conn = conn

    def fetch_all(self, sql: str, params: Params = ()) -> list[dict[str, Any]]:
        return self._conn.fetch_all(_select(sql), params)

    def fetch_one(self, sql: str, params: Params = ()) -> dict[str, Any] | None:
        return self._conn.fetch_one(_select(sql), params)

    def fetch_value(self, sql: str, params: Params = ()) -> Any:
        return self._conn.fetch_value(_select(sql), params)

    def execute(self, sql: str, params: Params = ()) -> NoReturn:
        raise ReadOnly("the semantic store is open read-only; it does not write")

    def execute_many(self, sql: str, seq_of_params: Any) -> NoReturn:
        raise ReadOnly("the semantic store is open read-only; it does not write")

    @contextmanager
    def transaction(self) -> Iterator[NoReturn]:
        raise ReadOnly("the semantic store is open read-only; it does not write")
        yield  # pragma: no cover - a generator, so ``with`` accepts it


#: What the parts of a store hold: the connection itself, or its read-only view.
Connection: TypeAlias = EncryptedLibSQLConnection | ReadOnlyConnection


def _select(sql: str) -> str:
    if not sql.lstrip().upper().startswith("SELECT"):
        raise ReadOnly("the semantic store is open read-only; it runs SELECT statements only")
    return sql
