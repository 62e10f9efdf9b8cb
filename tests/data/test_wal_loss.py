"""A WAL lost or damaged after a crash is noticed: the commit counter and its record.

Every test writes in a child that is SIGKILLed with its commits only in the ``-wal``, then
deletes, truncates or flips that WAL (or leaves it alone, for the controls) and reopens.
Without the counter each damaged case opens silently with the committed rows gone.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from aico.data.libsql import EncryptedLibSQLConnection
from aico.data.libsql.sidecar import CommitRecord, OpenLock, commits_missing
from aico.data.store import DataStore
from aico.errors import DatabaseCorrupted

from ..conftest import PASSPHRASE
from .conftest import DB_KEY, OTHER_KEY, SEAL_KEY

PAGE = 4096
WAL_HEADER = 32
FRAME = 24 + PAGE

WRITER = textwrap.dedent(
    """
    import json, os, signal, sys
    from aico.data.libsql import EncryptedLibSQLConnection

    path, key, seal, ops = sys.argv[1], bytes.fromhex(sys.argv[2]), bytes.fromhex(sys.argv[3]), \\
        json.loads(sys.argv[4])
    conns = [EncryptedLibSQLConnection(path, key, seal_key=seal)]
    n = 0
    for op, arg in ops:
        conn = conns[-1]
        if op == "tx":
            for _ in range(arg):
                with conn.transaction():
                    conn.execute("INSERT INTO t (v) VALUES (?)", (f"row {n}",))
                n += 1
        elif op == "auto":
            for _ in range(arg):
                conn.execute("INSERT INTO t (v) VALUES (?)", (f"row {n}",))
                n += 1
        elif op == "many":
            rows = [(f"row {n + i}",) for i in range(arg)]
            conn.execute_many("INSERT INTO t (v) VALUES (?)", rows)
            n += arg
        elif op == "script":
            script = ";".join(f"INSERT INTO t (v) VALUES ('row {n + i}')" for i in range(arg))
            conn.execute_script(script)
            n += arg
        elif op == "two":  # a second connection of this process, writing in turn
            other = EncryptedLibSQLConnection(path, key, seal_key=seal)
            for i in range(arg):
                c = (conn, other)[i % 2]
                with c.transaction():
                    c.execute("INSERT INTO t (v) VALUES (?)", (f"row {n}",))
                n += 1
            conns.append(other)
        elif op == "rekey":
            conn.rekey(bytes.fromhex(arg))
        elif op == "checkpoint":
            assert conn.checkpoint("TRUNCATE")
        elif op == "close":
            conn.close()
            sys.exit(0)
    os.kill(os.getpid(), signal.SIGKILL)  # no close, no checkpoint, no seal
    """
)


def wal_of(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + "-wal")


def make_base(db_path: Path, rows: int = 3) -> None:
    """A sealed, checkpointed database with ``rows`` rows in table t."""
    with EncryptedLibSQLConnection(db_path, DB_KEY, seal_key=SEAL_KEY) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        conn.execute_many("INSERT INTO t (v) VALUES (?)", [(f"base {i}",) for i in range(rows)])


def crash_writing(db_path: Path, ops: list[tuple[str, object]], key: bytes = DB_KEY) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", WRITER, str(db_path), key.hex(), SEAL_KEY.hex(), json.dumps(ops)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode in (-signal.SIGKILL, 0), proc.stderr


def count_rows(db_path: Path, key: bytes = DB_KEY, **kwargs: object) -> int:
    with EncryptedLibSQLConnection(db_path, key, seal_key=SEAL_KEY, **kwargs) as conn:
        return int(conn.fetch_value("SELECT count(*) FROM t"))


def recorded(db_path: Path) -> CommitRecord | None:
    lock = OpenLock(db_path)
    try:
        return lock.read_commit()
    finally:
        lock.close()


def damage(wal: Path, how: str) -> None:
    size = wal.stat().st_size
    frames = (size - WAL_HEADER) // FRAME
    assert frames >= 4, frames
    if how == "delete":
        wal.unlink()
    elif how == "truncate":
        os.truncate(wal, WAL_HEADER + (frames // 2) * FRAME)
    elif how == "truncate-mid-frame":
        os.truncate(wal, size - FRAME // 2)
    elif how == "flip":  # inside the page image of a frame in the middle
        offset = WAL_HEADER + (frames // 2) * FRAME + 24 + PAGE // 2
        with open(wal, "r+b") as fh:
            fh.seek(offset)
            byte = fh.read(1)
            fh.seek(offset)
            fh.write(bytes([byte[0] ^ 0x01]))
    elif how == "flip-header":
        with open(wal, "r+b") as fh:
            fh.seek(8)
            byte = fh.read(1)
            fh.seek(8)
            fh.write(bytes([byte[0] ^ 0x01]))
    else:
        raise AssertionError(how)


def assert_wal_loss_refused(db_path: Path, key: bytes = DB_KEY) -> DatabaseCorrupted:
    """Refused, with a message that says what happened and what to do; nothing written
    (the read-only check may leave an empty ``-wal`` where the deleted one was)."""
    kept = [db_path, wal_of(db_path), db_path.with_name(db_path.name + ".lock")]
    before = {p: p.read_bytes() for p in kept if p.exists()}
    with pytest.raises(DatabaseCorrupted) as info:
        EncryptedLibSQLConnection(db_path, key, seal_key=SEAL_KEY)
    after = {p: p.read_bytes() for p in kept if p.exists()}
    assert {p: data for p, data in after.items() if p in before or data} == before  # as found
    err = info.value
    assert "missing" in str(err) and "write-ahead log" in str(err), err
    assert "backup" in str(err) and "accept_wal_loss" in str(err), err
    assert err.path == db_path and str(db_path) in str(err)
    assert not db_path.with_name(db_path.name + ".seal").exists()
    return err


# -- the damaged WAL is refused --------------------------------------------------------


@pytest.mark.parametrize("how", ["delete", "truncate", "truncate-mid-frame", "flip", "flip-header"])
def test_damaged_wal_after_a_crash_is_refused(db_path, how):
    db_path.parent.mkdir(parents=True)
    make_base(db_path)
    crash_writing(db_path, [("tx", 15)])
    assert wal_of(db_path).stat().st_size > 4 * FRAME
    damage(wal_of(db_path), how)
    assert_wal_loss_refused(db_path)
    # The refusal stays until someone decides: a second open says the same.
    assert_wal_loss_refused(db_path)
    # Accepting the loss is explicit; afterwards the database opens normally.
    survivors = count_rows(db_path, accept_wal_loss=True)
    assert 3 <= survivors < 18
    assert count_rows(db_path) == survivors


def snapshot(directory: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in directory.iterdir() if p.is_file()}


def restore(directory: Path, files: dict[Path, bytes]) -> None:
    """Put the files back exactly as the crash left them (no seal a clean close added)."""
    for path in directory.iterdir():
        if path not in files:
            path.unlink()
    for path, data in files.items():
        path.write_bytes(data)


@pytest.mark.parametrize(
    "ops",
    [
        [("auto", 12)],
        [("many", 5), ("many", 5), ("many", 5), ("many", 5)],
        [("script", 40), ("script", 40), ("script", 40), ("script", 40)],
        [("two", 12)],
    ],
    ids=["autocommit-execute", "execute-many", "execute-script", "two-connections"],
)
def test_every_way_of_writing_is_counted(db_path, ops):
    db_path.parent.mkdir(parents=True)
    make_base(db_path)
    crash_writing(db_path, ops)
    crashed = snapshot(db_path.parent)
    # Control: the intact WAL opens without alarm and holds everything.
    assert count_rows(db_path) == 3 + sum(n for _, n in ops)
    restore(db_path.parent, crashed)
    wal_of(db_path).unlink()
    assert_wal_loss_refused(db_path)


def test_two_processes_writing_in_turn(db_path):
    """Commits of two processes interleave; the record keeps the highest, never one that
    was not committed, so an intact WAL gives no alarm and a lost one is refused."""
    db_path.parent.mkdir(parents=True)
    make_base(db_path)
    child = textwrap.dedent(
        """
        import sys
        from aico.data.libsql import EncryptedLibSQLConnection
        conn = EncryptedLibSQLConnection(sys.argv[1], bytes.fromhex(sys.argv[2]),
                                         seal_key=bytes.fromhex(sys.argv[3]))
        print("ready", flush=True)
        for line in sys.stdin:
            with conn.transaction():
                conn.execute("INSERT INTO t (v) VALUES (?)", (line.strip(),))
            print("ok", flush=True)
        """
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", child, str(db_path), DB_KEY.hex(), SEAL_KEY.hex()],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        for i in range(20):
            proc = procs[i % 2]
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(f"turn {i}\n")
            proc.stdin.flush()
            assert proc.stdout.readline() == "ok\n"
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
    record = recorded(db_path)
    assert record is not None
    crashed = snapshot(db_path.parent)
    with EncryptedLibSQLConnection(db_path, DB_KEY, seal_key=SEAL_KEY, readonly=True) as conn:
        assert conn.fetch_value("SELECT count(*) FROM t") == 23
        assert conn.fetch_value("PRAGMA user_version") == record.counter  # the last commit
    restore(db_path.parent, crashed)
    wal_of(db_path).unlink()
    assert_wal_loss_refused(db_path)


# -- no false alarm ----------------------------------------------------------------------


def test_clean_close_then_reopen_and_checkpoint_truncate_give_no_alarm(db_path):
    db_path.parent.mkdir(parents=True)
    make_base(db_path)
    crash_writing(db_path, [("tx", 10), ("close", 0)])
    assert db_path.with_name(db_path.name + ".seal").exists()
    assert count_rows(db_path) == 13
    # Checkpointed before the crash: the WAL holds nothing, deleting it loses nothing.
    crash_writing(db_path, [("tx", 10), ("checkpoint", 0)])
    assert wal_of(db_path).stat().st_size == 0
    wal_of(db_path).unlink()
    assert count_rows(db_path) == 23


@pytest.mark.parametrize("how", ["delete", "truncate", "flip", "zero"])
def test_a_damaged_shm_after_a_crash_is_rebuilt_from_the_wal(db_path, how):
    """The wal-index is derived from the WAL: any damage to it loses nothing, no alarm."""
    db_path.parent.mkdir(parents=True)
    make_base(db_path)
    crash_writing(db_path, [("tx", 15)])
    shm = db_path.with_name(db_path.name + "-shm")
    data = bytearray(shm.read_bytes())
    if how == "delete":
        shm.unlink()
    elif how == "truncate":
        os.truncate(shm, 100)
    elif how == "flip":
        data[0] ^= 0x01
        shm.write_bytes(bytes(data))
    else:
        shm.write_bytes(bytes(len(data)))
    assert count_rows(db_path) == 18


def test_rekey_keeps_the_counter_working(db_path):
    db_path.parent.mkdir(parents=True)
    make_base(db_path)
    crash_writing(db_path, [("tx", 3), ("rekey", OTHER_KEY.hex()), ("tx", 6)])
    crashed = snapshot(db_path.parent)
    assert count_rows(db_path, OTHER_KEY) == 12
    restore(db_path.parent, crashed)
    wal_of(db_path).unlink()  # the six commits after the rekey
    assert_wal_loss_refused(db_path, OTHER_KEY)


def test_a_new_database_resets_the_record(db_path):
    db_path.parent.mkdir(parents=True)
    make_base(db_path)
    crash_writing(db_path, [("tx", 20), ("close", 0)])
    old = recorded(db_path)
    assert old is not None and old.counter >= 20
    lock = db_path.with_name(db_path.name + ".lock")
    for suffix in ("", ".seal"):
        db_path.with_name(db_path.name + suffix).unlink()
    # Only the sidecar is left: its record says a database with commits was here.
    with pytest.raises(DatabaseCorrupted, match="is missing") as info:
        EncryptedLibSQLConnection(db_path, DB_KEY, seal_key=SEAL_KEY)
    assert lock.name in str(info.value) and not db_path.exists()
    # Moved aside with its sidecar (the recovery option): a new database, a new record.
    lock.unlink()
    make_base(db_path, rows=1)
    new = recorded(db_path)
    assert new is not None and new.file_id != old.file_id and new.counter < old.counter
    assert count_rows(db_path) == 1
    # A new database whose whole life is in a lost WAL is still caught.
    for suffix in ("", ".seal", ".lock"):
        db_path.with_name(db_path.name + suffix).unlink()
    child = WRITER.replace(
        "conns = [EncryptedLibSQLConnection(path, key, seal_key=seal)]",
        "conns = [EncryptedLibSQLConnection(path, key, seal_key=seal)]\n"
        "conns[0].execute('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)')",
    )
    proc = subprocess.run(
        [sys.executable, "-c", child, str(db_path), DB_KEY.hex(), SEAL_KEY.hex(), '[["tx", 5]]'],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    wal_of(db_path).unlink()
    assert_wal_loss_refused(db_path)


@pytest.mark.parametrize("how", ["flip", "truncate", "delete"])
def test_a_damaged_record_means_unknown_never_an_alarm(db_path, how):
    """The documented limit: without a trustworthy record a lost WAL cannot be seen."""
    db_path.parent.mkdir(parents=True)
    make_base(db_path)
    crash_writing(db_path, [("tx", 8)])
    lock = db_path.with_name(db_path.name + ".lock")
    if how == "flip":
        data = bytearray(lock.read_bytes())
        data[9] ^= 0x01  # inside the counter
        lock.write_bytes(bytes(data))
    elif how == "truncate":
        os.truncate(lock, 0)
    else:
        lock.unlink()
    wal_of(db_path).unlink()
    assert count_rows(db_path) == 3  # the 8 commits are gone, and nothing can tell


def test_a_rolled_back_transaction_is_never_recorded(open_db, db_path):
    conn = open_db()
    conn.execute("CREATE TABLE t (v TEXT)")
    before = recorded(db_path)
    with pytest.raises(RuntimeError), conn.transaction():
        conn.execute("INSERT INTO t VALUES ('x')")
        raise RuntimeError("boom")
    assert recorded(db_path) == before
    assert conn.fetch_value("PRAGMA user_version") == before.counter
    with conn.transaction():
        conn.execute("INSERT INTO t VALUES ('y')")
    assert recorded(db_path) == CommitRecord(before.file_id, before.counter + 1)


def test_reads_and_pragmas_are_not_counted(open_db, db_path):
    conn = open_db()
    conn.execute("CREATE TABLE t (v TEXT)")
    before = recorded(db_path)
    conn.execute("SELECT 1")
    conn.execute("PRAGMA optimize")
    conn.fetch_all("SELECT * FROM t")
    assert recorded(db_path) == before


# -- the record itself -------------------------------------------------------------------


def test_record_keeps_the_maximum_in_serial_order(tmp_path):
    lock = OpenLock(tmp_path / "x.db")
    try:
        assert lock.read_commit() is None
        lock.advance_commit(CommitRecord(7, 5))
        lock.advance_commit(CommitRecord(7, 4))  # a slower committer recording late
        assert lock.read_commit() == CommitRecord(7, 5)
        lock.advance_commit(CommitRecord(7, 2**32 - 1))  # "behind" 5 in serial order
        assert lock.read_commit() == CommitRecord(7, 5)
        lock.reset_commit(CommitRecord(7, 2**32 - 2))
        lock.advance_commit(CommitRecord(7, 1))  # wrapped past 2**32: ahead
        assert lock.read_commit() == CommitRecord(7, 1)
        lock.advance_commit(CommitRecord(9, 0))  # another file: replaces
        assert lock.read_commit() == CommitRecord(9, 0)
        lock.reset_commit(None)
        assert lock.read_commit() is None
    finally:
        lock.close()


def test_a_stuck_holder_of_the_record_never_stalls_a_commit(open_db, db_path):
    """Another process holding the record's byte-range lock (stopped, say) only makes the
    record lag: commits go on at once, and the next commit after it lets go records."""
    conn = open_db()
    conn.execute("CREATE TABLE t (v TEXT)")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            "fd = os.open(sys.argv[1], os.O_RDWR)\n"
            "fcntl.lockf(fd, fcntl.LOCK_EX, 16, 0, os.SEEK_SET)\n"
            "print('held', flush=True)\n"
            "sys.stdin.readline()\n",
            str(db_path.with_name(db_path.name + ".lock")),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        before = recorded(db_path)
        started = time.monotonic()
        for _ in range(5):
            conn.execute("INSERT INTO t VALUES ('x')")
        assert time.monotonic() - started < 2
        assert recorded(db_path) == before  # lagging, never ahead
    finally:
        holder.communicate("go\n", timeout=30)
    conn.execute("INSERT INTO t VALUES ('y')")
    assert recorded(db_path).counter == conn.fetch_value("PRAGMA user_version")


def test_commits_missing_is_zero_when_unknown():
    assert commits_missing(CommitRecord(7, 3), None) == 0
    assert commits_missing(CommitRecord(7, 3), CommitRecord(8, 10)) == 0  # another file
    assert commits_missing(CommitRecord(7, 10), CommitRecord(7, 3)) == 0  # ahead is fine
    assert commits_missing(CommitRecord(7, 3), CommitRecord(7, 10)) == 7
    assert commits_missing(CommitRecord(0, 0), CommitRecord(7, 2)) == 2  # never counted
    assert commits_missing(CommitRecord(7, 2**32 - 2), CommitRecord(7, 1)) == 3  # wrapped


# -- through the data store: the error names the store -----------------------------------

STORE_WRITER = textwrap.dedent(
    """
    import os, signal, sys
    from aico.config import load_config
    from aico.data.store import DataStore
    t, m, p = map(int, sys.argv[3].split(","))
    config = load_config(env={}, overrides={"security": {"use_keyring": False,
        "kdf_time_cost": t, "kdf_memory_cost_kib": m, "kdf_parallelism": p}})
    store = DataStore.open(sys.argv[1], passphrase=sys.argv[2], config=config)
    conn = store.connection("conversations")
    for i in range(15):
        with conn.transaction():
            conn.execute("INSERT INTO conversations (id, provider) VALUES (?, 'local')", (f"c{i}",))
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_the_data_store_names_the_database_whose_wal_was_lost(store, test_config, fast_kdf):
    data_dir = store.data_dir
    store.close()
    kdf = f"{fast_kdf.time_cost},{fast_kdf.memory_cost_kib},{fast_kdf.parallelism}"
    proc = subprocess.run(
        [sys.executable, "-c", STORE_WRITER, str(data_dir), PASSPHRASE, kdf],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    path = store.path_of("conversations")
    wal_of(path).unlink()
    with DataStore.open(data_dir, passphrase=PASSPHRASE, config=test_config) as again:
        again.connection("core").fetch_value("SELECT 1")  # the others are fine
        with pytest.raises(DatabaseCorrupted) as info:
            again.connection("conversations")
    assert info.value.store == "conversations" and info.value.path == path
    assert "'conversations'" in str(info.value) and "write-ahead log" in str(info.value)
    # The explicit way on: accept the loss; afterwards the database opens as usual.
    with DataStore.open(data_dir, passphrase=PASSPHRASE, config=test_config) as again:
        conn = again.accept_wal_loss("conversations")
        assert again.connection("conversations") is conn
        assert conn.fetch_value("SELECT count(*) FROM conversations WHERE id LIKE 'c%'") == 0
    with DataStore.open(data_dir, passphrase=PASSPHRASE, config=test_config) as again:
        again.connection("conversations").fetch_value("SELECT 1")
