"""Per-connection SQLite settings: validated once, applied as pragmas on every connection.

The defaults favour a single-user desktop app: WAL so readers never block the writer and
several processes can share a file, ``synchronous=NORMAL`` (durable across application
crashes; only an OS crash can lose the last commits), ``secure_delete`` so deleted rows are
overwritten, and ``temp_store=MEMORY`` because SQLite3 Multiple Ciphers does not encrypt
temporary files: a temp file on disk could hold plaintext.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aico.errors import ConfigError

__all__ = ["SQLiteSettings"]

_JOURNAL_MODES = frozenset({"WAL", "DELETE", "TRUNCATE", "PERSIST"})
_SYNCHRONOUS = frozenset({"NORMAL", "FULL", "EXTRA"})
# FILE/DEFAULT would let SQLite spill sorts and temp tables to unencrypted temp files.
_TEMP_STORES = frozenset({"MEMORY"})
_AUTO_VACUUM = frozenset({"NONE", "FULL", "INCREMENTAL"})


@dataclass(frozen=True)
class SQLiteSettings:
    """Pragmas and pool size for one :class:`EncryptedLibSQLConnection`.

    ``auto_vacuum`` only takes effect on a new database (SQLite fixes it when the first
    table is created); changing it later needs a VACUUM and is silently left as it was.
    """

    journal_mode: str = "WAL"
    synchronous: str = "NORMAL"
    busy_timeout_ms: int = 5000
    cache_size: int = -64000
    temp_store: str = "MEMORY"
    mmap_size: int = 268435456
    secure_delete: bool = True
    foreign_keys: bool = True
    auto_vacuum: str = "INCREMENTAL"
    reader_pool_size: int = 4

    def __post_init__(self) -> None:
        # Normalise case so "wal" from a TOML file works, then validate every field.
        for name, allowed in (
            ("journal_mode", _JOURNAL_MODES),
            ("synchronous", _SYNCHRONOUS),
            ("temp_store", _TEMP_STORES),
            ("auto_vacuum", _AUTO_VACUUM),
        ):
            value = getattr(self, name)
            if not isinstance(value, str) or value.upper() not in allowed:
                choices = ", ".join(sorted(allowed))
                raise ConfigError(f"storage.sqlite.{name} must be one of {choices}")
            object.__setattr__(self, name, value.upper())
        _check_int("busy_timeout_ms", self.busy_timeout_ms, minimum=0)
        _check_int("cache_size", self.cache_size, minimum=None)
        _check_int("mmap_size", self.mmap_size, minimum=0)
        _check_int("reader_pool_size", self.reader_pool_size, minimum=1)
        for name in ("secure_delete", "foreign_keys"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"storage.sqlite.{name} must be true or false")

    def pragma_statements(
        self, *, writer: bool, new_db: bool, readonly: bool, busy_slice_ms: int
    ) -> list[str]:
        """The pragmas for one connection, in the order they must run.

        ``auto_vacuum`` comes first and only on a new file (it is fixed by the first page
        written); ``journal_mode`` is persistent, so only the writer sets it. SQLite's own
        busy handler gets a short slice: the driver holds the GIL while SQLite sleeps, so
        the connection retries in Python instead (see ``EncryptedLibSQLConnection``).
        """
        statements: list[str] = []
        if writer and not readonly:
            if new_db:
                statements.append(f"PRAGMA auto_vacuum = {self.auto_vacuum}")
            statements.append(f"PRAGMA journal_mode = {self.journal_mode}")
        statements += [
            f"PRAGMA busy_timeout = {min(self.busy_timeout_ms, busy_slice_ms)}",
            f"PRAGMA synchronous = {self.synchronous}",
            f"PRAGMA cache_size = {self.cache_size}",
            f"PRAGMA temp_store = {self.temp_store}",
            f"PRAGMA mmap_size = {self.mmap_size}",
            f"PRAGMA secure_delete = {int(self.secure_delete)}",
            f"PRAGMA foreign_keys = {int(self.foreign_keys)}",
        ]
        if readonly or not writer:
            statements.append("PRAGMA query_only = 1")
        return statements

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> SQLiteSettings:
        """Build settings from a config table (``[storage.sqlite]``), refusing unknown keys.

        A typo in a config file must fail loudly instead of silently keeping a default.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        for key in values:
            if key not in known:
                raise ConfigError(f"unknown key storage.sqlite.{key}")
        return cls(**dict(values))


def _check_int(name: str, value: object, *, minimum: int | None) -> None:
    # bool is an int subclass; "true" for a size is a config mistake, not 1.
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"storage.sqlite.{name} must be an integer")
    if minimum is not None and value < minimum:
        raise ConfigError(f"storage.sqlite.{name} must be >= {minimum}")
