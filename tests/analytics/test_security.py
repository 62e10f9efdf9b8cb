"""No plaintext on disk: the copy, DuckDB's WAL and its spill files; forget reaches the copy.

Each scan has a control that shows the same bytes *are* found when DuckDB writes without
encryption, so a scan that finds nothing means something.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from history import START, write_history

from aico.ai.memory import MemoryManager
from aico.analytics import _duck
from aico.analytics.tables import TABLES
from aico.errors import AicoError

MARK = "zqanalyticsmark"


def _raw(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


def _decrypted_copy(memory: MemoryManager) -> str:
    """Every row of every table of the copy, read through DuckDB with the key."""
    a = memory.analytics
    con = _duck.connect(a.directory / "tmp")
    try:
        _duck.attach(con, a.path, a._key(), read_only=True)
        names = [
            r[0]
            for r in con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE database_name = 'a'"
            ).fetchall()
        ]
        assert {t.name for t in TABLES} <= set(names)
        return "\n".join(str(con.execute(f"SELECT * FROM a.{n}").fetchall()) for n in names)
    finally:
        con.close()


def test_the_copy_holds_no_plaintext_and_forget_removes_the_user(memory: MemoryManager) -> None:
    gone, kept = f"{MARK}gone", f"{MARK}kept"
    write_history(memory, [gone, kept], messages=400, tag=f"{MARK}t")
    memory.analytics.export()
    root = memory.store.layout.root
    files = sorted(p.name for p in memory.analytics.directory.iterdir())
    assert files == [memory.analytics.path.name, "tmp"]
    raw = _raw(memory.analytics.directory)
    assert MARK.encode() not in raw
    assert MARK.encode() not in _raw(root)  # libSQL files are encrypted too
    decrypted = _decrypted_copy(memory)
    assert gone in decrypted and kept in decrypted  # the scan can see ids

    memory.forget(gone)  # calls Analytics.purge_user, which rebuilds the file
    decrypted = _decrypted_copy(memory)
    assert gone not in decrypted
    assert kept in decrypted
    assert MARK.encode() not in _raw(root)
    assert not any(p.name.endswith(".new") for p in memory.analytics.directory.iterdir())
    assert memory.analytics.purge_user(gone) == 0


def test_purge_user_removes_and_rebuilds(memory: MemoryManager) -> None:
    write_history(memory, ["ana", "ben"], messages=100)
    memory.analytics.export()
    before = memory.analytics.path.stat().st_ino
    assert memory.analytics.purge_user("ana") > 0
    assert memory.analytics.path.stat().st_ino != before  # a new file, not freed blocks
    assert "'ana'" not in _decrypted_copy(memory)
    assert memory.analytics.purge_user("ana") == 0


def test_unencrypted_duckdb_would_show_the_marks(tmp_path: Path) -> None:
    """The control of the scan above: a plain DuckDB file holds the ids readably.

    Compression off: DuckDB's FSST would otherwise hide a repeated prefix from a byte scan
    of a plain file (which is no protection, only an encoding).
    """
    con = duckdb.connect(str(tmp_path / "plain.duckdb"))
    con.execute("SET force_compression = 'uncompressed'")
    con.execute("CREATE TABLE t AS SELECT ? || i AS s FROM range(1000) r(i)", (MARK,))
    con.close()
    assert MARK.encode() in _raw(tmp_path)


def _write_marks(con: duckdb.DuckDBPyConnection, alias: str) -> None:
    con.execute(f"CREATE TABLE {alias}.t (s VARCHAR)")
    con.execute(f"INSERT INTO {alias}.t SELECT ? || i FROM range(20000) r(i)", (MARK,))


@pytest.mark.parametrize("encrypted", [True, False])
def test_the_wal_is_encrypted(tmp_path: Path, encrypted: bool) -> None:
    con = _duck.connect(tmp_path)
    con.execute("SET checkpoint_threshold = '1GB'")  # keep the rows in the WAL
    path = tmp_path / "copy.duckdb"
    if encrypted:
        _duck.attach(con, path, bytes(range(32)))
    else:
        con.execute(f"ATTACH '{path}' AS a")
    _write_marks(con, "a")
    wal = path.with_name(path.name + ".wal")
    assert wal.exists() and wal.stat().st_size > 10_000
    assert (MARK.encode() in wal.read_bytes()) is not encrypted
    con.close()


@pytest.mark.parametrize("encrypted", [True, False])
def test_spill_files_are_encrypted(tmp_path: Path, encrypted: bool) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    con = _duck.connect(tmp, memory_limit="40MB", threads=1)
    if not encrypted:
        con.execute("SET temp_file_encryption = false")
    con.execute(
        "CREATE TABLE big AS SELECT ? || i || repeat('x', 200) AS s, random() AS r "
        "FROM range(400000) t(i)",
        (MARK,),
    )
    con.execute("SELECT s FROM big ORDER BY r").fetchmany(1)  # a sort larger than memory
    spilled = _raw(tmp)
    assert len(spilled) > 1_000_000, "the sort did not spill; the test proves nothing"
    assert (MARK.encode() in spilled) is not encrypted
    con.close()


def test_another_key_does_not_open_the_copy(memory: MemoryManager) -> None:
    write_history(memory, ["ana"], messages=20)
    memory.analytics.export()
    con = _duck.connect(memory.analytics.directory / "tmp")
    with pytest.raises(AicoError):
        _duck.attach(con, memory.analytics.path, bytes(32), read_only=True)
    con.close()


def test_a_copy_under_an_old_key_is_removed(memory: MemoryManager) -> None:
    write_history(memory, ["ana"], messages=20)
    memory.analytics.export()
    old = memory.analytics.directory / "copy-0000000000000000.duckdb"
    old.write_bytes(b"left by an earlier master key")
    memory.store_message("ana", "s-new", "user", "one more", timestamp=START)
    assert memory.analytics.export().added["messages"] == 1
    assert not old.exists()
