"""rekey: the file re-encrypted under a new key, and what a crash in the middle leaves behind."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from aico.data.libsql import EncryptedLibSQLConnection, SQLiteSettings
from aico.errors import AicoError, DatabaseBusy, DatabaseCorrupted, InvalidInput

from .conftest import DB_KEY, OTHER_KEY, SEAL_KEY

NEW_SEAL_KEY = bytes(range(96, 128))
MARKER = "pelican-sundial-3307"


def test_rekey_switches_keys(open_db, db_path):
    conn = open_db()
    conn.execute("CREATE TABLE t (v TEXT)")
    conn.execute_many("INSERT INTO t VALUES (?)", [(f"{MARKER}{i}",) for i in range(100)])
    assert conn.fetch_value("SELECT count(*) FROM t") == 100  # a pooled reader exists
    conn.rekey(OTHER_KEY, new_seal_key=NEW_SEAL_KEY)
    assert conn.fetch_value("PRAGMA journal_mode") == "wal"
    # Readers and the writer carry on under the new key.
    conn.execute("INSERT INTO t VALUES ('after')")
    assert conn.fetch_value("SELECT count(*) FROM t") == 101
    conn.close()
    assert not db_path.with_name(db_path.name + "-journal").exists()
    for path in db_path.parent.iterdir():
        assert MARKER.encode() not in path.read_bytes(), path.name
    with pytest.raises(DatabaseCorrupted):
        EncryptedLibSQLConnection(db_path, DB_KEY)
    with pytest.raises(DatabaseCorrupted, match="seal mismatch"):
        EncryptedLibSQLConnection(db_path, OTHER_KEY, seal_key=SEAL_KEY)
    with EncryptedLibSQLConnection(db_path, OTHER_KEY, seal_key=NEW_SEAL_KEY) as again:
        assert again.fetch_value("SELECT count(*) FROM t") == 101
        assert again.fetch_value("PRAGMA integrity_check") == "ok"


def test_rekey_needs_the_file_to_itself(open_db, db_path):
    conn = open_db()
    conn.execute("CREATE TABLE t (v TEXT)")
    conn.execute("INSERT INTO t VALUES ('x')")
    other = open_db()
    assert other.fetch_value("SELECT count(*) FROM t") == 1
    conn_fast = open_db(settings=SQLiteSettings(busy_timeout_ms=100))
    with pytest.raises(DatabaseBusy):
        conn_fast.rekey(OTHER_KEY)
    # Nothing changed: still WAL, still the old key, still writable.
    conn.execute("INSERT INTO t VALUES ('y')")
    assert other.fetch_value("SELECT count(*) FROM t") == 2
    assert conn.fetch_value("PRAGMA journal_mode") == "wal"


def test_rekey_is_refused_inside_a_transaction_or_with_a_bad_key(open_db):
    conn = open_db()
    with conn.transaction(), pytest.raises(InvalidInput):
        conn.rekey(OTHER_KEY)
    with pytest.raises(InvalidInput, match="32 raw bytes"):
        conn.rekey(b"short")


CHILD = textwrap.dedent(
    """
    import sys
    from aico.data.libsql import EncryptedLibSQLConnection
    path, old, new = sys.argv[1], bytes.fromhex(sys.argv[2]), bytes.fromhex(sys.argv[3])
    conn = EncryptedLibSQLConnection(path, old)
    print("ready", flush=True)
    conn.rekey(new)
    print("done", flush=True)
    conn.close()
    """
)
ROWS = 20_000  # ~20 MB of 1000-byte blobs


@pytest.fixture(scope="module")
def big_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("big") / "big.db"
    with EncryptedLibSQLConnection(path, DB_KEY) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
        conn.execute_many("INSERT INTO t (v) VALUES (randomblob(1000))", [()] * ROWS)
    assert path.stat().st_size > 19_000_000
    return path


def opens_with(path: Path, key: bytes) -> bool:
    try:
        with EncryptedLibSQLConnection(path, key) as conn:
            assert conn.fetch_value("SELECT count(*) FROM t") == ROWS
            assert conn.fetch_value("PRAGMA integrity_check") == "ok"
        return True
    except DatabaseCorrupted:
        return False


def reached(point: str, db: Path, original: bytes) -> bool:
    journal = db.with_name(db.name + "-journal")
    try:  # the child may delete the journal between any two looks at it
        size = journal.stat().st_size
    except FileNotFoundError:
        size = 0
    if point == "journal-started":
        return size > 0
    # "db-rewriting": every original page is journaled and a page in the middle of the
    # file already carries the new key (page 1 alone changes earlier, with journal_mode).
    if size < len(original):
        return False
    middle = len(original) // 2 // 4096 * 4096
    with open(db, "rb") as fh:
        fh.seek(middle)
        return fh.read(4096) != original[middle : middle + 4096]


def kill_when(child: subprocess.Popen[str], db: Path, point: str) -> None:
    """Wait for the rekey to reach ``point``, then SIGKILL the child."""
    assert child.stdout is not None
    original = db.read_bytes()
    assert child.stdout.readline().strip() == "ready"
    if point == "committed":
        assert child.stdout.readline().strip() == "done"
    deadline = time.monotonic() + 60
    while point in ("journal-started", "db-rewriting") and child.poll() is None:
        if reached(point, db, original) or time.monotonic() > deadline:
            break
        time.sleep(0.0002)
    child.kill()
    child.wait()


@pytest.mark.slow
@pytest.mark.parametrize("point", ["start", "journal-started", "db-rewriting", "committed"])
@pytest.mark.parametrize("new_key_first", [False, True])
def test_rekey_killed_midway_opens_with_exactly_one_key(big_db, tmp_path, point, new_key_first):
    """SIGKILL during rekey of a ~20 MB file: the rollback journal makes it all-or-nothing.

    "db-rewriting" is the dangerous moment: every original page is in the hot journal and
    new-key pages are being written over the file. Opening first with the new key
    must then be refused without touching the files (SQLite would roll the journal back
    through the wrong key and destroy the database).
    """
    path = tmp_path / "big.db"
    shutil.copy(big_db, path)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), DB_KEY.hex(), OTHER_KEY.hex()],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        kill_when(child, path, point)
    finally:
        child.kill()
        child.wait()
    order = [OTHER_KEY, DB_KEY] if new_key_first else [DB_KEY, OTHER_KEY]
    try:
        results = [opens_with(path, key) for key in order]
    except AicoError as exc:  # anything but a clean yes/no is a failure
        pytest.fail(f"unexpected {exc!r}")
    assert sum(results) == 1, results
    if point == "committed":
        assert results == ([True, False] if new_key_first else [False, True])
