"""The decorator schema registry and the migration runner, on real encrypted databases."""

from __future__ import annotations

import pytest

from aico.data.schema import (
    LEDGER_TABLE,
    Migrator,
    SchemaRegistry,
    SchemaVersion,
    register_schema,
)
from aico.errors import (
    ChecksumMismatch,
    DatabaseNewerThanCode,
    InvalidInput,
    MigrationError,
    RegistrationError,
)


def v(n: int, *sql: str, rollback: tuple[str, ...] = ()) -> SchemaVersion:
    return SchemaVersion(n, f"v{n}", f"version {n}", list(sql), list(rollback))


NOTES_V1 = v(
    1, "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)", rollback=("DROP TABLE notes",)
)
NOTES_V2 = v(
    2,
    "ALTER TABLE notes ADD COLUMN tag TEXT",
    "CREATE INDEX idx_notes_tag ON notes(tag)",
    rollback=("DROP INDEX idx_notes_tag", "ALTER TABLE notes DROP COLUMN tag"),
)


def tables(conn) -> set[str]:
    rows = conn.fetch_all("SELECT name FROM sqlite_master WHERE type IN ('table', 'index')")
    return {r["name"] for r in rows if not r["name"].startswith("sqlite_")}


def registry_with(*versions: SchemaVersion, name: str = "notes", plugin: bool = False):
    reg = SchemaRegistry()
    reg.register(name, "test", list(versions), plugin=plugin)
    return reg


# ---- registration ------------------------------------------------------------------


def test_decorator_on_function_class_and_dict_call():
    reg = SchemaRegistry()

    @register_schema("fn_schema", "test", priority=5, registry=reg)
    def versions():
        return {1: NOTES_V1}

    @register_schema("cls_schema", "test", registry=reg)
    class Versions:
        versions = (NOTES_V1, NOTES_V2)

    as_dict = register_schema("dict_schema", "other", registry=reg)({1: NOTES_V1})
    schema = register_schema("kw_schema", "other", versions={1: NOTES_V1}, registry=reg)

    assert callable(versions) and Versions.versions[0] is NOTES_V1 and as_dict == {1: NOTES_V1}
    assert schema.latest == 1
    assert [s.name for s in reg.schemas("test")] == ["fn_schema", "cls_schema"]
    assert reg.get("cls_schema").latest == 2
    assert reg.databases() == ["other", "test"]


def test_version_gaps_duplicates_and_mismatched_keys_fail_at_registration():
    reg = SchemaRegistry()
    with pytest.raises(RegistrationError, match="without gaps"):
        reg.register("gappy", "test", [NOTES_V1, v(3, "SELECT 1")])
    with pytest.raises(RegistrationError, match="does not match"):
        reg.register("keys", "test", {2: NOTES_V1})
    with pytest.raises(RegistrationError, match="without gaps"):
        reg.register("start", "test", [NOTES_V2])
    with pytest.raises(RegistrationError):
        reg.register("Bad Name", "test", [NOTES_V1])
    with pytest.raises(RegistrationError, match="no statements"):
        v(1)
    with pytest.raises(RegistrationError, match="list of strings"):
        SchemaVersion(1, "x", "y", "CREATE TABLE t(x)")  # type: ignore[arg-type]


def test_duplicate_name_rejected_unless_identical():
    reg = SchemaRegistry()
    reg.register("notes", "test", [NOTES_V1])
    reg.register("notes", "test", [NOTES_V1])  # idempotent
    with pytest.raises(RegistrationError, match="already registered"):
        reg.register("notes", "test", [NOTES_V1, NOTES_V2])


def test_checksum_ignores_whitespace_but_not_sql():
    a = v(1, "CREATE TABLE t (x INT)")
    b = v(1, "CREATE   TABLE t (x INT);\n")
    c = v(1, "CREATE TABLE t (x TEXT)")
    assert a.checksum == b.checksum != c.checksum


# ---- applying ----------------------------------------------------------------------


def test_apply_and_idempotent_reapply(conn):
    reg = registry_with(NOTES_V1, NOTES_V2)
    applied = reg.apply(conn, "test")
    assert applied == [("notes", 1), ("notes", 2)]
    assert {"notes", "idx_notes_tag", LEDGER_TABLE} <= tables(conn)
    assert reg.apply(conn, "test") == []
    [status] = Migrator(conn, "test", registry=reg).status()
    assert (status.current, status.latest, status.pending, status.checksum_state) == (
        2,
        2,
        (),
        "ok",
    )


def test_status_and_dry_run_change_nothing(conn):
    reg = registry_with(NOTES_V1, NOTES_V2)
    migrator = Migrator(conn, "test", registry=reg)
    before = tables(conn)
    [status] = migrator.status()
    assert status.current == 0 and status.pending == (1, 2)
    steps = migrator.upgrade(dry_run=True)
    assert [(s.schema, s.version) for s in steps] == [("notes", 1), ("notes", 2)]
    assert tables(conn) == before  # not even the ledger table was created


def test_failing_migration_leaves_previous_version(conn):
    bad_v2 = v(2, "CREATE TABLE half_done (x INT)", "INSERT INTO no_such_table VALUES (1)")
    reg = registry_with(NOTES_V1, bad_v2)
    with pytest.raises(MigrationError, match="version 2"):
        reg.apply(conn, "test")
    assert "half_done" not in tables(conn)
    assert "notes" in tables(conn)
    [status] = Migrator(conn, "test", registry=reg).status()
    assert status.current == 1 and status.pending == (2,)


def test_applied_version_with_changed_sql_raises_checksum_mismatch(conn):
    registry_with(NOTES_V1).apply(conn, "test")
    edited = v(1, "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT, extra INT)")
    reg = registry_with(edited, NOTES_V2)
    migrator = Migrator(conn, "test", registry=reg)
    [status] = migrator.status()
    assert status.checksum_state == "mismatch" and status.mismatched == (1,)
    with pytest.raises(ChecksumMismatch):
        migrator.upgrade()
    with pytest.raises(ChecksumMismatch):
        migrator.verify()
    assert "tag" not in {c["name"] for c in conn.fetch_all("PRAGMA table_info(notes)")}


def test_database_newer_than_code_is_refused(conn):
    registry_with(NOTES_V1, NOTES_V2).apply(conn, "test")
    old_code = registry_with(NOTES_V1)
    migrator = Migrator(conn, "test", registry=old_code)
    assert migrator.status()[0].checksum_state == "newer"
    with pytest.raises(DatabaseNewerThanCode):
        migrator.upgrade()


def test_upgrade_to_a_target_then_rollback(conn):
    reg = registry_with(NOTES_V1, NOTES_V2)
    migrator = Migrator(conn, "test", registry=reg)
    assert [s.version for s in migrator.upgrade(to=1)] == [1]
    assert migrator.status()[0].current == 1
    migrator.upgrade()
    conn.execute("INSERT INTO notes (body, tag) VALUES ('kept', 't')")
    steps = migrator.downgrade(to=1)
    assert [(s.version, s.direction) for s in steps] == [(2, "down")]
    assert "idx_notes_tag" not in tables(conn)
    assert conn.fetch_value("SELECT body FROM notes") == "kept"
    migrator.downgrade(to=0)
    assert "notes" not in tables(conn)
    assert migrator.status()[0].current == 0


def test_rollback_refused_without_rollback_statements(conn):
    reg = registry_with(NOTES_V1, v(2, "CREATE TABLE other (x INT)"))
    migrator = Migrator(conn, "test", registry=reg)
    migrator.upgrade()
    with pytest.raises(MigrationError, match="no rollback"):
        migrator.downgrade(to=0)
    assert migrator.status()[0].current == 2  # refused before touching anything


def test_to_without_schema_is_ambiguous_with_several_schemas(conn):
    reg = registry_with(NOTES_V1)
    reg.register("other", "test", [v(1, "CREATE TABLE other (x INT)")])
    with pytest.raises(InvalidInput, match="needs a schema"):
        Migrator(conn, "test", registry=reg).upgrade(to=1)


def test_plugins_are_isolated_from_core(conn):
    reg = registry_with(NOTES_V1, NOTES_V2)
    reg.register(
        "plugin_x",
        "test",
        [v(1, "CREATE TABLE plugin_x_items (x INT)", rollback=("DROP TABLE plugin_x_items",))],
        priority=500,
        plugin=True,
    )
    migrator = Migrator(conn, "test", registry=reg)
    migrator.upgrade()
    core_rows = conn.fetch_all(
        f"SELECT * FROM {LEDGER_TABLE} WHERE schema_name = 'notes' ORDER BY version"
    )
    migrator.remove_plugin("plugin_x")
    assert "plugin_x_items" not in tables(conn)
    assert (
        conn.fetch_all(f"SELECT * FROM {LEDGER_TABLE} WHERE schema_name = 'notes' ORDER BY version")
        == core_rows
    )
    assert {"notes", "idx_notes_tag"} <= tables(conn)
    with pytest.raises(InvalidInput, match="not a plugin"):
        migrator.remove_plugin("notes")


def test_failing_plugin_does_not_touch_core(conn):
    reg = registry_with(NOTES_V1)
    reg.register(
        "broken", "test", [v(1, "CREATE TABLE notes (dup INT)")], priority=900, plugin=True
    )
    with pytest.raises(MigrationError):
        Migrator(conn, "test", registry=reg).upgrade()
    statuses = {s.schema: s for s in Migrator(conn, "test", registry=reg).status()}
    assert statuses["notes"].current == 1 and statuses["broken"].current == 0


def test_unknown_schema_in_database_is_reported(conn):
    registry_with(NOTES_V1, name="gone").apply(conn, "test")
    statuses = Migrator(conn, "test", registry=registry_with(NOTES_V1)).status()
    assert [(s.schema, s.checksum_state) for s in statuses] == [
        ("notes", "ok"),
        ("gone", "unknown-schema"),
    ]


def test_builtin_schemas_apply_on_every_database(tmp_path, master_key):
    from aico.data.libsql import EncryptedLibSQLConnection
    from aico.data.schema import default_registry
    from aico.data.schemas import DATABASE_FILES
    from aico.security import Purpose

    for database in DATABASE_FILES:
        with EncryptedLibSQLConnection(
            tmp_path / f"{database}.db", master_key.subkey(Purpose.libsql(database))
        ) as c:
            applied = default_registry.apply(c, database)
            assert applied and all(version >= 1 for _, version in applied)
            assert c.fetch_value("PRAGMA foreign_key_check") is None
