"""Structured data: encrypted libSQL connections, the schema registry, repositories, DataStore."""

from aico.data.libsql import EncryptedLibSQLConnection, ExecResult, SQLiteSettings
from aico.data.repositories import (
    Fact,
    FactRepository,
    FeedbackEvent,
    FeedbackRepository,
    LogEntry,
    LogRepository,
    UserProfile,
    UserService,
)
from aico.data.schema import (
    MigrationStep,
    Migrator,
    Schema,
    SchemaRegistry,
    SchemaStatus,
    SchemaVersion,
    default_registry,
    register_schema,
)
from aico.data.store import DatabaseStatus, DataStore

__all__ = [
    "DataStore",
    "DatabaseStatus",
    "EncryptedLibSQLConnection",
    "ExecResult",
    "Fact",
    "FactRepository",
    "FeedbackEvent",
    "FeedbackRepository",
    "LogEntry",
    "LogRepository",
    "MigrationStep",
    "Migrator",
    "SQLiteSettings",
    "Schema",
    "SchemaRegistry",
    "SchemaStatus",
    "SchemaVersion",
    "UserProfile",
    "UserService",
    "default_registry",
    "register_schema",
]
