"""Storage faults get named, actionable errors: a damaged file, a full disk, read-only media.

Real files throughout; the faults are made for real: a database truncated after a crash, a
file-size limit (``RLIMIT_FSIZE``, as ``ulimit -f``) in a child, a full tmpfs, and a data
dir another user may only read (``setpriv`` to uid 65534).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from aico.data.libsql import EncryptedLibSQLConnection
from aico.data.libsql.errors import classify
from aico.data.store import DataStore
from aico.errors import DatabaseCorrupted, QueryError, ReadOnly, StorageFull

from ..conftest import PASSPHRASE
from .conftest import DB_KEY, OTHER_KEY, SEAL_KEY

PAGE = 4096
ROOT = Path(__file__).resolve().parents[2]
RECOVERY = ("backup", "move it aside (with its -wal, .seal and .lock files)", "aico doctor")


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "shared"), str(ROOT)])
    env["RUST_BACKTRACE"] = "0"
    return env


def kdf_arg(fast_kdf) -> str:
    return f"{fast_kdf.time_cost},{fast_kdf.memory_cost_kib},{fast_kdf.parallelism}"


CONFIG = """
from aico.config import load_config
def config(kdf):
    t, m, p = map(int, kdf.split(","))
    return load_config(env={}, overrides={"security": {"use_keyring": False,
        "kdf_time_cost": t, "kdf_memory_cost_kib": m, "kdf_parallelism": p}})
"""

CRASHING_STORE = textwrap.dedent(
    CONFIG
    + """
import os, signal, sys
from aico.data.store import DataStore
store = DataStore.open(sys.argv[1], passphrase=sys.argv[2], config=config(sys.argv[3]))
conn = store.connection("conversations")
for i in range(int(sys.argv[4])):
    conn.execute("INSERT INTO conversations (id, provider) VALUES (?, 'local')", (f"late{i}",))
os.kill(os.getpid(), signal.SIGKILL)
"""
)


def fill_conversations(store: DataStore, rows: int) -> None:
    store.connection("conversations").execute_many(
        "INSERT INTO conversations (id, provider, title) VALUES (?, 'local', ?)",
        [(f"c{i}", "a title of some length " * 10) for i in range(rows)],
    )


def crash_store(data_dir: Path, fast_kdf, late_rows: int = 10) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            CRASHING_STORE,
            str(data_dir),
            PASSPHRASE,
            kdf_arg(fast_kdf),
            str(late_rows),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=child_env(),
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr


# -- a damaged file is named, and the message says what to do --------------------------


@pytest.mark.parametrize("keep_pages", ["half", "one"])
def test_a_truncated_database_of_a_crashed_store_is_damaged_not_another_key(
    store, test_config, fast_kdf, keep_pages
):
    fill_conversations(store, 1500)
    data_dir, path = store.data_dir, store.path_of("conversations")
    store.close()
    crash_store(data_dir, fast_kdf)
    assert path.with_name(path.name + "-wal").stat().st_size > 0
    pages = path.stat().st_size // PAGE
    os.truncate(path, (pages // 2 if keep_pages == "half" else 1) * PAGE)
    with DataStore.open(data_dir, passphrase=PASSPHRASE, config=test_config) as again:
        with pytest.raises(DatabaseCorrupted) as info:
            again.connection("conversations")
        assert again.connection("core").fetch_value("SELECT 1") == 1  # the others open
    err = info.value
    assert err.store == "conversations" and err.path == path
    message = str(err)
    assert str(path) in message and "'conversations'" in message
    assert "damaged" in message and "another key" not in message
    assert all(option in message for option in RECOVERY), message


def test_only_an_unverified_key_may_be_blamed(open_db, db_path):
    conn = open_db()
    conn.execute("CREATE TABLE t (v TEXT)")
    conn.close()
    with pytest.raises(DatabaseCorrupted, match="another key") as info:
        EncryptedLibSQLConnection(db_path, OTHER_KEY, seal_key=None)
    assert info.value.path == db_path and info.value.store is None
    with pytest.raises(DatabaseCorrupted) as info:
        EncryptedLibSQLConnection(db_path, OTHER_KEY, store="core", key_verified=True)
    assert info.value.store == "core" and "another key" not in str(info.value)
    assert "damaged" in str(info.value) and "copied from another data dir" in str(info.value)


@pytest.mark.parametrize("left", ["-wal", ".seal", ".lock"])
def test_a_database_deleted_from_under_its_wal_or_seal_is_missing_not_new(db_path, left):
    """A new database would silently replace it (SQLite even replays the orphaned WAL).

    ``.lock``: checkpointed before the crash, so only the commit record says it existed.
    (A read-only opener does not read the record before its lock: ``NotFound`` there.)
    """
    db_path.parent.mkdir(parents=True)
    child = (
        "import os, signal, sys\n"
        "from aico.data.libsql import EncryptedLibSQLConnection\n"
        "key, seal = bytes(range(32)), bytes(range(32, 64))\n"
        "c = EncryptedLibSQLConnection(sys.argv[1], key, seal_key=seal)\n"
        "c.execute('CREATE TABLE t (v TEXT)')\n"
        "c.execute(\"INSERT INTO t VALUES ('x')\")\n"
        "c.checkpoint('TRUNCATE') if sys.argv[2] == '.lock' else None\n"
        "c.close() if sys.argv[2] == '.seal' else os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    subprocess.run([sys.executable, "-c", child, str(db_path), left], env=child_env(), timeout=60)
    assert db_path.with_name(db_path.name + left).stat().st_size > 0
    db_path.unlink()
    for readonly in (False, True) if left != ".lock" else (False,):
        with pytest.raises(DatabaseCorrupted, match="is missing") as info:
            EncryptedLibSQLConnection(db_path, DB_KEY, seal_key=SEAL_KEY, readonly=readonly)
        assert info.value.path == db_path and left in str(info.value)
    assert not db_path.exists()


def test_every_corruption_error_names_the_store(open_db, db_path):
    conn = open_db(store="knowledge")
    conn.execute("CREATE TABLE t (v TEXT)")
    conn.close()
    db_path.with_name(db_path.name + ".seal").write_text("{garbage")
    with pytest.raises(DatabaseCorrupted) as info:
        EncryptedLibSQLConnection(db_path, DB_KEY, seal_key=SEAL_KEY, store="knowledge")
    seal = db_path.with_name(db_path.name + ".seal")
    assert (info.value.store, info.value.path) == ("knowledge", seal)  # the damaged file
    assert "'knowledge'" in str(info.value) and "test.db.seal is unreadable" in str(info.value)


# -- no space left: StorageFull ------------------------------------------------------------

FILLING_CHILD = textwrap.dedent(
    """
    import json, os, resource, sys
    from aico.data.libsql import EncryptedLibSQLConnection
    from aico.errors import AicoError, StorageFull
    path, key, seal = sys.argv[1], bytes.fromhex(sys.argv[2]), bytes.fromhex(sys.argv[3])
    conn = EncryptedLibSQLConnection(path, key, seal_key=seal)
    report = {"committed": 0}
    try:
        while True:
            with conn.transaction():
                conn.execute("INSERT INTO t (v) VALUES (?)", ("y" * 3000,))
            report["committed"] += 1
    except AicoError as exc:
        report["error"], report["message"] = type(exc).__name__, str(exc)
    report["count_after_failure"] = conn.fetch_value("SELECT count(*) FROM t")
    # Space again (the soft limit may be raised up to the hard one): writes work.
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    conn.execute("INSERT INTO t (v) VALUES ('after the limit was lifted')")
    report["count_after_lift"] = conn.fetch_value("SELECT count(*) FROM t")
    if sys.argv[4] == "limit-at-close":
        size = os.path.getsize(path)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64, resource.RLIM_INFINITY))
    try:
        conn.close()
        report["close"] = "ok"
    except AicoError as exc:
        report["close"] = type(exc).__name__
        report["close_message"] = str(exc)
    print(json.dumps(report))
    """
)


def run_with_file_size_limit(db_path: Path, limit: int, mode: str = "") -> dict[str, object]:
    def limit_file_size() -> None:
        # Without SIG_IGN the kernel kills the child with SIGXFSZ instead of failing write().
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    proc = subprocess.run(
        [sys.executable, "-c", FILLING_CHILD, str(db_path), DB_KEY.hex(), SEAL_KEY.hex(), mode],
        capture_output=True,
        text=True,
        timeout=120,
        env=child_env(),
        preexec_fn=limit_file_size,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return report


def base_table(open_db) -> None:
    with open_db() as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        conn.execute_many("INSERT INTO t (v) VALUES (?)", [("before",)] * 10)


def test_a_file_size_limit_is_storage_full_and_loses_nothing(open_db, db_path):
    base_table(open_db)
    report = run_with_file_size_limit(db_path, db_path.stat().st_size + 200_000)
    assert report["error"] == "StorageFull", report
    assert str(db_path) in str(report["message"]) and "free space" in str(report["message"])
    committed = 10 + int(report["committed"])  # type: ignore[call-overload]
    assert report["count_after_failure"] == committed  # the failed write left no trace
    assert report["count_after_lift"] == committed + 1
    assert report["close"] == "ok"
    with EncryptedLibSQLConnection(db_path, DB_KEY, seal_key=SEAL_KEY) as conn:
        assert conn.fetch_value("SELECT count(*) FROM t") == committed + 1
        assert conn.fetch_value("PRAGMA quick_check") == "ok"


def test_no_space_for_the_seal_is_storage_full_and_loses_nothing(open_db, db_path):
    base_table(open_db)
    report = run_with_file_size_limit(db_path, db_path.stat().st_size + 200_000, "limit-at-close")
    assert report["close"] == "StorageFull", report
    assert "seal" in str(report["close_message"]) and str(db_path) in str(report["close_message"])
    assert not db_path.with_name(db_path.name + ".seal").exists()
    committed = 10 + int(report["committed"]) + 1  # type: ignore[call-overload]
    with EncryptedLibSQLConnection(db_path, DB_KEY, seal_key=SEAL_KEY) as conn:
        assert conn.fetch_value("SELECT count(*) FROM t") == committed
    assert db_path.with_name(db_path.name + ".seal").exists()


def test_disk_io_error_is_storage_full_only_when_space_ran_out(open_db, db_path):
    base_table(open_db)
    assert isinstance(classify(ValueError("database or disk is full")), StorageFull)
    assert isinstance(classify(ValueError("disk I/O error")), QueryError)  # no path, no guess
    assert isinstance(classify(ValueError("disk I/O error"), db_path), QueryError)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (db_path.stat().st_size, hard))
    try:
        error = classify(ValueError("disk I/O error"), db_path)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert isinstance(error, StorageFull) and str(db_path) in str(error)


TMPFS_SCRIPT = textwrap.dedent(
    """
    set -e
    mount -t tmpfs -o size=4m tmpfs "$1"
    "$2" -c "$3" "$1/t.db" fill
    "$2" -c "$3" "$1/t.db" check
    """
)

TMPFS_CHILD = textwrap.dedent(
    """
    import json, os, sys
    from aico.data.libsql import EncryptedLibSQLConnection
    from aico.errors import AicoError
    key, seal = bytes(range(32)), bytes(range(32, 64))
    if sys.argv[2] == "check":
        os.unlink(sys.argv[1] + ".ballast")  # free some space, as the error says to
    conn = EncryptedLibSQLConnection(sys.argv[1], key, seal_key=seal)
    ballast = sys.argv[1] + ".ballast"
    if sys.argv[2] == "fill":
        with open(ballast, "wb") as fh:
            fh.write(bytes(2_500_000))
        conn.execute("CREATE TABLE t (v TEXT)")
        n = 0
        try:
            while True:
                conn.execute("INSERT INTO t (v) VALUES (?)", ("z" * 20000,))
                n += 1
        except AicoError as exc:
            print(json.dumps({"error": type(exc).__name__, "committed": n}), flush=True)
        try:
            conn.close()
        except AicoError as exc:
            print(json.dumps({"close": type(exc).__name__}), flush=True)
    else:
        print(json.dumps({"count": conn.fetch_value("SELECT count(*) FROM t")}), flush=True)
        conn.close()
        print(json.dumps({"sealed": os.path.exists(sys.argv[1] + ".seal")}), flush=True)
    """
)


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root")
def test_a_full_disk_is_storage_full(tmp_path):
    """A real ENOSPC: a 4 MB tmpfs in a private mount namespace (gone when the child is)."""
    mountpoint = tmp_path / "tiny"
    mountpoint.mkdir()
    proc = subprocess.run(
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            TMPFS_SCRIPT,
            "sh",
            str(mountpoint),
            sys.executable,
            TMPFS_CHILD,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=child_env(),
    )
    if proc.returncode != 0 and "mount" in proc.stderr and not proc.stdout:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()[:200]}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    filled = lines[0]
    assert filled["error"] == "StorageFull" and filled["committed"] > 10, lines
    assert {"count": filled["committed"]} in lines, lines  # every acknowledged row
    assert lines[-1] == {"sealed": True}, lines


# -- read-only media -----------------------------------------------------------------------

NOBODY = 65534

READ_ONLY_CHILD = textwrap.dedent(
    CONFIG
    + """
import json, sys
from aico.data.libsql import EncryptedLibSQLConnection
from aico.data.store import DataStore
from aico.errors import AicoError
from aico.security import Purpose
data_dir, passphrase, kdf = sys.argv[1], sys.argv[2], sys.argv[3]
report = {}
with DataStore.open(data_dir, passphrase=passphrase, config=config(kdf), read_only=True) as store:
    report["conversations"] = store.connection("conversations").fetch_value(
        "SELECT count(*) FROM conversations")
    report["users"] = store.connection("core").fetch_value("SELECT count(*) FROM users")
    report["statuses"] = [db.database for db in store.status()]
    try:
        store.migrate()
    except AicoError as exc:
        report["migrate"] = type(exc).__name__
    path = store.path_of("conversations")
    key = store.master_key.subkey(Purpose.libsql("conversations"))
try:
    DataStore.open(data_dir, passphrase=passphrase, config=config(kdf))
except AicoError as exc:
    report["writable_store"] = [type(exc).__name__, str(exc)]
try:
    EncryptedLibSQLConnection(path, key)
except AicoError as exc:
    report["writable_connection"] = [type(exc).__name__, str(exc)]
print(json.dumps(report))
"""
)


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A directory another user can reach (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="aico-ro-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        for p in [path, *path.rglob("*")]:
            if p.is_dir():
                p.chmod(0o755)
        shutil.rmtree(path)


def freeze(root: Path) -> None:
    for p in sorted(root.rglob("*"), reverse=True):
        p.chmod(0o555 if p.is_dir() else 0o444)
    root.chmod(0o555)


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def run_as_nobody(data_dir: Path, fast_kdf) -> subprocess.CompletedProcess[str]:
    env = child_env()
    env["HOME"] = str(data_dir.parent)
    return subprocess.run(
        [
            "setpriv",
            f"--reuid={NOBODY}",
            f"--regid={NOBODY}",
            "--clear-groups",
            sys.executable,
            "-c",
            READ_ONLY_CHILD,
            str(data_dir),
            PASSPHRASE,
            kdf_arg(fast_kdf),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd="/",
    )


needs_setpriv = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv"
)


@needs_setpriv
@pytest.mark.parametrize("state", ["clean", "crash"])
def test_a_data_dir_that_cannot_be_written_opens_read_only(
    shared_tmp, test_config, fast_kdf, state
):
    data_dir = shared_tmp / "data"
    with DataStore.initialize(data_dir, PASSPHRASE, config=test_config) as store:
        fill_conversations(store, 50)
        store.connection("core").execute(
            "INSERT INTO users (user_id, display_name, created_at, updated_at) "
            "VALUES ('u1', 'Ann', 0, 0)"
        )
    if state == "crash":
        crash_store(data_dir, fast_kdf, late_rows=10)
        wal = data_dir / "db/core/conversations.db-wal"
        assert wal.stat().st_size > 0 and wal.with_name("conversations.db-shm").exists()
    freeze(data_dir)
    before = tree(data_dir)
    proc = run_as_nobody(data_dir, fast_kdf)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["conversations"] == 50 + (10 if state == "crash" else 0)
    assert report["users"] == 1
    assert report["migrate"] == "ReadOnly"
    kind, message = report["writable_store"]
    assert kind == "ReadOnly" and str(data_dir) in message and "read-only" in message
    kind, message = report["writable_connection"]
    assert kind == "ReadOnly" and "conversations.db" in message and "read-only" in message
    assert tree(data_dir) == before  # not a byte written, not a file created


@needs_setpriv
def test_a_wal_without_its_shm_cannot_be_read_on_read_only_media(shared_tmp, test_config, fast_kdf):
    data_dir = shared_tmp / "data"
    with DataStore.initialize(data_dir, PASSPHRASE, config=test_config) as store:
        fill_conversations(store, 5)
    crash_store(data_dir, fast_kdf)
    (data_dir / "db/core/conversations.db-shm").unlink()
    freeze(data_dir)
    proc = run_as_nobody(data_dir, fast_kdf)
    assert proc.returncode != 0
    assert "ReadOnly" in proc.stderr and "-shm" in proc.stderr, proc.stderr[-2000:]


def test_a_read_only_store_writes_nothing_and_refuses_writes(store, test_config):
    fill_conversations(store, 5)
    data_dir = store.data_dir
    store.close()
    before = tree(data_dir)
    with DataStore.open(
        data_dir, passphrase=PASSPHRASE, config=test_config, read_only=True
    ) as reader:
        assert (
            reader.connection("conversations").fetch_value("SELECT count(*) FROM conversations")
            == 5
        )
        assert all(c.readonly for c in reader._conns.values())
        for call in (reader.migrate, lambda: reader.rotate_master_key(PASSPHRASE)):
            with pytest.raises(ReadOnly):
                call()
        assert reader.migrate(dry_run=True) == []
    after = tree(data_dir)
    assert {k: v for k, v in after.items() if k in before} == before
    assert set(after) - set(before) <= {"locks/data-dir.lock", "locks/gate.lock"}
