"""Threads sharing one connection and processes sharing one file: no errors, no lost rows."""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path
from typing import Any

import pytest

from aico.data.libsql import EncryptedLibSQLConnection

from .conftest import DB_KEY, SEAL_KEY

SINGLE = 30  # autocommit inserts per worker
BATCHES = 6  # transactions per worker
BATCH = 5  # rows per transaction
PER_WORKER = SINGLE + BATCHES * BATCH


def create_table(path: Path) -> None:
    with EncryptedLibSQLConnection(path, DB_KEY, seal_key=SEAL_KEY) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, worker TEXT NOT NULL, n INTEGER)")


def work(conn: EncryptedLibSQLConnection, name: str) -> None:
    """Interleave autocommit writes, nested transactions and reads."""
    for i in range(SINGLE):
        conn.execute("INSERT INTO t (worker, n) VALUES (?, ?)", (name, i))
        if i % 5 == 0:
            assert conn.fetch_value("SELECT count(*) FROM t WHERE worker = ?", (name,)) == i + 1
            conn.fetch_all("SELECT worker, count(*) AS c FROM t GROUP BY worker")
    for b in range(BATCHES):
        with conn.transaction():
            for j in range(BATCH):
                with conn.transaction():  # savepoint inside
                    conn.execute(
                        "INSERT INTO t (worker, n) VALUES (?, ?)", (name, 1000 + b * 10 + j)
                    )
            mine = conn.fetch_value("SELECT count(*) FROM t WHERE worker = ?", (name,))
            assert mine == SINGLE + (b + 1) * BATCH


def run_threads(conn: EncryptedLibSQLConnection, prefix: str, count: int) -> list[str]:
    errors: list[str] = []

    def target(name: str) -> None:
        try:
            work(conn, name)
        except BaseException as exc:  # collected and asserted on by the test
            errors.append(f"{name}: {exc!r}")

    threads = [threading.Thread(target=target, args=(f"{prefix}{i}",)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def process_main(path: str, name: str, start: Any, results: Any) -> None:
    """Child process: its own connection (and open lock), two threads of its own."""
    try:
        with EncryptedLibSQLConnection(path, DB_KEY, seal_key=SEAL_KEY) as conn:
            start.wait(timeout=60)  # all openers are in before anyone writes
            results.put((name, run_threads(conn, f"{name}-t", 2)))
    except BaseException as exc:
        results.put((name, [repr(exc)]))


def assert_all_rows(path: Path, workers: int) -> None:
    with EncryptedLibSQLConnection(path, DB_KEY, seal_key=SEAL_KEY) as conn:
        assert conn.fetch_value("SELECT count(*) FROM t") == workers * PER_WORKER
        per_worker = conn.fetch_all("SELECT worker, count(*) AS c FROM t GROUP BY worker")
        assert len(per_worker) == workers
        assert {r["c"] for r in per_worker} == {PER_WORKER}
        assert conn.fetch_value("PRAGMA integrity_check") == "ok"


def test_four_threads_share_one_connection(db_path):
    create_table(db_path)
    with EncryptedLibSQLConnection(db_path, DB_KEY, seal_key=SEAL_KEY) as conn:
        assert run_threads(conn, "thread", 4) == []
    assert_all_rows(db_path, workers=4)


@pytest.mark.slow
def test_two_processes_and_four_threads_share_one_file(db_path, monkeypatch):
    # Spawned children unpickle process_main by module name: let them import ``tests``.
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2]))
    create_table(db_path)
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    start = ctx.Barrier(3)
    procs = [
        ctx.Process(target=process_main, args=(str(db_path), f"proc{i}", start, results))
        for i in range(2)
    ]
    for p in procs:
        p.start()
    with EncryptedLibSQLConnection(db_path, DB_KEY, seal_key=SEAL_KEY) as conn:
        start.wait(timeout=60)
        errors = run_threads(conn, "parent", 4)
    reports = dict(results.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert errors == []
    assert reports == {"proc0": [], "proc1": []}
    assert_all_rows(db_path, workers=4 + 2 * 2)
    # Every opener closed cleanly, so the last one sealed the file.
    assert db_path.with_name(db_path.name + ".seal").exists()
