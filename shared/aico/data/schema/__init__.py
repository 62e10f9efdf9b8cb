"""Decorator schema registry and the migration runner that applies it."""

from aico.data.schema.registry import (
    Schema,
    SchemaRegistry,
    SchemaVersion,
    default_registry,
    register_schema,
)
from aico.data.schema.runner import LEDGER_TABLE, MigrationStep, Migrator, SchemaStatus

__all__ = [
    "LEDGER_TABLE",
    "MigrationStep",
    "Migrator",
    "Schema",
    "SchemaRegistry",
    "SchemaStatus",
    "SchemaVersion",
    "default_registry",
    "register_schema",
]
