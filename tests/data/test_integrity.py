"""Encryption at rest and the integrity seal: no plaintext on disk, tampering is refused."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from aico.data.libsql import EncryptedLibSQLConnection, SQLiteSettings
from aico.errors import DatabaseCorrupted

from .conftest import DB_KEY, OTHER_KEY, SEAL_KEY

MARKER = "quokka-lantern-8812"
PAGE = 4096


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def assert_marker_absent(root: Path, marker: str = MARKER) -> None:
    for path in files_under(root):
        data = path.read_bytes()
        for encoding in ("utf-8", "utf-16-le", "utf-16-be"):
            assert marker.encode(encoding) not in data, (path.name, encoding)


def flip(path: Path, offset: int) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 0x01]))


def seal_file(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".seal")


def fill(conn: EncryptedLibSQLConnection, rows: int = 200) -> None:
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    conn.execute_many(
        "INSERT INTO t (v) VALUES (?)", [(f"{MARKER}-{i:04d}-" + "x" * 80,) for i in range(rows)]
    )


def full_leaf_page(conn: EncryptedLibSQLConnection) -> int:
    """A leaf page of table t that is (nearly) full of row data."""
    rows = conn.fetch_all(
        "SELECT pageno, unused FROM dbstat WHERE name = 't' AND pagetype = 'leaf' "
        "ORDER BY unused, pageno LIMIT 1"
    )
    assert rows and rows[0]["unused"] < PAGE // 4
    return int(rows[0]["pageno"])


def expected_rows(rows: int = 200) -> list[str]:
    return [f"{MARKER}-{i:04d}-" + "x" * 80 for i in range(rows)]


# -- nothing readable on disk -----------------------------------------------------------


def test_marker_never_reaches_disk(open_db, db_path):
    conn = open_db()
    conn.execute("CREATE TABLE t (v TEXT)")
    conn.execute("CREATE VIRTUAL TABLE f USING fts5(body)")
    conn.execute("INSERT INTO t VALUES (?)", (MARKER,))
    with conn.transaction():
        conn.execute("INSERT INTO f (body) VALUES (?)", (f"the {MARKER} text",))
        conn.execute("INSERT INTO t VALUES (?)", (MARKER * 50,))  # long enough to overflow
    assert conn.fetch_value("SELECT count(*) FROM f WHERE f MATCH ?", (f'"{MARKER}"',)) == 1
    names = {p.name for p in files_under(db_path.parent)}
    assert {"test.db", "test.db-wal", "test.db-shm", "test.db.lock"} <= names
    assert_marker_absent(db_path.parent)
    conn.close()
    assert {p.name for p in files_under(db_path.parent)} == {
        "test.db",
        "test.db.lock",
        "test.db.seal",
    }
    assert_marker_absent(db_path.parent)


def test_stdlib_sqlite3_cannot_read_the_file(open_db, db_path):
    conn = open_db()
    fill(conn, rows=5)
    conn.close()
    plain = sqlite3.connect(db_path)
    try:
        with pytest.raises(sqlite3.DatabaseError):
            plain.execute("SELECT * FROM sqlite_master").fetchall()
    finally:
        plain.close()


def test_secure_delete_wipes_deleted_rows_from_decrypted_pages(open_db):
    # sqlite_dbpage shows the decrypted page images: the marker is there until deleted.
    conn = open_db()
    fill(conn, rows=50)
    assert conn.fetch_value("PRAGMA secure_delete") == 1

    def pages_with_marker() -> int:
        pages = conn.fetch_all("SELECT data FROM sqlite_dbpage")
        return sum(MARKER.encode() in p["data"] for p in pages)

    assert pages_with_marker() > 0
    conn.execute("DELETE FROM t")
    assert conn.checkpoint("TRUNCATE")
    assert pages_with_marker() == 0


def test_without_secure_delete_the_check_would_see_leftovers(open_db):
    # Control for the test above: the dbpage scan does find deleted-but-not-wiped bytes.
    conn = open_db(settings=SQLiteSettings(secure_delete=False))
    fill(conn, rows=50)
    conn.execute("DELETE FROM t WHERE id % 2 = 0")
    assert conn.checkpoint("TRUNCATE")
    pages = conn.fetch_all("SELECT data FROM sqlite_dbpage")
    assert any(f"{MARKER}-0002".encode() in p["data"] for p in pages)


# -- refusing what cannot be ours ---------------------------------------------------------


def test_wrong_key_is_database_corrupted(open_db, db_path):
    conn = open_db()
    fill(conn)
    conn.close()
    for kwargs in ({"seal_key": SEAL_KEY}, {"seal_key": None}):
        with pytest.raises(DatabaseCorrupted, match="another key"):
            EncryptedLibSQLConnection(db_path, OTHER_KEY, **kwargs)
    # A failed open leaves the file as it was: the right key still works.
    with EncryptedLibSQLConnection(db_path, DB_KEY, seal_key=SEAL_KEY) as conn:
        assert conn.fetch_value("SELECT count(*) FROM t") == 200


def test_plaintext_sqlite_file_is_refused(db_path):
    db_path.parent.mkdir(parents=True)
    plain = sqlite3.connect(db_path)
    plain.execute("CREATE TABLE t (v)")
    plain.commit()
    plain.close()
    with pytest.raises(DatabaseCorrupted, match="plaintext SQLite file, refusing"):
        EncryptedLibSQLConnection(db_path, DB_KEY)


def test_empty_file_is_refused_but_new_path_is_fine(tmp_path):
    empty = tmp_path / "empty.db"
    empty.touch()
    with pytest.raises(DatabaseCorrupted, match="empty"):
        EncryptedLibSQLConnection(empty, DB_KEY)
    EncryptedLibSQLConnection(tmp_path / "new.db", DB_KEY).close()


@pytest.mark.parametrize("seal", [True, False])
def test_truncated_file_is_database_corrupted(open_db, db_path, seal):
    conn = open_db(seal_key=SEAL_KEY if seal else None)
    fill(conn, rows=400)
    conn.close()
    size = db_path.stat().st_size
    os.truncate(db_path, (size // PAGE // 2) * PAGE)
    with pytest.raises(DatabaseCorrupted):
        EncryptedLibSQLConnection(db_path, DB_KEY, seal_key=SEAL_KEY if seal else None)
    os.truncate(db_path, PAGE + 100)  # not a whole number of pages
    with pytest.raises(DatabaseCorrupted, match="truncated"):
        EncryptedLibSQLConnection(db_path, DB_KEY)


# -- the seal -----------------------------------------------------------------------------


def test_seal_exists_only_while_closed(open_db, db_path):
    conn = open_db()
    fill(conn, rows=5)
    assert not seal_file(db_path).exists()
    conn.close()
    seal = json.loads(seal_file(db_path).read_text())
    assert seal["version"] == 1
    assert seal["db_size"] == db_path.stat().st_size
    assert seal["wal_size"] == seal["journal_size"] == 0
    assert MARKER not in seal_file(db_path).read_text()
    conn = open_db()
    assert not seal_file(db_path).exists()
    assert conn.fetch_value("SELECT count(*) FROM t") == 5


def test_only_the_last_closer_seals(open_db, db_path):
    first, second = open_db(), open_db()
    fill(first, rows=5)
    first.close()
    assert not seal_file(db_path).exists()
    second.execute("INSERT INTO t (v) VALUES ('late')")
    second.close()
    assert seal_file(db_path).exists()
    with open_db() as again:
        assert again.fetch_value("SELECT count(*) FROM t") == 6


def test_flipped_byte_in_a_data_page_is_caught_by_the_seal(open_db, db_path):
    conn = open_db()
    fill(conn)
    page = full_leaf_page(conn)
    conn.close()
    flip(db_path, (page - 1) * PAGE + PAGE // 2)
    for _ in range(2):  # the seal stays, so the damage is reported every time
        with pytest.raises(DatabaseCorrupted, match="integrity seal mismatch"):
            EncryptedLibSQLConnection(db_path, DB_KEY, seal_key=SEAL_KEY)


def test_flipped_byte_in_page_one_is_caught_by_the_seal(open_db, db_path):
    conn = open_db()
    fill(conn)
    conn.close()
    flip(db_path, PAGE // 2)
    with pytest.raises(DatabaseCorrupted, match="integrity seal mismatch"):
        EncryptedLibSQLConnection(db_path, DB_KEY, seal_key=SEAL_KEY)


def test_seal_from_another_key_or_unreadable_seal_fails(open_db, db_path):
    conn = open_db()
    fill(conn, rows=5)
    conn.close()
    with pytest.raises(DatabaseCorrupted, match="integrity seal mismatch"):
        EncryptedLibSQLConnection(db_path, DB_KEY, seal_key=OTHER_KEY)
    seal_file(db_path).write_text("{not json")
    with pytest.raises(DatabaseCorrupted, match="unreadable"):
        EncryptedLibSQLConnection(db_path, DB_KEY, seal_key=SEAL_KEY)


def test_planted_wal_is_caught_by_the_seal(open_db, db_path):
    conn = open_db()
    fill(conn, rows=5)
    conn.close()
    db_path.with_name(db_path.name + "-wal").write_bytes(os.urandom(PAGE))
    with pytest.raises(DatabaseCorrupted, match="integrity seal mismatch"):
        EncryptedLibSQLConnection(db_path, DB_KEY, seal_key=SEAL_KEY)


def test_planted_journal_is_caught_by_the_seal(open_db, db_path):
    conn = open_db()
    fill(conn, rows=5)
    conn.close()
    journal = db_path.with_name(db_path.name + "-journal")
    journal.write_bytes(bytes.fromhex("d9d505f920a163d7") + os.urandom(PAGE))
    with pytest.raises(DatabaseCorrupted, match="integrity seal mismatch"):
        EncryptedLibSQLConnection(db_path, DB_KEY, seal_key=SEAL_KEY)


def test_unsealed_database_is_quick_checked(open_db, db_path):
    conn = open_db(seal_key=None)
    fill(conn)
    conn.close()
    assert not seal_file(db_path).exists()
    # Garble the b-tree header of a leaf page: structural damage quick_check does see.
    with EncryptedLibSQLConnection(db_path, DB_KEY) as probe:
        leaf = full_leaf_page(probe)
    flip(db_path, (leaf - 1) * PAGE + 3)
    with pytest.raises(DatabaseCorrupted):
        EncryptedLibSQLConnection(db_path, DB_KEY)


def _varint(data: bytes, at: int) -> tuple[int, int]:
    """An SQLite varint at ``at``: (value, offset after it)."""
    value = 0
    for n in range(9):
        byte = data[at + n]
        if n == 8:
            return (value << 8) | byte, at + 9
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            return value, at + n + 1
    raise AssertionError("unreachable")


def leaf_layout(image: bytes) -> list[tuple[str, int | None]]:
    """For each byte of a decrypted table-leaf page: its role and the rowid it belongs to.

    Roles: ``structure`` (page header, cell pointers, a cell's size and rowid varints, a
    record's header), ``payload`` (column values), ``unused``.
    """
    assert image[0] == 0x0D, "not a table leaf page"
    cells = int.from_bytes(image[3:5], "big")
    roles: list[tuple[str, int | None]] = [("unused", None)] * len(image)
    for i in range(8 + 2 * cells):
        roles[i] = ("structure", None)
    for k in range(cells):
        start = int.from_bytes(image[8 + 2 * k : 10 + 2 * k], "big")
        size, at = _varint(image, start)
        rowid, at = _varint(image, at)
        header_size, _ = _varint(image, at)
        for i in range(start, at + header_size):
            roles[i] = ("structure", rowid)
        for i in range(at + header_size, at + size):
            roles[i] = ("payload", rowid)
    return roles


def garbled_by_flip(offset: int) -> set[int]:
    """Plaintext bytes a flipped ciphertext byte changes under CBC: its whole 16-byte block,
    and the same bit of the next block."""
    block = offset - offset % 16
    hit = set(range(block, block + 16))
    if offset + 16 < PAGE:
        hit.add(offset + 16)
    return hit


def test_unsealed_flips_have_their_documented_outcome(open_db, db_path):
    """One flipped bit in every 16-byte block of a full leaf page of an unsealed file.

    Documented outcome, per where the garbled plaintext lands (docs/security.md):
    structure (page header, cell pointers, cell and record headers) -> refused, at open
    (quick_check) or on the read; payload only -> refused on the read or silently garbled,
    in exactly the row(s) whose value holds the garbled bytes, never another row; unused
    space only -> intact. Never a panic, and a file refused anywhere is never sealed.
    """
    conn = open_db(seal_key=None)
    fill(conn)
    leaf = full_leaf_page(conn)
    roles = leaf_layout(conn.fetch_value("SELECT data FROM sqlite_dbpage WHERE pgno = ?", (leaf,)))
    ids = [r["id"] for r in conn.fetch_all("SELECT id FROM t ORDER BY id")]
    conn.close()
    pristine = db_path.read_bytes()
    seen: dict[str, int] = {}
    for offset in range(7, PAGE, 16):  # one bit in every block of the page
        hit = [roles[i] for i in garbled_by_flip(offset)]
        kinds = {kind for kind, _ in hit}
        rows = {rowid for kind, rowid in hit if kind == "payload"}
        where = "structure" if "structure" in kinds else "payload" if rows else "unused"
        db_path.write_bytes(pristine)
        seal_file(db_path).unlink(missing_ok=True)
        flip(db_path, (leaf - 1) * PAGE + offset)
        try:
            handle = EncryptedLibSQLConnection(db_path, DB_KEY, seal_key=SEAL_KEY)
        except DatabaseCorrupted as exc:
            outcome = "refused at open"
            assert exc.path == db_path
        else:
            try:
                got = handle.fetch_all("SELECT id, v FROM t ORDER BY id")
                assert [r["id"] for r in got] == ids, offset  # no row lost or renumbered
                wrong = {r["id"] for r in got if r["v"] != expected_rows()[r["id"] - 1]}
                outcome = "garbled" if wrong else "intact"
                assert wrong <= rows, (offset, wrong, rows)  # never another row
            except DatabaseCorrupted as exc:
                outcome = "refused on read"
                assert exc.path == db_path
            handle.close()
        if outcome.startswith("refused"):
            assert not seal_file(db_path).exists(), offset
        allowed = {
            "structure": {"refused at open", "refused on read"},
            "payload": {"refused on read", "garbled"},
            "unused": {"intact"},
        }[where]
        assert outcome in allowed, (offset, where, outcome)
        seen[f"{where}: {outcome}"] = seen.get(f"{where}: {outcome}", 0) + 1
    # The page has all three kinds of flips (no "unused": the page is nearly full).
    assert seen.get("structure: refused at open", 0) > 0
    assert seen.get("payload: refused on read", 0) > 0


def test_a_garbled_row_is_sealed_all_the_same(open_db, db_path):
    """The documented limit: quick_check cannot see a garbled value, so the next clean close
    seals the garbled file. Found by search: a flip whose garbled block holds a NUL byte,
    where the driver cuts TEXT, before any byte that is not UTF-8."""
    conn = open_db(seal_key=None)
    fill(conn)
    leaf = full_leaf_page(conn)
    roles = leaf_layout(conn.fetch_value("SELECT data FROM sqlite_dbpage WHERE pgno = ?", (leaf,)))
    conn.close()
    pristine = db_path.read_bytes()
    for offset in range(7, PAGE, 16):
        db_path.write_bytes(pristine)
        seal_file(db_path).unlink(missing_ok=True)
        if {roles[i][0] for i in garbled_by_flip(offset)} != {"payload"}:
            continue
        flip(db_path, (leaf - 1) * PAGE + offset)
        with EncryptedLibSQLConnection(db_path, DB_KEY, seal_key=SEAL_KEY) as handle:
            try:
                rows = [r["v"] for r in handle.fetch_all("SELECT v FROM t ORDER BY id")]
            except DatabaseCorrupted:
                continue
        if rows != expected_rows():
            break
    else:
        pytest.skip("no flip of this page garbles a value silently")
    assert seal_file(db_path).exists()
    with EncryptedLibSQLConnection(db_path, DB_KEY, seal_key=SEAL_KEY) as handle:
        assert [r["v"] for r in handle.fetch_all("SELECT v FROM t ORDER BY id")] == rows


# -- no seal over damage ------------------------------------------------------------------


def break_leaf_header_while_open(db_path: Path, conn: EncryptedLibSQLConnection) -> None:
    """Structural damage on disk, behind the open connection's back (WAL checkpointed)."""
    leaf = full_leaf_page(conn)
    assert conn.checkpoint("TRUNCATE")
    flip(db_path, (leaf - 1) * PAGE + 3)


def test_a_file_opened_unsealed_is_checked_again_before_it_is_sealed(open_db, db_path):
    conn = open_db()
    fill(conn)
    conn.close()
    seal_file(db_path).unlink()  # as a crash leaves it: the next session opens unsealed
    conn = open_db()
    assert conn.fetch_value("SELECT count(*) FROM t") == 200
    break_leaf_header_while_open(db_path, conn)
    conn.close()
    assert not seal_file(db_path).exists()  # quick_check at close failed: no seal
    with pytest.raises(DatabaseCorrupted, match="is damaged"):
        EncryptedLibSQLConnection(db_path, DB_KEY, seal_key=SEAL_KEY)


def test_corruption_seen_by_one_opener_stops_another_from_sealing(open_db, db_path):
    conn = open_db()
    fill(conn)
    conn.close()
    first, last = open_db(), open_db()  # opened sealed: nothing would re-check at close
    break_leaf_header_while_open(db_path, first)
    with pytest.raises(DatabaseCorrupted) as info:
        first.fetch_all("SELECT v FROM t")  # a fresh reader reads the broken page
    assert info.value.path == db_path
    first.close()
    last.close()  # the last closer never saw the damage itself
    assert not seal_file(db_path).exists()
    with pytest.raises(DatabaseCorrupted):
        EncryptedLibSQLConnection(db_path, DB_KEY, seal_key=SEAL_KEY)


def test_a_clean_session_is_sealed_without_a_second_check(open_db, db_path):
    conn = open_db()
    fill(conn)
    conn.close()
    with open_db() as again:
        again.execute("INSERT INTO t (v) VALUES ('one more')")
    assert seal_file(db_path).exists()


UNCLEAN_CHILD = """
import os, sys
from aico.data.libsql import EncryptedLibSQLConnection
conn = EncryptedLibSQLConnection(sys.argv[1], bytes.fromhex(sys.argv[2]))
conn.execute("CREATE TABLE t (v TEXT)")
conn.execute_many("INSERT INTO t VALUES (?)", [(str(i),) for i in range(2000)])
os._exit(0)  # no close, no checkpoint: the rows live only in the WAL
"""


@pytest.mark.slow
def test_wrong_key_never_touches_an_unclean_database(db_path):
    """SQLite would checkpoint the leftover WAL through the wrong key when the rejected
    connection closes, destroying the database; the key is proved on a scratch copy first."""
    db_path.parent.mkdir(parents=True)
    subprocess.run([sys.executable, "-c", UNCLEAN_CHILD, str(db_path), DB_KEY.hex()], check=True)
    wal = db_path.with_name(db_path.name + "-wal")
    sidecar = db_path.with_name(db_path.name + ".lock")  # its commit and session records
    before = {p.name: p.read_bytes() for p in (db_path, wal, sidecar)}
    assert len(before[wal.name]) > 0
    for _ in range(2):
        with pytest.raises(DatabaseCorrupted, match="another key"):
            EncryptedLibSQLConnection(db_path, OTHER_KEY, seal_key=SEAL_KEY)
    assert {p.name: p.read_bytes() for p in (db_path, wal, sidecar)} == before
    assert not [p for p in db_path.parent.iterdir() if p.name.startswith(".keycheck")]
    with EncryptedLibSQLConnection(db_path, DB_KEY, seal_key=SEAL_KEY) as conn:
        assert conn.fetch_value("SELECT count(*) FROM t") == 2000
