"""Migration runner: moves one database between versions of its registered schemas.

Versions are tracked per schema in the ledger table ``_aico_schema_versions`` (one row per
applied version, with its checksum), never in one global counter, so plugins can come and
go without touching core schemas. Each version and its ledger row commit in one
transaction: a failing statement leaves the database exactly at the previous version.

Read-only calls (``status``, ``plan``, ``verify``) never create or change anything.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from aico.data.schema.registry import Schema, SchemaRegistry, SchemaVersion, default_registry
from aico.errors import (
    AicoError,
    ChecksumMismatch,
    DatabaseNewerThanCode,
    InvalidInput,
    MigrationError,
)

__all__ = [
    "LEDGER_TABLE",
    "MigrationStep",
    "Migrator",
    "SchemaStatus",
]

LEDGER_TABLE = "_aico_schema_versions"

_LEDGER_DDL = f"""
CREATE TABLE IF NOT EXISTS {LEDGER_TABLE} (
    schema_name TEXT NOT NULL,
    version INTEGER NOT NULL CHECK (version >= 1),
    name TEXT NOT NULL,
    checksum TEXT NOT NULL,
    applied_at REAL NOT NULL,
    PRIMARY KEY (schema_name, version)
)
"""


class Connection(Protocol):
    """What the runner needs from ``EncryptedLibSQLConnection``."""

    def execute(self, sql: str, params: Any = ...) -> Any: ...
    def fetch_all(self, sql: str, params: Any = ...) -> list[dict[str, Any]]: ...
    def fetch_value(self, sql: str, params: Any = ...) -> Any: ...
    def transaction(self) -> Any: ...


ChecksumState = Literal["ok", "mismatch", "newer", "unknown-schema"]


@dataclass(frozen=True)
class SchemaStatus:
    """Where one schema stands in one database."""

    schema: str
    database: str
    current: int
    latest: int
    pending: tuple[int, ...]
    checksum_state: ChecksumState
    mismatched: tuple[int, ...] = ()
    plugin: bool = False

    @property
    def ok(self) -> bool:
        return self.checksum_state == "ok"

    @property
    def at_head(self) -> bool:
        return self.ok and not self.pending


@dataclass(frozen=True)
class MigrationStep:
    """One version applied (``direction="up"``) or rolled back (``"down"``)."""

    schema: str
    version: int
    name: str
    direction: Literal["up", "down"]
    statements: tuple[str, ...] = field(repr=False, default=())


class Migrator:
    """Runs a registry's schemas against one open database connection."""

    def __init__(
        self, conn: Connection, database: str, *, registry: SchemaRegistry | None = None
    ) -> None:
        self.conn = conn
        self.database = database
        self.registry = registry if registry is not None else default_registry

    # ---- reading -------------------------------------------------------------------

    def _ledger_exists(self) -> bool:
        return bool(
            self.conn.fetch_value(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?",
                (LEDGER_TABLE,),
            )
        )

    def applied(self, schema: str | None = None) -> dict[str, dict[int, str]]:
        """``{schema: {version: checksum}}`` as recorded in the database (read-only)."""
        if not self._ledger_exists():
            return {}
        sql = f"SELECT schema_name, version, checksum FROM {LEDGER_TABLE}"
        params: tuple[Any, ...] = ()
        if schema is not None:
            sql += " WHERE schema_name = ?"
            params = (schema,)
        result: dict[str, dict[int, str]] = {}
        for row in self.conn.fetch_all(sql, params):
            result.setdefault(row["schema_name"], {})[int(row["version"])] = row["checksum"]
        return result

    def _status_of(self, schema: Schema, recorded: dict[int, str]) -> SchemaStatus:
        current = max(recorded, default=0)
        if current > schema.latest:
            return SchemaStatus(
                schema.name, self.database, current, schema.latest, (), "newer", (), schema.plugin
            )
        mismatched = tuple(
            v for v, checksum in sorted(recorded.items()) if schema.version(v).checksum != checksum
        )
        pending = tuple(range(current + 1, schema.latest + 1))
        state: ChecksumState = "mismatch" if mismatched else "ok"
        return SchemaStatus(
            schema.name,
            self.database,
            current,
            schema.latest,
            pending,
            state,
            mismatched,
            schema.plugin,
        )

    def status(self) -> list[SchemaStatus]:
        """Per schema: current, latest, pending, checksum state. Never writes."""
        recorded = self.applied()
        statuses = [
            self._status_of(schema, recorded.pop(schema.name, {}))
            for schema in self.registry.schemas(self.database)
        ]
        # Schemas present in the database but unknown to this code (removed plugin, or a
        # newer release): report them rather than hide them.
        for name, versions in sorted(recorded.items()):
            current = max(versions)
            statuses.append(
                SchemaStatus(name, self.database, current, 0, (), "unknown-schema", (), False)
            )
        return statuses

    def _check(self, status: SchemaStatus) -> None:
        if status.checksum_state == "newer":
            raise DatabaseNewerThanCode(
                f"database {self.database!r}: schema {status.schema!r} is at version "
                f"{status.current}, this code knows only up to {status.latest}; upgrade aico"
            )
        if status.checksum_state == "mismatch":
            raise ChecksumMismatch(
                f"database {self.database!r}: schema {status.schema!r} version(s) "
                f"{list(status.mismatched)} were applied with different SQL than the code has"
            )

    def verify(self) -> list[SchemaStatus]:
        """Raise on any checksum mismatch or newer database; return the statuses otherwise."""
        statuses = self.status()
        for status in statuses:
            if status.checksum_state in ("newer", "mismatch"):
                self._check(status)
        return statuses

    # ---- planning ------------------------------------------------------------------

    def _target_schemas(self, schema: str | None) -> list[Schema]:
        if schema is None:
            return self.registry.schemas(self.database)
        found = self.registry.get(schema)
        if found.database != self.database:
            raise InvalidInput(f"schema {schema!r} belongs to database {found.database!r}")
        return [found]

    def plan(self, *, schema: str | None = None, to: int | None = None) -> list[MigrationStep]:
        """The steps ``upgrade``/``downgrade`` would run, checked but not executed."""
        if to is not None and schema is None and len(self._target_schemas(None)) > 1:
            raise InvalidInput("--to needs a schema name when a database has several schemas")
        recorded = self.applied()
        steps: list[MigrationStep] = []
        for target in self._target_schemas(schema):
            status = self._status_of(target, recorded.get(target.name, {}))
            self._check(status)
            goal = target.latest if to is None else to
            if not 0 <= goal <= target.latest:
                raise InvalidInput(
                    f"schema {target.name!r} has versions 0..{target.latest}, not {goal}"
                )
            if goal >= status.current:
                for number in range(status.current + 1, goal + 1):
                    v = target.version(number)
                    steps.append(
                        MigrationStep(target.name, number, v.name, "up", tuple(v.sql_statements))
                    )
            else:
                for number in range(status.current, goal, -1):
                    v = target.version(number)
                    if not v.reversible:
                        raise MigrationError(
                            f"schema {target.name!r} version {number} has no rollback "
                            "statements; refusing to downgrade"
                        )
                    steps.append(
                        MigrationStep(
                            target.name, number, v.name, "down", tuple(v.rollback_statements)
                        )
                    )
        return steps

    # ---- writing -------------------------------------------------------------------

    def upgrade(
        self, *, schema: str | None = None, to: int | None = None, dry_run: bool = False
    ) -> list[MigrationStep]:
        """Apply pending versions (up to ``to``); return the steps applied (or planned)."""
        steps = self.plan(schema=schema, to=to)
        if any(step.direction == "down" for step in steps):
            raise InvalidInput("target is below the current version; use rollback")
        return steps if dry_run else self._run(steps)

    def downgrade(
        self, *, to: int, schema: str | None = None, dry_run: bool = False
    ) -> list[MigrationStep]:
        """Roll back to version ``to`` using the code's rollback statements."""
        steps = self.plan(schema=schema, to=to)
        if any(step.direction == "up" for step in steps):
            raise InvalidInput("target is above the current version; use migrate")
        return steps if dry_run else self._run(steps)

    def remove_plugin(self, name: str) -> list[MigrationStep]:
        """Roll a plugin schema back to 0 and drop its ledger rows; core schemas untouched."""
        schema = self.registry.get(name)
        if not schema.plugin:
            raise InvalidInput(f"schema {name!r} is not a plugin; refusing to remove it")
        steps = self.downgrade(schema=name, to=0)
        return steps

    def _run(self, steps: list[MigrationStep]) -> list[MigrationStep]:
        done: list[MigrationStep] = []
        if steps:
            self.conn.execute(_LEDGER_DDL)
        for step in steps:
            version = self.registry.get(step.schema).version(step.version)
            try:
                if version.transactional:
                    with self.conn.transaction():
                        self._execute_step(step, version)
                else:
                    self._execute_step(step, version)
            except AicoError as exc:
                raise MigrationError(
                    f"database {self.database!r}: schema {step.schema!r} version "
                    f"{step.version} ({step.direction}) failed and was rolled back: {exc}"
                ) from exc
            done.append(step)
        return done

    def _execute_step(self, step: MigrationStep, version: SchemaVersion) -> None:
        for index, statement in enumerate(step.statements, 1):
            try:
                self.conn.execute(statement)
            except AicoError as exc:
                raise MigrationError(f"statement {index}: {exc}") from exc
        if step.direction == "up":
            self.conn.execute(
                f"INSERT INTO {LEDGER_TABLE} (schema_name, version, name, checksum, applied_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (step.schema, step.version, version.name, version.checksum, time.time()),
            )
        else:
            self.conn.execute(
                f"DELETE FROM {LEDGER_TABLE} WHERE schema_name = ? AND version = ?",
                (step.schema, step.version),
            )
