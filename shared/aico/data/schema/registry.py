"""Decorator schema registry: schemas declare their versions once, in code, next to the feature.

A schema is a named, ordered list of ``SchemaVersion`` objects that belongs to one database
("core", "conversations", ...). Registration validates the list up front (versions must run
1..N with no gaps, names are unique) so a broken definition fails at import, not halfway
through a migration. Applying versions is the runner's job (``aico.data.schema.runner``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

from aico.errors import RegistrationError

__all__ = [
    "Schema",
    "SchemaRegistry",
    "SchemaVersion",
    "default_registry",
    "register_schema",
]

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_WS_RE = re.compile(r"\s+")

T = TypeVar("T")


def _normalize(statement: str) -> str:
    """Whitespace-insensitive form, so reformatting SQL does not count as rewriting history."""
    return _WS_RE.sub(" ", statement).strip().rstrip(";").strip()


@dataclass(frozen=True)
class SchemaVersion:
    """One atomic step of a schema.

    ``transactional=False`` is the escape hatch for statements SQLite refuses inside a
    transaction (``VACUUM``, ``PRAGMA journal_mode``); such a version is applied statement
    by statement and its ledger row written last.
    """

    version: int
    name: str
    description: str
    sql_statements: Sequence[str]
    rollback_statements: Sequence[str] = ()
    transactional: bool = True
    checksum: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.sql_statements, str) or isinstance(self.rollback_statements, str):
            raise RegistrationError(
                f"version {self.version}: statements must be a list of strings, not one string"
            )
        object.__setattr__(self, "sql_statements", tuple(self.sql_statements))
        object.__setattr__(self, "rollback_statements", tuple(self.rollback_statements))
        if not isinstance(self.version, int) or isinstance(self.version, bool) or self.version < 1:
            raise RegistrationError(f"version numbers start at 1, got {self.version!r}")
        if not self.sql_statements:
            raise RegistrationError(f"version {self.version} has no statements")
        payload = json.dumps([self.version, [_normalize(s) for s in self.sql_statements]])
        object.__setattr__(self, "checksum", hashlib.sha256(payload.encode()).hexdigest())

    @property
    def reversible(self) -> bool:
        return bool(self.rollback_statements)


@dataclass(frozen=True)
class Schema:
    """A registered schema: its database, apply order and versions 1..latest."""

    name: str
    database: str
    priority: int
    versions: tuple[SchemaVersion, ...]
    plugin: bool = False

    @property
    def latest(self) -> int:
        return self.versions[-1].version

    def version(self, number: int) -> SchemaVersion:
        if not 1 <= number <= self.latest:
            raise RegistrationError(f"schema {self.name!r} has no version {number}")
        return self.versions[number - 1]


VersionsLike = Mapping[int, SchemaVersion] | Iterable[SchemaVersion]


def _coerce_versions(name: str, versions: VersionsLike) -> tuple[SchemaVersion, ...]:
    if isinstance(versions, Mapping):
        items = []
        for key, value in versions.items():
            if not isinstance(value, SchemaVersion):
                raise RegistrationError(f"schema {name!r}: {key!r} is not a SchemaVersion")
            if key != value.version:
                raise RegistrationError(
                    f"schema {name!r}: key {key!r} does not match version {value.version}"
                )
            items.append(value)
    else:
        items = list(versions)
        for value in items:
            if not isinstance(value, SchemaVersion):
                raise RegistrationError(f"schema {name!r}: {value!r} is not a SchemaVersion")
    items.sort(key=lambda v: v.version)
    if not items:
        raise RegistrationError(f"schema {name!r} has no versions")
    numbers = [v.version for v in items]
    expected = list(range(1, len(items) + 1))
    if numbers != expected:
        missing = sorted(set(range(1, max(numbers) + 1)) - set(numbers))
        dupes = sorted({n for n in numbers if numbers.count(n) > 1})
        detail = f"missing {missing}" if missing else f"duplicated {dupes}"
        raise RegistrationError(f"schema {name!r}: versions must run 1..N without gaps ({detail})")
    return tuple(items)


class SchemaRegistry:
    """Holds schemas by name. Most code uses ``default_registry``; tests make their own."""

    def __init__(self) -> None:
        self._schemas: dict[str, Schema] = {}

    def register(
        self,
        name: str,
        database: str,
        versions: VersionsLike,
        *,
        priority: int = 100,
        plugin: bool = False,
    ) -> Schema:
        """Validate and add a schema; re-registering the identical definition is a no-op."""
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise RegistrationError(f"invalid schema name {name!r} (lowercase, digits, _)")
        if not isinstance(database, str) or not _NAME_RE.match(database):
            raise RegistrationError(f"invalid database name {database!r}")
        if not isinstance(priority, int) or isinstance(priority, bool):
            raise RegistrationError(f"schema {name!r}: priority must be an int")
        schema = Schema(name, database, priority, _coerce_versions(name, versions), plugin)
        existing = self._schemas.get(name)
        if existing is not None:
            if existing == schema:
                return existing
            raise RegistrationError(f"schema {name!r} is already registered differently")
        self._schemas[name] = schema
        return schema

    def unregister(self, name: str) -> None:
        """Forget a schema (plugins being removed); the database is untouched."""
        self._schemas.pop(name, None)

    def get(self, name: str) -> Schema:
        try:
            return self._schemas[name]
        except KeyError:
            raise RegistrationError(f"no schema named {name!r} is registered") from None

    def schemas(self, database: str | None = None) -> list[Schema]:
        """Schemas in apply order: priority, then name (deterministic across runs)."""
        found = [s for s in self._schemas.values() if database is None or s.database == database]
        return sorted(found, key=lambda s: (s.priority, s.name))

    def databases(self) -> list[str]:
        return sorted({s.database for s in self._schemas.values()})

    def __contains__(self, name: object) -> bool:
        return name in self._schemas

    # Convenience kept from AICO's API: apply everything registered for a database.
    def apply(self, conn: Any, database: str = "core") -> list[tuple[str, int]]:
        """Apply all pending versions for ``database``; return ``(schema, version)`` applied."""
        from aico.data.schema.runner import Migrator

        steps = Migrator(conn, database, registry=self).upgrade()
        return [(step.schema, step.version) for step in steps]

    @classmethod
    def apply_core_schemas(cls, conn: Any, database: str = "core") -> list[tuple[str, int]]:
        """Upgrade ``conn`` to head for every schema of ``database`` in the default registry.

        The set is the one a store opened by the memory layer (``aico.ai.memory.stores``)
        migrates: the built-in schemas of ``aico.data.schemas`` plus the "semantic" feature
        schema. Returns ``(schema, version)`` for each version applied, ``[]`` when already
        at head; raises on any failure.
        """
        # This compatibility entry point (AICO's documented snippet) is the one place in
        # aico.data that names a feature schema; ``DataStore`` itself is given its registry.
        # Lazy: both modules import this one.
        import aico.ai.memory.semantic.schema  # registers "semantic"
        import aico.data.schemas  # noqa: F401  (registers the built-ins)

        return default_registry.apply(conn, database)


default_registry = SchemaRegistry()


@overload
def register_schema(
    name: str,
    database: str,
    priority: int = ...,
    *,
    plugin: bool = ...,
    registry: SchemaRegistry | None = ...,
) -> Callable[[T], T]: ...
@overload
def register_schema(
    name: str,
    database: str,
    priority: int = ...,
    *,
    versions: VersionsLike,
    plugin: bool = ...,
    registry: SchemaRegistry | None = ...,
) -> Schema: ...
def register_schema(
    name: str,
    database: str,
    priority: int = 100,
    *,
    versions: VersionsLike | None = None,
    plugin: bool = False,
    registry: SchemaRegistry | None = None,
) -> Callable[[T], T] | Schema:
    """Register a schema, as a decorator or a call.

    As a decorator on a function or class, the function (or the class's ``versions``
    attribute / call) provides the versions; the decorated object is returned unchanged.
    Called on a dict: ``register_schema("x", "core")({1: SchemaVersion(...)})`` returns the
    dict, and ``register_schema("x", "core", versions={...})`` returns the ``Schema``.
    """
    target = registry if registry is not None else default_registry
    if versions is not None:
        return target.register(name, database, versions, priority=priority, plugin=plugin)

    def decorator(obj: T) -> T:
        found: Any
        if isinstance(obj, Mapping | list | tuple):
            found = obj
        elif isinstance(obj, type):
            found = getattr(obj, "versions", None)
            if found is None:
                raise RegistrationError(f"class {obj.__name__} has no 'versions' attribute")
            if callable(found):
                found = found()
        elif callable(obj):
            found = obj()
        else:
            raise RegistrationError(f"cannot register {type(obj).__name__} as schema {name!r}")
        target.register(name, database, found, priority=priority, plugin=plugin)
        return obj

    return decorator
