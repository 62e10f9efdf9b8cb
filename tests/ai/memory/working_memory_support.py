"""Helpers for the working-memory tests: a settable clock, the core database, and the
functions child processes run (module level, so ``multiprocessing`` spawn can import them)."""

from __future__ import annotations

import os
import traceback
from pathlib import Path

from aico.ai.memory.working import WorkingMemoryStore
from aico.data.libsql import EncryptedLibSQLConnection
from aico.data.schema import SchemaRegistry
from aico.security import MasterKey, Purpose

T0 = 1_700_000_000.0
DAY = 24 * 3600.0


class FakeClock:
    """Unix seconds that only move when a test moves them."""

    def __init__(self, start: float = T0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def open_core(db_path: Path, master: MasterKey) -> EncryptedLibSQLConnection:
    """The ``core`` database with its schema applied (idempotent)."""
    conn = EncryptedLibSQLConnection(db_path, master.subkey(Purpose.libsql("core")))
    SchemaRegistry.apply_core_schemas(conn)
    return conn


def _report_failure(error_file: str) -> None:
    Path(error_file).write_text(traceback.format_exc())


def append_and_read_worker(
    lmdb_path: str,
    db_path: str,
    key: bytes,
    session_id: str,
    tag: str,
    count: int,
    map_size: int,
    error_file: str,
) -> None:
    """Append ``count`` messages to a shared session, reading it back all the while."""
    try:
        master = MasterKey.from_bytes(key)
        store = WorkingMemoryStore(lmdb_path, master, map_size=map_size, sync=False)
        mine: list[str] = []
        for i in range(count):
            message = store.append("user-1", session_id, "user", f"{tag}-{i:05d} " + "x" * 300)
            mine.append(message.id)
            seen = store.recent(session_id, 50)
            assert seen, "a reader saw an empty session"
            if i % 50 == 0:
                store.range(session_id)
        ids = {m.id for m in store.recent(session_id, 10 * count)}
        assert set(mine) <= ids, "a message this process appended is missing"
        store.close()
    except BaseException:
        _report_failure(error_file)
        os._exit(1)


def grow_worker(lmdb_path: str, key: bytes, count: int, error_file: str) -> None:
    """Append big messages to a tiny map, so it keeps growing."""
    try:
        store = WorkingMemoryStore(
            lmdb_path, MasterKey.from_bytes(key), map_size=64 * 1024, sync=False
        )
        for _ in range(count):
            store.append("user-1", "growing", "user", "x" * 2000)
        store.close()
    except BaseException:
        _report_failure(error_file)
        os._exit(1)


def reopen_worker(lmdb_path: str, key: bytes, count: int, error_file: str) -> None:
    """Open, read and close the store again and again while another process grows it."""
    try:
        master = MasterKey.from_bytes(key)
        for _ in range(count):
            store = WorkingMemoryStore(lmdb_path, master, map_size=64 * 1024, sync=False)
            store.recent("growing", 5)
            store.close()
    except BaseException:
        _report_failure(error_file)
        os._exit(1)
