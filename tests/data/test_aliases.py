"""The data layer's documented import paths and snippets run exactly as written."""

from __future__ import annotations

import importlib

import pytest

# The data layer's documented snippet, line for line (run as is, not reordered by isort).
SNIPPET = """\
from aico.data.logs import LogRepository
from aico.data.user import UserService
from aico.data.libsql.registry import SchemaRegistry
SchemaRegistry.apply_core_schemas(connection)
"""

# Tables of the "core" schema and of the "semantic" feature schema, both in database core.
CORE_TABLES = {
    "users",
    "logs",
    "facts",
    "feedback_events",
    "tasks",
    "semantic_segments",
    "semantic_outbox",
}


@pytest.mark.parametrize(
    ("alias", "source", "names"),
    [
        (
            "aico.data.logs",
            "aico.data.repositories.logs",
            ["LOG_LEVELS", "LogEntry", "LogRepository"],
        ),
        (
            "aico.data.user",
            "aico.data.repositories.users",
            ["USER_TYPES", "UserProfile", "UserService"],
        ),
        ("aico.data.libsql.registry", "aico.data.schema.registry", ["SchemaRegistry"]),
    ],
)
def test_alias_modules_reexport_the_same_objects(alias, source, names):
    alias_module = importlib.import_module(alias)
    source_module = importlib.import_module(source)
    assert alias_module.__all__ == names
    for name in names:
        assert getattr(alias_module, name) is getattr(source_module, name)


def test_documented_snippet_applies_every_core_schema(open_db):
    from aico.data.schema import Migrator, default_registry

    connection = open_db()
    namespace = {"connection": connection}
    exec(SNIPPET, namespace)
    LogRepository = namespace["LogRepository"]
    UserService = namespace["UserService"]
    SchemaRegistry = namespace["SchemaRegistry"]

    tables = {
        row["name"]
        for row in connection.fetch_all("SELECT name FROM sqlite_master WHERE type = 'table'")
    }
    assert tables >= CORE_TABLES

    # Nothing is left to apply: every core schema (built-in and feature) is at head, and
    # the set is the one DataStore.migrate applies (the default registry after loading).
    statuses = Migrator(connection, "core").status()
    assert {s.schema for s in statuses} == {s.name for s in default_registry.schemas("core")}
    assert {"core", "semantic"} <= {s.schema for s in statuses}
    assert all(s.at_head and s.pending == () for s in statuses)
    assert Migrator(connection, "core").plan() == []
    assert SchemaRegistry.apply_core_schemas(connection) == []

    # The aliased repositories work on the migrated connection.
    user = UserService(connection).create_user("Ada")
    log_id = LogRepository(connection).insert_log(level="info", message="hi", user_id=user.user_id)
    assert UserService(connection).get_profile(user.user_id).display_name == "Ada"
    assert connection.fetch_value("SELECT message FROM logs WHERE id = ?", (log_id,)) == "hi"


def test_apply_core_schemas_returns_the_steps_applied(open_db):
    import aico.ai.memory.semantic.schema  # noqa: F401  (the plan sees what the call adds)
    from aico.data.libsql.registry import SchemaRegistry
    from aico.data.schema import Migrator

    connection = open_db()
    planned = [(step.schema, step.version) for step in Migrator(connection, "core").plan()]
    applied = SchemaRegistry.apply_core_schemas(connection)
    assert applied == planned
    assert ("semantic", 1) in applied
