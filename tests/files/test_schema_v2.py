"""file_index v2: files gain an owner and a stat cache; rows of v1 and their children survive."""

from __future__ import annotations

import pytest

from aico.data.libsql import EncryptedLibSQLConnection
from aico.data.schema import Migrator
from aico.errors import ConstraintViolation


def _at(conn: EncryptedLibSQLConnection, version: int) -> Migrator:
    migrator = Migrator(conn, "file_index")
    migrator.upgrade(schema="file_index", to=version)
    return migrator


def test_v1_rows_and_their_children_survive_the_rebuild(conn: EncryptedLibSQLConnection) -> None:
    migrator = _at(conn, 1)
    conn.execute("INSERT INTO files (id, path, name) VALUES ('f1', '/a/x.py', 'x.py')")
    conn.execute("INSERT INTO files (id, path, name) VALUES ('f2', '/a/y.py', 'y.py')")
    conn.execute(
        "INSERT INTO file_relationships (id, source_file_id, target_file_id, relationship_type)"
        " VALUES ('r1', 'f1', 'f2', 'imports')"
    )
    conn.execute(
        "INSERT INTO file_changes (id, file_id, change_type) VALUES ('c1', 'f1', 'created')"
    )
    conn.execute(
        "INSERT INTO file_snippets (id, file_id, snippet_type) VALUES ('s1', 'f1', 'class')"
    )
    migrator.upgrade(schema="file_index")
    assert conn.fetch_value("SELECT count(*) FROM file_relationships") == 1
    assert conn.fetch_value("SELECT count(*) FROM file_changes") == 1
    assert conn.fetch_value("SELECT count(*) FROM file_snippets") == 1
    # The children now point at the rebuilt table: deleting a file cascades.
    conn.execute("DELETE FROM files WHERE id = 'f1'")
    assert conn.fetch_value("SELECT count(*) FROM file_relationships") == 0
    assert conn.fetch_value("SELECT count(*) FROM file_changes") == 0
    assert conn.fetch_value("SELECT count(*) FROM file_snippets") == 0
    tables = {
        r["name"] for r in conn.fetch_all("SELECT name FROM sqlite_master WHERE type = 'table'")
    }
    assert not {t for t in tables if t.endswith("_v2")}


def test_a_path_is_unique_per_user_and_root(conn: EncryptedLibSQLConnection) -> None:
    _at(conn, 2)
    insert = "INSERT INTO files (id, user_id, root_path, path, name) VALUES (?, ?, ?, ?, ?)"
    conn.execute(insert, ("a", "alice", "/r", "/r/x", "x"))
    conn.execute(insert, ("b", "bob", "/r", "/r/x", "x"))
    conn.execute(insert, ("c", "alice", "/r/sub", "/r/x", "x"))
    with pytest.raises(ConstraintViolation):
        conn.execute(insert, ("d", "alice", "/r", "/r/x", "x"))
