"""``DataStore``: every encrypted libSQL database of one data dir, each under its own subkey.

It owns the connections (one ``EncryptedLibSQLConnection`` per database, opened lazily and
shared across threads), runs the migration runner per database, and rotates the master
key. Repositories take the connections it hands out; they never open databases. Every path
comes from its ``DataDir`` (``store.layout``).

Its dependencies are given, never discovered: the schema ``registry`` (by default the
built-in schemas of ``aico.data.schemas``) and the ``rotation_steps`` that move data kept
outside libSQL under keys derived from the master key (working memory, the Chroma index)
to a new key. ``aico.ai.memory.stores`` opens a store with the memory layer's schemas and
steps; a ``DataStore`` built without them rotates the databases only.

While open, a store holds its data dir shared (``aico.locking.DirLock``): other stores, in
this process or others, may be open at the same time. ``rotate_master_key`` needs the data
dir alone and raises ``StoreBusy`` up front otherwise.

``read_only=True`` opens every database read-only (``EncryptedLibSQLConnection(readonly=
True)``): nothing is migrated, rotated or written, and on read-only media (or a data dir
this user may not write) nothing at all is created, not even the hold on the data dir.
Every ``DatabaseCorrupted`` a connection raises names its store (``core``, ...) and file.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import aico.data.schemas  # noqa: F401  (registers the built-in schemas in default_registry)
from aico.config import Config, load_config, resolve_data_dir
from aico.data.libsql import EncryptedLibSQLConnection, SQLiteSettings
from aico.data.schema import MigrationStep, Migrator, SchemaRegistry, SchemaStatus
from aico.data.schema.registry import default_registry
from aico.errors import (
    DatabaseCorrupted,
    InvalidInput,
    KeyFileError,
    ReadOnly,
    StorageError,
    StoreBusy,
    StoreClosed,
)
from aico.layout import DataDir
from aico.locking import DirLock, holders
from aico.security import KdfParams, KeyFile, MasterKey, Purpose, unlock_master_key

__all__ = [
    "DataStore",
    "DatabaseStatus",
    "RotationStep",
    "kdf_params_from_config",
]

RotationStep = Callable[["DataStore", MasterKey, MasterKey], Mapping[str, int] | None]
"""``step(store, old, new)``: re-key data kept outside libSQL; returns counts for a report.

Called while the new key is still *pending* in the key file, after every database was
rekeyed (``store`` already uses ``new``), with the data dir held exclusively. It must be
idempotent and must leave data that one of the two keys opens at every instant: a crash
makes the resumed rotation call it again with the same keys, and only after every step
returned does the key file drop ``old``.
"""


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
    """The encrypted databases of one data dir. Use ``DataStore.open`` or ``initialize``.

    ``registry`` defaults to ``default_registry`` (the built-in schemas and whatever else
    was registered there); ``rotation_steps`` to none. Constructing a store takes its
    shared hold on the data dir (``StoreBusy`` while a rotation holds it); ``close`` drops
    it. ``read_only``: see the module docstring; writes raise ``ReadOnly``.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | DataDir,
        master: MasterKey,
        *,
        settings: SQLiteSettings | None = None,
        seal: bool = True,
        registry: SchemaRegistry | None = None,
        rotation_steps: Mapping[str, RotationStep] | None = None,
        read_only: bool = False,
    ) -> None:
        self.layout = DataDir.of(data_dir)
        self.read_only = read_only
        self.data_dir = self.layout.root
        self.settings = settings or SQLiteSettings()
        self.seal = seal
        self.registry = registry if registry is not None else default_registry
        #: Run in this order by every rotation of this store (a resumed one included).
        self.rotation_steps: Mapping[str, RotationStep] = MappingProxyType(
            dict(rotation_steps or {})
        )
        self._master = master
        self._conns: dict[str, EncryptedLibSQLConnection] = {}
        self._lock = threading.RLock()
        self._closed = False
        #: What each rotation step reported during the last ``rotate_master_key``.
        self.last_rotation: dict[str, dict[str, int]] = {}
        self._hold = self._take_hold()

    def _take_hold(self) -> DirLock | None:
        """The shared hold; a read-only store on media it cannot write goes without one.

        Nobody can rotate a data dir that cannot be written, which is all the hold guards.
        """
        try:
            return DirLock(self.layout)
        except StoreBusy:
            raise
        except StorageError as exc:
            if self.read_only and not _writable(self.layout.root):
                return None
            if not _writable(self.layout.root):
                raise ReadOnly(
                    f"the data dir {self.layout.root} is on read-only media or not writable "
                    "by this user: open it read-only (read_only=True, 'aico --read-only')"
                ) from exc
            raise

    # ---- construction --------------------------------------------------------------

    @classmethod
    def initialize(
        cls,
        data_dir: str | os.PathLike[str] | DataDir,
        passphrase: str,
        *,
        kdf: KdfParams | None = None,
        config: Config | None = None,
        migrate: bool = True,
        registry: SchemaRegistry | None = None,
        rotation_steps: Mapping[str, RotationStep] | None = None,
    ) -> DataStore:
        """Create the key file of a new data dir, open it, and apply every schema."""
        config = config or load_config()
        layout = DataDir.of(data_dir)
        master = KeyFile.create(layout.key_file, passphrase, kdf or kdf_params_from_config(config))
        store = cls.from_config(
            layout, master, config, registry=registry, rotation_steps=rotation_steps
        )
        if migrate:
            try:
                store.migrate()
            except BaseException:
                store.close()
                raise
        return store

    @classmethod
    def from_config(
        cls,
        data_dir: str | os.PathLike[str] | DataDir,
        master: MasterKey,
        config: Config,
        *,
        registry: SchemaRegistry | None = None,
        rotation_steps: Mapping[str, RotationStep] | None = None,
        read_only: bool = False,
    ) -> DataStore:
        """A store on an already unlocked ``master`` key, with the settings of ``config``."""
        return cls(
            data_dir,
            master,
            settings=SQLiteSettings.from_mapping(config.section("storage.sqlite")),
            seal=bool(config.get("storage.integrity_seal")),
            registry=registry,
            rotation_steps=rotation_steps,
            read_only=read_only,
        )

    @classmethod
    def open(
        cls,
        data_dir: str | os.PathLike[str] | DataDir | None = None,
        *,
        passphrase: str | None = None,
        config: Config | None = None,
        env: Mapping[str, str] | None = None,
        interactive: bool | None = None,
        registry: SchemaRegistry | None = None,
        rotation_steps: Mapping[str, RotationStep] | None = None,
        resume_rotation: bool = True,
        read_only: bool = False,
    ) -> DataStore:
        """Unlock an existing data dir (see ``unlock_master_key`` for the sources).

        A master-key rotation that was interrupted is finished first (with the given
        ``rotation_steps``), so no database is ever left readable only by a key the key
        file no longer calls current. ``resume_rotation=False`` skips that for a caller
        that rotates next thing anyway (``aico keys rotate``): a rotation resumes a pending
        one. Until then, databases already rekeyed do not open. ``read_only=True`` cannot
        finish a rotation: it raises ``ReadOnly`` while one is pending.
        """
        config = config or load_config(env=env)
        if data_dir is None:
            data_dir = resolve_data_dir(config, env)
        layout = DataDir.of(data_dir)
        key_path = layout.key_file
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
        store = cls.from_config(
            layout,
            master,
            config,
            registry=registry,
            rotation_steps=rotation_steps,
            read_only=read_only,
        )
        try:
            if resume_rotation and KeyFile.load(key_path).rotation_pending:
                if read_only:
                    raise ReadOnly(
                        "a master-key rotation was interrupted; open the data dir writable "
                        "(with the passphrase) to finish it before reading it"
                    )
                if passphrase is None:
                    raise InvalidInput(
                        "a master-key rotation was interrupted; run 'aico keys rotate' with "
                        "the passphrase to finish it"
                    )
                store.rotate_master_key(passphrase)
        except BaseException:
            store.close()
            raise
        return store

    # ---- connections ---------------------------------------------------------------

    @property
    def key_path(self) -> Path:
        return self.layout.key_file

    @property
    def master_key(self) -> MasterKey:
        return self._master

    @property
    def databases(self) -> Mapping[str, Path]:
        """Every database of the data dir: name -> file (``layout.databases``)."""
        return self.layout.databases

    def path_of(self, database: str) -> Path:
        """The file of ``database``; ``InvalidInput`` naming the known ones otherwise."""
        return self.layout.database(database)

    def _open(self, database: str, master: MasterKey) -> EncryptedLibSQLConnection:
        # The key file proved the passphrase: a file that does not decrypt is damaged.
        return EncryptedLibSQLConnection(
            self.path_of(database),
            master.subkey(Purpose.libsql(database)),
            settings=self.settings,
            seal_key=master.subkey(Purpose.seal(database)) if self.seal else None,
            readonly=self.read_only,
            store=database,
            key_verified=True,
        )

    def _refuse_if_read_only(self, what: str) -> None:
        if self.read_only:
            raise ReadOnly(f"the data store is open read-only: cannot {what}")

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

    def accept_wal_loss(self, database: str) -> EncryptedLibSQLConnection:
        """Open ``database`` although its WAL was lost after a crash, accepting the loss.

        The explicit way past ``DatabaseCorrupted("... is missing N committed
        transaction(s) ...")``: the database is taken as it is (what its file and the
        surviving part of the WAL hold) and its commit record reset, so later opens do not
        refuse it again. Structural damage is still refused. Returns the connection, which
        the store keeps as that database's shared one.
        """
        self._refuse_if_read_only("accept the loss of a WAL")
        with self._lock:
            if self._closed:
                raise StoreClosed("the data store is closed")
            conn = self._conns.get(database)
            if conn is None:
                conn = EncryptedLibSQLConnection(
                    self.path_of(database),
                    self._master.subkey(Purpose.libsql(database)),
                    settings=self.settings,
                    seal_key=self._master.subkey(Purpose.seal(database)) if self.seal else None,
                    store=database,
                    key_verified=True,
                    accept_wal_loss=True,
                )
                self._conns[database] = conn
            return conn

    def other_holders(self) -> list[int]:
        """Pids of every other open store on this data dir (this process's others too)."""
        if self._hold is None:
            try:
                return holders(self.layout)
            except OSError:
                return []  # read-only media: stale entries cannot be cleared, nor read
        return self._hold.others()

    def close(self) -> None:
        """Close every connection (writing integrity seals), then drop the hold on the
        data dir. Idempotent."""
        with self._lock:
            self._closed = True
            conns, self._conns = self._conns, {}
        errors: list[BaseException] = []
        for conn in conns.values():
            try:
                conn.close()
            except Exception as exc:
                errors.append(exc)
        if self._hold is not None:
            self._hold.release()
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
        if not dry_run:
            self._refuse_if_read_only("migrate")
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
        if not dry_run:
            self._refuse_if_read_only("roll back")
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
                raise DatabaseCorrupted(
                    f"database {db!r} ({conn.path}) is damaged: it failed PRAGMA quick_check. "
                    "Restore it from a backup, move it aside to start this database empty, "
                    "or run 'aico doctor'.",
                    path=conn.path,
                    store=db,
                )
            result.append(DatabaseStatus(db, self.path_of(db), True, tuple(statuses)))
        return result

    # ---- keys ----------------------------------------------------------------------

    def rotate_master_key(self, passphrase: str) -> str:
        """Replace the master key and rekey every database; returns the new key id.

        Needs the data dir alone: while any other store has it open (in another process,
        or another ``DataStore`` of this one), ``StoreBusy`` names their pids before the
        key file is touched. Held exclusively until the rotation returns or fails.

        Crash-safe: the new key is first recorded as *pending* in the key file. Each
        database is rekeyed in its own transaction; on resume, a database that already
        opens with the new key is skipped. Then every rotation step (``rotation_steps``:
        working memory, the Chroma index) moves its data to the new key. Only when all
        are done does the key file make the new key current. Re-running after a crash
        finishes the job.
        """
        with self._lock:
            if self._closed:
                raise StoreClosed("the data store is closed")
        self._refuse_if_read_only("rotate the master key")
        assert self._hold is not None  # only a read-only store goes without one
        with self._hold.exclusive():
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
            for name, step in self.rotation_steps.items():
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


def _writable(root: Path) -> bool:
    """Whether this process may create files in the data dir (or, if missing, its parent)."""
    while not root.exists() and root != root.parent:
        root = root.parent
    return os.access(root, os.W_OK)
