"""``DataStore``: every encrypted libSQL database of one data dir, each under its own subkey.

It owns the connections (one ``EncryptedLibSQLConnection`` per database, opened lazily and
shared across threads), runs the migration runner per database, and rotates the master
key. Repositories take the connections it hands out; they never open databases.

Data kept outside libSQL under keys derived from the master key (working memory, the
Chroma index) joins a rotation through *rotation steps*: modules named in
``ROTATION_STEP_MODULES`` register them when imported, and they are imported on demand, like
the feature schemas, so every rotation and every resumed one runs them without ``aico.data``
importing the memory packages.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aico.config import Config, load_config, resolve_data_dir
from aico.data.libsql import EncryptedLibSQLConnection, SQLiteSettings
from aico.data.schema import MigrationStep, Migrator, SchemaRegistry, SchemaStatus
from aico.data.schema.registry import default_registry
from aico.data.schemas import DATABASE_FILES, load_feature_schemas
from aico.errors import DatabaseCorrupted, InvalidInput, KeyFileError, StoreClosed
from aico.security import KdfParams, KeyFile, MasterKey, Purpose, unlock_master_key

__all__ = [
    "ROTATION_STEP_MODULES",
    "DataStore",
    "DatabaseStatus",
    "RotationStep",
    "kdf_params_from_config",
    "register_rotation_step",
    "rotation_steps",
]

RotationStep = Callable[["DataStore", MasterKey, MasterKey], Mapping[str, int] | None]
"""``step(store, old, new)``: re-key data kept outside libSQL; returns counts for a report.

Called while the new key is still *pending* in the key file, after every database was
rekeyed (``store`` already uses ``new``). It must be idempotent and must leave data that
one of the two keys opens at every instant: a crash makes the resumed rotation call it
again with the same keys, and only after every step returned does the key file drop ``old``.
"""

#: Modules that register rotation steps when imported (imported on demand).
ROTATION_STEP_MODULES: tuple[str, ...] = ("aico.ai.memory.key_rotation",)
_rotation_steps: dict[str, RotationStep] = {}


def register_rotation_step(name: str, step: RotationStep) -> None:
    """Add (or replace) the rotation step ``name``; steps run in registration order."""
    _rotation_steps[name] = step


def rotation_steps() -> dict[str, RotationStep]:
    """Every registered rotation step, after importing the modules that register them."""
    for module in ROTATION_STEP_MODULES:
        importlib.import_module(module)
    return dict(_rotation_steps)


@dataclass(frozen=True)
class DatabaseStatus:
    """Schema status of one database file; ``exists`` is False for a file not created yet."""

    database: str
    path: Path
    exists: bool
    schemas: tuple[SchemaStatus, ...]


def kdf_params_from_config(config: Config) -> KdfParams:
    sec = config.section("security")
    return KdfParams(
        time_cost=sec["kdf_time_cost"],
        memory_cost_kib=sec["kdf_memory_cost_kib"],
        parallelism=sec["kdf_parallelism"],
    )


class DataStore:
    """The encrypted databases of one data dir. Use ``DataStore.open`` or ``initialize``."""

    def __init__(
        self,
        data_dir: str | Path,
        master: MasterKey,
        *,
        settings: SQLiteSettings | None = None,
        seal: bool = True,
        registry: SchemaRegistry | None = None,
        databases: Mapping[str, str] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.settings = settings or SQLiteSettings()
        self.seal = seal
        if registry is None:
            load_feature_schemas()
        self.registry = registry if registry is not None else default_registry
        self.databases = dict(databases or DATABASE_FILES)
        self._master = master
        self._conns: dict[str, EncryptedLibSQLConnection] = {}
        self._lock = threading.RLock()
        self._closed = False
        #: What each rotation step reported during the last ``rotate_master_key``.
        self.last_rotation: dict[str, dict[str, int]] = {}

    # ---- construction --------------------------------------------------------------

    @classmethod
    def initialize(
        cls,
        data_dir: str | Path,
        passphrase: str,
        *,
        kdf: KdfParams | None = None,
        config: Config | None = None,
        migrate: bool = True,
    ) -> DataStore:
        """Create the key file of a new data dir, open it, and apply every schema."""
        config = config or load_config()
        key_path = KeyFile.default_path(data_dir)
        master = KeyFile.create(key_path, passphrase, kdf or kdf_params_from_config(config))
        store = cls.from_config(data_dir, master, config)
        if migrate:
            store.migrate()
        return store

    @classmethod
    def from_config(cls, data_dir: str | Path, master: MasterKey, config: Config) -> DataStore:
        return cls(
            data_dir,
            master,
            settings=SQLiteSettings.from_mapping(config.section("storage.sqlite")),
            seal=bool(config.get("storage.integrity_seal")),
        )

    @classmethod
    def open(
        cls,
        data_dir: str | Path | None = None,
        *,
        passphrase: str | None = None,
        config: Config | None = None,
        env: Mapping[str, str] | None = None,
        interactive: bool | None = None,
    ) -> DataStore:
        """Unlock an existing data dir (see ``unlock_master_key`` for the sources).

        A master-key rotation that was interrupted is finished first, so no database is
        ever left readable only by a key the key file no longer calls current.
        """
        config = config or load_config(env=env)
        directory = Path(data_dir) if data_dir is not None else resolve_data_dir(config, env)
        key_path = KeyFile.default_path(directory)
        if not key_path.exists():
            raise KeyFileError(f"no key file at {key_path}; run 'aico init' to create a store")
        master = unlock_master_key(
            key_path,
            passphrase=passphrase,
            use_keyring=bool(config.get("security.use_keyring")),
            env=env,
            interactive=interactive,
            service=config.get("security.keyring_service"),
        )
        store = cls.from_config(directory, master, config)
        if KeyFile.load(key_path).rotation_pending:
            if passphrase is None:
                raise InvalidInput(
                    "a master-key rotation was interrupted; run 'aico keys rotate' with the "
                    "passphrase to finish it"
                )
            store.rotate_master_key(passphrase)
        return store

    # ---- connections ---------------------------------------------------------------

    @property
    def key_path(self) -> Path:
        return KeyFile.default_path(self.data_dir)

    @property
    def master_key(self) -> MasterKey:
        return self._master

    def path_of(self, database: str) -> Path:
        try:
            return self.data_dir / self.databases[database]
        except KeyError:
            known = ", ".join(sorted(self.databases))
            raise InvalidInput(f"unknown database {database!r}; known: {known}") from None

    def _open(self, database: str, master: MasterKey) -> EncryptedLibSQLConnection:
        return EncryptedLibSQLConnection(
            self.path_of(database),
            master.subkey(Purpose.libsql(database)),
            settings=self.settings,
            seal_key=master.subkey(Purpose.seal(database)) if self.seal else None,
        )

    def connection(self, database: str = "core") -> EncryptedLibSQLConnection:
        """The shared connection of ``database`` (opened on first use)."""
        with self._lock:
            if self._closed:
                raise StoreClosed("the data store is closed")
            conn = self._conns.get(database)
            if conn is None:
                conn = self._open(database, self._master)
                self._conns[database] = conn
            return conn

    def close(self) -> None:
        """Close every connection (writing integrity seals). Idempotent."""
        with self._lock:
            self._closed = True
            conns, self._conns = self._conns, {}
        errors: list[BaseException] = []
        for conn in conns.values():
            try:
                conn.close()
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise errors[0]

    def __enter__(self) -> DataStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- schema --------------------------------------------------------------------

    def _databases(self, database: str | None) -> list[str]:
        if database is not None:
            self.path_of(database)
            return [database]
        return [db for db in self.databases if self.registry.schemas(db)]

    def migrator(self, database: str) -> Migrator:
        return Migrator(self.connection(database), database, registry=self.registry)

    def status(self, database: str | None = None) -> list[DatabaseStatus]:
        """Schema status per database. Read-only: a missing database file is not created."""
        result = []
        for db in self._databases(database):
            path = self.path_of(db)
            if not path.exists() and db not in self._conns:
                statuses = tuple(
                    SchemaStatus(
                        s.name,
                        db,
                        0,
                        s.latest,
                        tuple(range(1, s.latest + 1)),
                        "ok",
                        (),
                        s.plugin,
                    )
                    for s in self.registry.schemas(db)
                )
                result.append(DatabaseStatus(db, path, False, statuses))
            else:
                result.append(DatabaseStatus(db, path, True, tuple(self.migrator(db).status())))
        return result

    def migrate(
        self,
        *,
        database: str | None = None,
        schema: str | None = None,
        to: int | None = None,
        dry_run: bool = False,
    ) -> list[tuple[str, MigrationStep]]:
        """Upgrade (every database by default); returns ``(database, step)`` pairs."""
        if schema is not None and database is None:
            database = self.registry.get(schema).database
        done: list[tuple[str, MigrationStep]] = []
        for db in self._databases(database):
            if dry_run and not self.path_of(db).exists():
                plan = [
                    MigrationStep(s.name, v.version, v.name, "up", tuple(v.sql_statements))
                    for s in self.registry.schemas(db)
                    if schema is None or s.name == schema
                    for v in s.versions
                    if to is None or v.version <= to
                ]
                done.extend((db, step) for step in plan)
                continue
            steps = self.migrator(db).upgrade(schema=schema, to=to, dry_run=dry_run)
            done.extend((db, step) for step in steps)
        return done

    def rollback(
        self, *, to: int, schema: str, dry_run: bool = False
    ) -> list[tuple[str, MigrationStep]]:
        """Roll one schema back to version ``to`` with the code's rollback statements."""
        db = self.registry.get(schema).database
        steps = self.migrator(db).downgrade(schema=schema, to=to, dry_run=dry_run)
        return [(db, step) for step in steps]

    def verify(self) -> list[DatabaseStatus]:
        """Checksums and versions of every existing database; raises on the first problem."""
        result = []
        for db in self._databases(None):
            if not self.path_of(db).exists():
                continue
            statuses = self.migrator(db).verify()
            conn = self.connection(db)
            check = conn.fetch_value("PRAGMA quick_check")
            if check != "ok":
                raise DatabaseCorrupted(f"database {db!r} failed its quick_check")
            result.append(DatabaseStatus(db, self.path_of(db), True, tuple(statuses)))
        return result

    # ---- keys ----------------------------------------------------------------------

    def rotate_master_key(self, passphrase: str) -> str:
        """Replace the master key and rekey every database; returns the new key id.

        Crash-safe: the new key is first recorded as *pending* in the key file. Each
        database is rekeyed in its own transaction; on resume, a database that already
        opens with the new key is skipped. Then every rotation step (working memory, the
        Chroma index: see ``rotation_steps``) moves its data to the new key. Only when all
        are done does the key file make the new key current. Re-running after a crash
        finishes the job.
        """
        old, new = KeyFile.begin_rotation(self.key_path, passphrase)
        if old != self._master and new != self._master:
            raise InvalidInput("this store was opened with a different master key")
        with self._lock:
            conns, self._conns = self._conns, {}
        for conn in conns.values():
            conn.close()
        for db in self.databases:
            if self.path_of(db).exists():
                self._rekey_one(db, old, new)
        with self._lock:
            self._master = new  # every database now opens with the new key only
        self.last_rotation = {}
        for name, step in rotation_steps().items():
            self.last_rotation[name] = dict(step(self, old, new) or {})
        KeyFile.finish_rotation(self.key_path, passphrase)
        return new.key_id

    def _rekey_one(self, database: str, old: MasterKey, new: MasterKey) -> None:
        try:
            conn = self._open(database, old)
        except DatabaseCorrupted:
            # Already rekeyed by an interrupted run? It must then open with the new key;
            # if it does not, the original error stands.
            try:
                self._open(database, new).close()
                return
            except DatabaseCorrupted:
                pass
            raise
        try:
            conn.rekey(
                new.subkey(Purpose.libsql(database)),
                new_seal_key=new.subkey(Purpose.seal(database)) if self.seal else None,
            )
        finally:
            conn.close()

    @contextmanager
    def transaction(self, database: str = "core") -> Iterator[Any]:
        """Shortcut for ``store.connection(database).transaction()``."""
        with self.connection(database).transaction() as tx:
            yield tx
