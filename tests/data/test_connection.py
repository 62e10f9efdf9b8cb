"""EncryptedLibSQLConnection: opening, statements, transactions, lifecycle, settings."""

from __future__ import annotations

import os
import stat
import threading

import pytest

import aico.data.libsql as libsql_pkg
from aico.data.libsql import EncryptedLibSQLConnection, ExecResult, SQLiteSettings
from aico.errors import (
    ConfigError,
    ConstraintViolation,
    DatabaseBusy,
    InvalidInput,
    NotFound,
    ReadOnly,
    StoreClosed,
)

from .conftest import DB_KEY


def make_table(conn: EncryptedLibSQLConnection) -> None:
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE, n INTEGER)")


def test_exports_are_sorted_and_public():
    assert libsql_pkg.__all__ == sorted(libsql_pkg.__all__)
    public = {n for n in dir(libsql_pkg) if not n.startswith("_")}
    modules = {
        "connection",
        "counter",
        "errors",
        "files",
        "keycheck",
        "naming",
        "params",
        "pool",
        "registry",
        "seal",
        "settings",
        "sidecar",
    }
    assert public - modules == set(libsql_pkg.__all__)


def test_new_database_gets_private_dirs_and_pragmas(open_db, db_path):
    conn = open_db()
    assert db_path.parent.is_dir()
    assert stat.S_IMODE(db_path.parent.stat().st_mode) & 0o077 == 0
    make_table(conn)
    assert conn.path == db_path
    assert conn.fetch_value("PRAGMA journal_mode") == "wal"
    assert conn.fetch_value("PRAGMA auto_vacuum") == 2  # INCREMENTAL, fixed at creation
    assert conn.fetch_value("PRAGMA foreign_keys") == 1
    assert conn.fetch_value("PRAGMA secure_delete") == 1
    assert conn.fetch_value("PRAGMA temp_store") == 2  # MEMORY
    with conn.transaction():  # the writer's own pragmas
        assert conn.fetch_value("PRAGMA synchronous") == 1  # NORMAL
        assert conn.fetch_value("PRAGMA cache_size") == -64000


def test_synchronous_full_is_selectable(open_db):
    conn = open_db(settings=SQLiteSettings(synchronous="full"))
    with conn.transaction():
        assert conn.fetch_value("PRAGMA synchronous") == 2


@pytest.mark.parametrize("key", [b"", b"x" * 31, b"x" * 33, "a" * 32, "ab" * 32])
def test_key_must_be_32_raw_bytes(db_path, key):
    with pytest.raises(InvalidInput, match="32 raw bytes"):
        EncryptedLibSQLConnection(db_path, key)
    assert not db_path.exists()


def test_execute_and_fetch(open_db):
    conn = open_db()
    make_table(conn)
    result = conn.execute("INSERT INTO t (v, n) VALUES (?, ?)", ("a", 1))
    assert result == ExecResult(rowcount=1, lastrowid=1)
    conn.execute("INSERT INTO t (v, n) VALUES (?, ?)", ["b", 2])  # any sequence works
    assert conn.fetch_all("SELECT v, n FROM t ORDER BY id") == [
        {"v": "a", "n": 1},
        {"v": "b", "n": 2},
    ]
    assert conn.fetch_one("SELECT v FROM t WHERE n = ?", (2,)) == {"v": "b"}
    assert conn.fetch_one("SELECT v FROM t WHERE n = ?", (99,)) is None
    assert conn.fetch_value("SELECT count(*) FROM t") == 2
    assert conn.fetch_value("SELECT v FROM t WHERE n = 99") is None
    assert conn.execute("UPDATE t SET n = n + 10").rowcount == 2


def test_values_round_trip_exactly(open_db):
    conn = open_db()
    conn.execute("CREATE TABLE v (x)")
    values = [
        None,
        0,
        -1,
        2**31,
        -(2**31) - 1,
        2**53 + 1,
        2**63 - 1,
        -(2**63),
        1.5,
        "é",
        b"\x00\xff",
    ]
    conn.execute_many("INSERT INTO v (x) VALUES (?)", [(x,) for x in values])
    assert [r["x"] for r in conn.fetch_all("SELECT x FROM v ORDER BY rowid")] == values
    # Wide integers stay INTEGER even where no column affinity would rescue them.
    assert conn.fetch_value("SELECT ? + 1", (2**62,)) == 2**62 + 1
    assert conn.fetch_value("SELECT typeof(?)", (2**40,)) == "integer"
    assert conn.fetch_value("SELECT ?2 - ?1", (1, 2**60)) == 2**60 - 1
    with pytest.raises(InvalidInput, match="64 bits"):
        conn.fetch_value("SELECT ?", (2**64,))


def test_named_parameters_are_refused(open_db):
    conn = open_db()
    with pytest.raises(InvalidInput, match="positional"):
        conn.fetch_value("SELECT :a", {"a": 1})


def test_execute_many_is_one_transaction(open_db):
    conn = open_db()
    make_table(conn)
    assert conn.execute_many("INSERT INTO t (v) VALUES (?)", [(f"r{i}",) for i in range(50)]) == 50
    assert conn.execute_many("INSERT INTO t (v) VALUES (?)", []) == 0
    with pytest.raises(ConstraintViolation):
        conn.execute_many("INSERT INTO t (v) VALUES (?)", [("new1",), ("r3",), ("new2",)])
    assert conn.fetch_value("SELECT count(*) FROM t") == 50
    assert conn.fetch_value("SELECT count(*) FROM t WHERE v LIKE 'new%'") == 0
    assert conn.execute_many("UPDATE t SET n = ? WHERE v = ?", [(1, "r1"), (2, "r2")]) == 2


def test_execute_script(open_db):
    conn = open_db()
    conn.execute_script("CREATE TABLE a (x); CREATE TABLE b (y); INSERT INTO a VALUES (1);")
    assert conn.fetch_value("SELECT count(*) FROM sqlite_master WHERE type = 'table'") == 2
    with pytest.raises(RuntimeError), conn.transaction():
        conn.execute_script("INSERT INTO a VALUES (2); INSERT INTO b VALUES (3);")
        raise RuntimeError("boom")
    assert conn.fetch_value("SELECT count(*) FROM a") == 1


def test_transaction_commits_and_rolls_back(open_db):
    conn = open_db()
    make_table(conn)
    with conn.transaction() as tx:
        assert tx is conn
        assert conn.in_transaction
        conn.execute("INSERT INTO t (v) VALUES ('kept')")
    assert not conn.in_transaction
    with pytest.raises(KeyError), conn.transaction():
        conn.execute("INSERT INTO t (v) VALUES ('gone')")
        # The owning thread reads its own uncommitted write...
        assert conn.fetch_value("SELECT count(*) FROM t") == 2
        raise KeyError("boom")
    assert conn.fetch_all("SELECT v FROM t") == [{"v": "kept"}]


def test_uncommitted_rows_are_invisible_to_other_threads(open_db):
    conn = open_db()
    make_table(conn)
    seen: list[int] = []
    with conn.transaction():
        conn.execute("INSERT INTO t (v) VALUES ('pending')")
        reader = threading.Thread(
            target=lambda: seen.append(conn.fetch_value("SELECT count(*) FROM t"))
        )
        reader.start()
        reader.join()
    assert seen == [0]
    assert conn.fetch_value("SELECT count(*) FROM t") == 1


def test_nested_transactions_use_savepoints(open_db):
    conn = open_db()
    make_table(conn)
    with conn.transaction():
        conn.execute("INSERT INTO t (v) VALUES ('outer')")
        with pytest.raises(ValueError), conn.transaction():
            conn.execute("INSERT INTO t (v) VALUES ('inner-rolled-back')")
            with conn.transaction():
                conn.execute("INSERT INTO t (v) VALUES ('innermost')")
            raise ValueError("undo the inner savepoint only")
        with conn.transaction():
            conn.execute("INSERT INTO t (v) VALUES ('inner-kept')")
    assert [r["v"] for r in conn.fetch_all("SELECT v FROM t ORDER BY id")] == [
        "outer",
        "inner-kept",
    ]


def test_failed_statement_inside_transaction_rolls_back_all(open_db):
    conn = open_db()
    make_table(conn)
    conn.execute("INSERT INTO t (v) VALUES ('x')")
    with pytest.raises(ConstraintViolation), conn.transaction():
        conn.execute("INSERT INTO t (v) VALUES ('y')")
        conn.execute("INSERT INTO t (v) VALUES ('x')")
    assert conn.fetch_value("SELECT count(*) FROM t") == 1
    # The writer is usable again afterwards.
    with conn.transaction():
        conn.execute("INSERT INTO t (v) VALUES ('z')")
    assert conn.fetch_value("SELECT count(*) FROM t") == 2


def test_foreign_keys_are_enforced(open_db):
    conn = open_db()
    conn.execute("CREATE TABLE p (id INTEGER PRIMARY KEY)")
    conn.execute("CREATE TABLE c (pid INTEGER REFERENCES p(id))")
    with pytest.raises(ConstraintViolation, match="FOREIGN KEY"):
        conn.execute("INSERT INTO c VALUES (42)")


def test_reads_through_readers_cannot_write(open_db):
    conn = open_db()
    make_table(conn)
    with pytest.raises(ReadOnly, match="read-only"):
        conn.fetch_all("INSERT INTO t (v) VALUES ('no') RETURNING id")


def test_closed_connection_refuses_everything(open_db):
    conn = open_db()
    make_table(conn)
    with conn:
        pass
    assert conn.closed
    conn.close()  # idempotent
    for call in (
        lambda: conn.execute("SELECT 1"),
        lambda: conn.execute_many("INSERT INTO t (v) VALUES (?)", [("a",)]),
        lambda: conn.fetch_all("SELECT 1"),
        lambda: conn.fetch_one("SELECT 1"),
        lambda: conn.fetch_value("SELECT 1"),
        lambda: conn.checkpoint(),
        lambda: conn.rekey(DB_KEY),
        lambda: conn.transaction().__enter__(),
    ):
        with pytest.raises(StoreClosed):
            call()


def test_close_inside_own_transaction_is_refused(open_db):
    conn = open_db()
    with conn.transaction(), pytest.raises(InvalidInput):
        conn.close()
    conn.close()


def test_readonly(open_db, db_path):
    with pytest.raises(NotFound):
        EncryptedLibSQLConnection(db_path, DB_KEY, readonly=True)
    writer = open_db()
    make_table(writer)
    writer.execute("INSERT INTO t (v) VALUES ('a')")
    reader = open_db(readonly=True)
    assert reader.readonly
    assert reader.fetch_value("SELECT v FROM t") == "a"
    with pytest.raises(ReadOnly, match="read-only"):
        reader.execute("INSERT INTO t (v) VALUES ('b')")
    with pytest.raises(InvalidInput):
        reader.rekey(DB_KEY)


def test_checkpoint_truncates_the_wal(open_db, db_path):
    conn = open_db()
    make_table(conn)
    conn.execute_many("INSERT INTO t (v) VALUES (?)", [(str(i),) for i in range(100)])
    wal = db_path.with_name(db_path.name + "-wal")
    assert wal.stat().st_size > 0
    assert conn.checkpoint() is True
    assert wal.stat().st_size == 0
    assert conn.checkpoint("passive") is True
    with pytest.raises(InvalidInput):
        conn.checkpoint("SIDEWAYS")
    with conn.transaction(), pytest.raises(InvalidInput):
        conn.checkpoint()


def test_busy_writer_times_out_as_database_busy(open_db):
    first = open_db()
    make_table(first)
    second = open_db(settings=SQLiteSettings(busy_timeout_ms=50))
    with first.transaction():
        first.execute("INSERT INTO t (v) VALUES ('held')")
        with pytest.raises(DatabaseBusy):
            second.execute("INSERT INTO t (v) VALUES ('blocked')")
        # Readers of another handle still see the last commit.
        assert second.fetch_value("SELECT count(*) FROM t") == 0
    second.execute("INSERT INTO t (v) VALUES ('after')")
    assert first.fetch_value("SELECT count(*) FROM t") == 2


# -- settings ------------------------------------------------------------------------


def test_settings_defaults():
    s = SQLiteSettings()
    assert (s.journal_mode, s.synchronous, s.busy_timeout_ms) == ("WAL", "NORMAL", 5000)
    assert (s.cache_size, s.temp_store, s.mmap_size) == (-64000, "MEMORY", 268435456)
    assert (s.secure_delete, s.foreign_keys, s.auto_vacuum) == (True, True, "INCREMENTAL")
    assert s.reader_pool_size == 4


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("synchronous", "OFF"),
        ("journal_mode", "MEMORY"),
        ("temp_store", "FILE"),
        ("auto_vacuum", "sometimes"),
        ("busy_timeout_ms", -1),
        ("busy_timeout_ms", "5000"),
        ("reader_pool_size", 0),
        ("mmap_size", True),
        ("secure_delete", 1),
    ],
)
def test_settings_reject_bad_values_naming_the_field(field, value):
    with pytest.raises(ConfigError, match=field):
        SQLiteSettings(**{field: value})


def test_settings_from_mapping():
    s = SQLiteSettings.from_mapping({"synchronous": "full", "reader_pool_size": 2})
    assert (s.synchronous, s.reader_pool_size) == ("FULL", 2)
    with pytest.raises(ConfigError, match=r"storage\.sqlite\.cache_sise"):
        SQLiteSettings.from_mapping({"cache_sise": 10})


def test_connection_never_leaves_descriptors_open(open_db, db_path):
    fd_dir = "/proc/self/fd"
    if not os.path.isdir(fd_dir):
        pytest.skip("needs /proc")
    before = len(os.listdir(fd_dir))
    for _ in range(3):
        conn = EncryptedLibSQLConnection(db_path, DB_KEY)
        conn.fetch_all("SELECT 1")
        conn.close()
    assert len(os.listdir(fd_dir)) == before


def test_close_from_another_thread_lets_a_running_transaction_finish(open_db, db_path):
    conn = open_db()
    make_table(conn)
    inside, closing = threading.Event(), threading.Event()

    def writer() -> None:
        with conn.transaction():
            conn.execute("INSERT INTO t (v) VALUES ('one')")
            inside.set()
            closing.wait()
            conn.execute("INSERT INTO t (v) VALUES ('two')")

    thread = threading.Thread(target=writer)
    thread.start()
    inside.wait()

    def close_soon() -> None:
        closing.set()

    threading.Timer(0.05, close_soon).start()
    conn.close()  # blocks until the transaction has committed
    thread.join()
    with EncryptedLibSQLConnection(db_path, DB_KEY) as again:
        assert again.fetch_value("SELECT count(*) FROM t") == 2
