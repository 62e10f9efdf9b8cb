"""EncryptedLibSQLConnection: one encrypted database file, one writer, a pool of readers.

Design choices, and why:

- **One writer connection behind a re-entrant lock.** SQLite allows one writer at a time
  anyway; serialising in Python gives writes a fair queue and lets the thread that holds an
  open transaction read its own uncommitted rows through the same connection.
- **A pool of reader connections** (``query_only``) for ``fetch_*`` outside a transaction:
  under WAL they see the last commit and never wait for the writer.
- **Busy waiting happens in Python.** libsql-experimental holds the GIL while SQLite sleeps
  in its busy handler, which would freeze every other thread (including the one that holds
  the lock being waited for). SQLite gets a short busy slice and the statement is retried
  with backoff until ``busy_timeout_ms``, but only when no transaction is open on that
  connection (a failed autocommit statement or ``BEGIN`` has no effect to lose).
- **Integrity.** The cipher (AES-256-CBC, no MAC) cannot tell a flipped byte from data, and
  a wrong key looks exactly like a corrupt file. With a ``seal_key`` the closed file is
  sealed with HMAC-SHA256 (see :mod:`aico.data.libsql.seal`) and the first opener verifies
  it. After an unclean close there is no seal and only ``PRAGMA quick_check`` protects the
  file: it finds structural damage but not a flipped byte inside a row. A file opened
  unsealed is quick-checked again before its last close seals it, and a file on which any
  opener saw corruption is not sealed at all.
- **A lost WAL is noticed.** Every outermost write transaction bumps a commit counter in
  the database header (``PRAGMA user_version``; ``PRAGMA application_id`` holds the file's
  random id; both are reserved for this) and, once committed, records it in the ``<db>.lock``
  sidecar (:mod:`aico.data.libsql.sidecar`), outside the WAL. The first opener after an
  unclean close compares: a database behind its record lost committed transactions with a
  deleted, truncated or damaged ``-wal``, and is refused unless ``accept_wal_loss``.
- **A wrong key never writes.** If a hot journal or WAL content is waiting for recovery, the
  key is first proved on a scratch copy of page 1 (:mod:`aico.data.libsql.keycheck`):
  SQLite would otherwise recover through the wrong key and destroy the file.
- **Read-only media.** ``readonly=True`` on a directory this process cannot write opens the
  sidecar read-only (or goes without it), never touches the seal, and reads the file with
  ``mode=ro`` (a WAL with its ``-shm``) or ``immutable=1`` (no WAL). A writable open there
  is refused with ``ReadOnly``.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import libsql_experimental as libsql

from aico.data.libsql import counter
from aico.data.libsql.errors import classify, translate_errors
from aico.data.libsql.files import (
    inspect_existing_file,
    leftovers_of_missing,
    make_private_dirs,
    unwritable_part,
)
from aico.data.libsql.keycheck import key_fits_pending_recovery
from aico.data.libsql.naming import Naming
from aico.data.libsql.params import Params, as_tuple, has_wide_int, prepare
from aico.data.libsql.pool import ReaderPool
from aico.data.libsql.seal import remove_seal, verify_seal, wal_path, write_seal
from aico.data.libsql.settings import SQLiteSettings
from aico.data.libsql.sidecar import CommitRecord, OpenLock, commits_missing
from aico.errors import (
    AicoError,
    DatabaseBusy,
    DatabaseCorrupted,
    InvalidInput,
    NotFound,
    StoreClosed,
)

__all__ = ["EncryptedLibSQLConnection", "ExecResult", "StatementObserver", "set_statement_observer"]

log = logging.getLogger(__name__)

_KEY_BYTES = 32
_BUSY_SLICE_MS = 20
_MAX_BACKOFF_S = 0.05
_CHECKPOINT_MODES = frozenset({"PASSIVE", "FULL", "RESTART", "TRUNCATE"})
# Hashing for the seal runs under the exclusive open lock; allow for big files.
_HASH_BYTES_PER_S = 50_000_000
# Autocommit statements that change the database and may run inside a transaction: they
# are wrapped in one so that the commit is counted (PRAGMA, VACUUM, ANALYZE... are not).
_WRITE_VERB = re.compile(
    r"(?:\s|--[^\n]*\n|/\*.*?\*/)*(INSERT|UPDATE|DELETE|REPLACE|CREATE|DROP|ALTER|WITH)\b",
    re.IGNORECASE | re.DOTALL,
)
_DENIED = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})  # a write refused


StatementObserver = Callable[[str, float], None]
_observer: StatementObserver | None = None


def set_statement_observer(observer: StatementObserver | None) -> None:
    """Call ``observer(sql, seconds)`` after every ``execute``/``fetch_*`` statement of every
    connection of this process (``aico.operations.monitoring``: slow-statement logging).

    It gets the SQL text only, never the parameters, and must not raise. None (the
    default) removes it; then each statement costs one global read.
    """
    global _observer
    _observer = observer


@dataclass(frozen=True)
class ExecResult:
    """What a write statement did."""

    rowcount: int
    lastrowid: int | None


class EncryptedLibSQLConnection:
    """A thread-safe handle on one SQLite3-Multiple-Ciphers encrypted database.

    ``encryption_key`` is a 32-byte subkey; it reaches libsql as hex. A database that does
    not open with it raises ``DatabaseCorrupted``. ``key_verified=True`` says the caller
    proved the key (the data store unwrapped it from the key file): the message then says
    the file is damaged instead of "damaged or encrypted with another key". ``store`` (the
    database's name in its data dir) and the path are carried by every
    ``DatabaseCorrupted`` this connection raises.

    ``seal_key`` (32 bytes) turns on the integrity seal: the last clean close writes an
    HMAC of the file to ``<db>.seal`` and the first opener verifies it, because the cipher
    has no MAC and a flipped byte inside a row would otherwise read back as wrong data.
    After an unclean close there is no seal; the first opener then runs
    ``PRAGMA quick_check``, which catches structural damage only, and compares the commit
    counter with its record to catch a lost WAL. ``accept_wal_loss=True`` is the explicit
    way past that refusal: the database is accepted as it is and the record reset (for a
    caller that restored nothing and accepts losing the missing transactions).

    ``readonly=True`` never writes the database (``NotFound`` if it does not exist); on
    read-only media it writes nothing at all. A writable open of a file or directory this
    process cannot write raises ``ReadOnly``.

    Parameters are positional (``?``) only: the driver supports nothing else. Use
    ``execute`` for anything that writes; ``fetch_*`` run on read-only connections unless
    the calling thread is inside ``transaction()``. ``PRAGMA user_version`` and
    ``PRAGMA application_id`` belong to this class (the commit counter): never set them.
    """

    #: Off only in the benchmark's baseline (``scripts/bench/bench_libsql.py``).
    _COUNT_COMMITS = True

    def __init__(
        self,
        db_path: str | Path,
        encryption_key: bytes,
        *,
        settings: SQLiteSettings | None = None,
        seal_key: bytes | None = None,
        readonly: bool = False,
        store: str | None = None,
        key_verified: bool = False,
        accept_wal_loss: bool = False,
    ) -> None:
        self._path = Path(db_path).expanduser().absolute()
        self._hex = _key_hex(encryption_key, "encryption_key")
        if seal_key is not None:
            _key_hex(seal_key, "seal_key")
        self._seal_key = None if seal_key is None else bytes(seal_key)
        self._settings = settings or SQLiteSettings()
        self._readonly = readonly
        self._store = store
        self._naming = Naming(self._path, store, key_verified)
        self._accept_wal_loss = accept_wal_loss
        self._frozen = False  # read-only media: nothing is written, not even sidecars
        self._target = str(self._path)
        self._file_id = 0
        self._writer_lock = threading.RLock()
        self._state_lock = threading.Lock()
        self._tx_depth = 0
        self._tx_owner: int | None = None
        self._closed = False
        self._corrupted = False
        self._in_session = False  # joined the open set whose last closer seals
        self._writer: Any = None
        self._lock: OpenLock | None = None
        self._pool = ReaderPool(self._open_reader, self._settings.reader_pool_size, self._name)
        self._open()

    # -- lifecycle -------------------------------------------------------------------

    @property
    def path(self) -> Path:
        return self._path

    @property
    def store(self) -> str | None:
        """The database's name in its data dir, when the opener gave one."""
        return self._store

    @property
    def settings(self) -> SQLiteSettings:
        return self._settings

    @property
    def readonly(self) -> bool:
        return self._readonly

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def in_transaction(self) -> bool:
        """True if the calling thread has an open ``transaction()``."""
        return self._tx_owner == threading.get_ident()

    def __enter__(self) -> EncryptedLibSQLConnection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close every connection; the last closer of a healthy file writes the seal.

        Waits for transactions on other threads to finish. Idempotent.
        """
        with self._state_lock:
            if self._closed:
                return
            if self.in_transaction:
                raise InvalidInput("close() called inside a transaction; leave it first")
            self._closed = True
        with self._writer_lock:
            self._pool.close()
            writer, self._writer = self._writer, None
            seal = self._seal_key is not None and not self._corrupted and not self._frozen
            if writer is not None:
                if seal:
                    # A failed checkpoint is fine: the seal covers a leftover WAL too.
                    with contextlib.suppress(AicoError):
                        self._checkpoint_on(writer, "TRUNCATE")
                _close_quietly(writer)
            self._release_open_lock(seal=seal)

    def _open(self) -> None:
        if self._readonly and not self._path.exists():
            self._refuse_missing()
        try:
            self._lock = self._take_sidecar()
        except OSError as exc:
            raise self._naming.os_error("open", exc, readonly=self._readonly) from None
        try:
            first = True if self._lock is None else self._lock.acquire(self._lock_timeout_s())
            self._in_session = not first  # a first opener starts one once its checks pass
            existed = inspect_existing_file(self._path)
            if first and not existed:
                self._refuse_missing()  # again, now that no other opener can be creating it
            sealed = False
            if first and self._seal_key is not None:
                sealed = verify_seal(self._path, self._seal_key)
            if self._frozen:
                self._target = self._frozen_target()
            elif first and existed and not key_fits_pending_recovery(self._path, self._hex):
                raise self._naming.undecryptable()
            database = None
            if first and existed and not sealed:
                database = self._check_unsealed()
            self._writer = self._connect(writer=True, new_db=not existed)
            if first:
                if existed and database is None:
                    database = self._database_record(self._writer)
                self._begin_session(database, opened_unsealed=existed and not sealed)
        except DatabaseCorrupted as exc:
            self._abandon()
            raise self._naming.named(exc) from None
        except OSError as exc:
            self._abandon()
            raise self._naming.os_error("open", exc, readonly=self._readonly) from None
        except BaseException:
            self._abandon()
            raise

    def _refuse_missing(self) -> None:
        """A missing file is a new database, unless it left something of itself behind.

        A WAL with content or a seal, or a commit record of committed transactions in the
        sidecar, belongs to a database that was deleted or moved: starting an empty one in
        its place would drop everything silently (SQLite would even replay the orphaned
        WAL into it). A writable opener asks as the first, under the exclusive lock: before
        that, a file another opener is creating could show its WAL before its database.
        """
        left = leftovers_of_missing(self._path)
        record = None if self._lock is None else self._lock.read_commit()
        if record is not None and record.counter:
            left.append(self._path.with_name(self._path.name + ".lock"))
        if left:
            raise self._naming.missing(left)
        if self._readonly:
            raise NotFound(f"{self._naming.label} does not exist")

    def _take_sidecar(self) -> OpenLock | None:
        """The ``<db>.lock`` of this opener; None on read-only media without one."""
        if not self._readonly:
            blocked = unwritable_part(self._path)
            if blocked is not None:
                raise self._naming.read_only(blocked)
            make_private_dirs(self._path.parent)
            return OpenLock(self._path)
        self._frozen = not os.access(self._path.parent, os.W_OK)
        if not self._frozen:
            try:
                return OpenLock(self._path)
            except OSError as exc:
                if exc.errno not in _DENIED:
                    raise
                self._frozen = True
        try:
            return OpenLock(self._path, writable=False)
        except FileNotFoundError:
            return None

    def _frozen_target(self) -> str:
        """How SQLite reads a WAL-mode file it may not write (nor create ``-shm`` beside).

        A WAL with content needs its ``-shm`` (SQLite >= 3.22 reads both read-only);
        without a WAL, ``immutable=1`` tells SQLite not to look for them at all.
        """
        quoted = urllib.parse.quote(str(self._path), safe="/")
        wal = wal_path(self._path)
        shm = self._path.with_name(self._path.name + "-shm")
        if wal.exists() and wal.stat().st_size > 0:
            if not shm.exists():
                raise self._naming.unreadable_wal()
            return f"file:{quoted}?mode=ro"
        return f"file:{quoted}?mode=ro&immutable=1"

    def _check_unsealed(self) -> CommitRecord:
        """The first opener's checks of a file closed uncleanly; returns its commit record.

        ``quick_check`` for structure, then the commit counter against its record for a
        lost or damaged WAL. They run on a read-only connection (``mode=ro``) so that a
        refused file is left exactly as found: closing a writable connection would
        checkpoint what is left of a damaged WAL into the database and delete the WAL.
        A hot rollback journal (a rekey cut short) must be rolled back first, which only
        a writable connection can do; then the checks run on the writer.
        """
        journal = self._path.with_name(self._path.name + "-journal")
        if self._frozen or (journal.exists() and journal.stat().st_size > 0):
            probe = self._connect(writer=False, new_db=False)
        else:
            quoted = urllib.parse.quote(str(self._path), safe="/")
            probe = self._connect(writer=False, new_db=False, target=f"file:{quoted}?mode=ro")
        try:
            if self._quick_check_rows(probe) != ["ok"]:
                self._note_corruption()
                raise self._naming.quick_check_failed()
            database = self._database_record(probe)
            self._check_commits(database)
        finally:
            _close_quietly(probe)
        return database

    def _check_commits(self, database: CommitRecord) -> None:
        """Refuse a database that lacks commits its record saw (unless accepted)."""
        lock = self._lock
        missing = 0 if lock is None else commits_missing(database, lock.read_commit())
        if not missing:
            return
        if not self._accept_wal_loss:
            raise self._naming.wal_lost(missing, wal_path(self._path))
        log.warning("%s: accepted the loss of %d committed transactions", self._name, missing)

    def _begin_session(self, database: CommitRecord | None, *, opened_unsealed: bool) -> None:
        """The first opener, checks passed: reset the records, drop the seal, let others in."""
        lock = self._lock
        if lock is None:
            return
        if lock.writable:
            lock.reset_commit(database if database is not None and database.file_id else None)
            lock.start_session(opened_unsealed=opened_unsealed)
            self._in_session = True
            # From here on the file changes; a stale seal would fail the next open.
            remove_seal(self._path)
        lock.downgrade()

    def _database_record(self, conn: Any) -> CommitRecord:
        with self._guard():
            return counter.read_record(conn)

    def _abandon(self) -> None:
        """Undo a failed open without sealing: a file that failed its checks stays unsealed."""
        self._closed = True
        self._pool.close()
        if self._writer is not None:
            _close_quietly(self._writer)
            self._writer = None
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def _release_open_lock(self, *, seal: bool) -> None:
        lock, self._lock = self._lock, None
        if lock is None:
            return
        try:
            if lock.release_and_try_last() and seal and self._may_seal(lock):
                assert self._seal_key is not None
                write_seal(self._path, self._seal_key)
        except OSError as exc:
            raise self._naming.os_error("seal", exc, readonly=self._readonly) from None
        finally:
            lock.close()

    def _may_seal(self, lock: OpenLock) -> bool:
        """The last closer seals only a file nobody saw damaged, re-checked if opened unsealed.

        A seal vouches for every byte, so sealing a file that failed ``quick_check`` would
        turn damage into a file that verifies. (A garbled row that ``quick_check`` cannot
        see is sealed all the same: docs/security.md says so.)
        """
        session = lock.read_session()
        if session.corruption_seen:
            log.warning("%s: left unsealed, an opener saw it damaged", self._name)
            return False
        if session.opened_unsealed and not self._passes_quick_check():
            log.warning("%s: left unsealed, it failed PRAGMA quick_check at close", self._name)
            return False
        return True

    def _passes_quick_check(self) -> bool:
        """``quick_check`` on a fresh connection: the file as the next opener will read it."""
        try:
            conn = self._connect(writer=False, new_db=False)
        except AicoError:
            return False
        try:
            return self._quick_check_rows(conn) == ["ok"]
        except AicoError:
            return False
        finally:
            _close_quietly(conn)

    def _lock_timeout_s(self) -> float:
        try:
            size = self._path.stat().st_size
        except FileNotFoundError:
            size = 0
        return self._settings.busy_timeout_ms / 1000 + size / _HASH_BYTES_PER_S

    def _connect(
        self,
        *,
        writer: bool,
        new_db: bool,
        hex_key: str | None = None,
        target: str | None = None,
    ) -> Any:
        with translate_errors(self._path):
            conn = libsql.connect(
                target or self._target,
                isolation_level=None,
                check_same_thread=False,
                encryption_key=hex_key or self._hex,
            )
        try:
            try:
                # The cipher shows a wrong key only when a page is read: read one now.
                self._close_cursor(self._run(conn, "SELECT count(*) FROM sqlite_master"))
            except DatabaseCorrupted:
                raise self._naming.undecryptable() from None
            for statement in self._settings.pragma_statements(
                writer=writer,
                new_db=new_db,
                readonly=self._readonly,
                busy_slice_ms=_BUSY_SLICE_MS,
            ):
                self._close_cursor(self._run(conn, statement))
        except BaseException:
            _close_quietly(conn)
            raise
        return conn

    def _open_reader(self) -> Any:
        return self._connect(writer=False, new_db=False)

    def _quick_check_rows(self, conn: Any) -> list[Any]:
        return [next(iter(r.values())) for r in self._rows(self._run(conn, "PRAGMA quick_check"))]

    # -- errors ----------------------------------------------------------------------

    def _note_corruption(self) -> None:
        """Remember it, here and in the sidecar, so that no closer seals this session.

        A first opener whose checks fail has no session to mark yet (the next first opener
        starts a new one), so a refused open leaves the sidecar as it was.
        """
        if self._corrupted:
            return
        self._corrupted = True
        lock = self._lock
        if lock is not None and lock.writable and self._in_session:
            with contextlib.suppress(OSError, StoreClosed):
                lock.mark_corruption_seen()

    # -- statements ------------------------------------------------------------------

    def execute(self, sql: str, params: Params = ()) -> ExecResult:
        """Run one write statement on the writer; autocommits outside ``transaction()``."""
        self._check_open()
        if self._counts_commits and not self.in_transaction and _WRITE_VERB.match(sql):
            with self.transaction():
                return self._execute(sql, params)
        with self._writer_lock:
            return self._execute(sql, params)

    def _execute(self, sql: str, params: Params) -> ExecResult:
        observer = _observer
        started = time.perf_counter() if observer is not None else 0.0
        cursor = self._run(self._require_writer(), sql, params)
        with self._guard():
            result = ExecResult(cursor.rowcount, cursor.lastrowid)
        self._close_cursor(cursor)
        if observer is not None:
            observer(sql, time.perf_counter() - started)
        return result

    def execute_many(self, sql: str, seq_of_params: Iterable[Params]) -> int:
        """Run one statement per parameter tuple in one transaction; total rowcount."""
        rows = [as_tuple(p) for p in seq_of_params]
        if not rows:
            return 0
        with self.transaction():
            conn = self._require_writer()
            if any(has_wide_int(r) for r in rows):
                total = 0
                for row in rows:
                    cursor = self._run(conn, sql, row)
                    total += max(cursor.rowcount, 0)
                    self._close_cursor(cursor)
                return total
            with self._guard():
                cursor = conn.executemany(sql, rows)
                total = int(cursor.rowcount)
            self._close_cursor(cursor)
            return total

    def execute_script(self, sql: str) -> None:
        """Run several ``;``-separated statements (no parameters).

        Not atomic by itself: wrap it in ``transaction()`` when it must be. Outside one,
        its commits are counted by one more commit right after it: the WAL is a sequence,
        so a WAL that kept that commit kept the script's too.
        """
        self._check_open()
        with self._writer_lock:
            conn = self._require_writer()
            counted = self._counts_commits and not self.in_transaction
            try:
                with self._guard():
                    conn.executescript(sql)
            except BaseException:
                if counted and not conn.in_transaction:
                    with contextlib.suppress(AicoError):
                        self._count_alone()
                raise
            if counted and not conn.in_transaction:
                self._count_alone()

    def _count_alone(self) -> None:
        with self.transaction():
            pass  # the outermost commit bumps the counter

    def fetch_all(self, sql: str, params: Params = ()) -> list[dict[str, Any]]:
        """All rows as dicts keyed by column name."""
        observer = _observer
        started = time.perf_counter() if observer is not None else 0.0
        with self._read_conn() as conn:
            rows = self._rows(self._run(conn, sql, params))
        if observer is not None:
            observer(sql, time.perf_counter() - started)
        return rows

    def fetch_one(self, sql: str, params: Params = ()) -> dict[str, Any] | None:
        """The first row as a dict, or None."""
        observer = _observer
        started = time.perf_counter() if observer is not None else 0.0
        with self._read_conn() as conn:
            rows = self._rows(self._run(conn, sql, params), first_only=True)
        if observer is not None:
            observer(sql, time.perf_counter() - started)
        return rows[0] if rows else None

    def fetch_value(self, sql: str, params: Params = ()) -> Any:
        """The first column of the first row, or None."""
        row = self.fetch_one(sql, params)
        return None if row is None else next(iter(row.values()), None)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[EncryptedLibSQLConnection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``; ``ROLLBACK`` and re-raise on any exception.

        Nested calls on the same thread use savepoints. Other threads wait for the writer
        until the outermost transaction ends; their reads go to the reader pool. Yields
        this connection, so ``with conn.transaction() as tx: tx.execute(...)`` reads well.
        The outermost commit of a writable connection bumps the commit counter.
        """
        self._check_open()
        with self._writer_lock:
            conn = self._require_writer()
            depth = self._tx_depth
            savepoint = f"aico_sp_{depth}"
            self._close_cursor(
                self._run(conn, "BEGIN IMMEDIATE" if depth == 0 else f"SAVEPOINT {savepoint}")
            )
            self._tx_depth = depth + 1
            if depth == 0:
                self._tx_owner = threading.get_ident()
            try:
                try:
                    yield self
                except BaseException:
                    self._undo(conn, depth, savepoint)
                    raise
                record = None
                try:
                    if depth == 0 and self._counts_commits:
                        record = self._bump_counter(conn)
                    end = "COMMIT" if depth == 0 else f"RELEASE {savepoint}"
                    self._close_cursor(self._run(conn, end))
                except BaseException:
                    self._undo(conn, depth, savepoint)
                    raise
                if record is not None:
                    self._note_commit(record)
            finally:
                self._tx_depth = depth
                if depth == 0:
                    self._tx_owner = None

    def checkpoint(self, mode: str = "TRUNCATE") -> bool:
        """Copy the WAL into the database; True if it completed.

        ``TRUNCATE`` also empties the WAL file, which the forget path relies on.
        """
        self._check_open()
        with self._writer_lock:
            if self._tx_depth:
                raise InvalidInput("checkpoint() cannot run inside a transaction")
            return self._checkpoint_on(self._require_writer(), mode)

    def rekey(self, new_key: bytes, *, new_seal_key: bytes | None = None) -> None:
        """Re-encrypt every page with ``new_key``; needs the file to itself.

        SQLite3 Multiple Ciphers rekeys only outside WAL, so this checkpoints, switches to
        ``journal_mode=DELETE``, rekeys, switches back, and checks that a fresh connection
        opens with the new key. Other open connections (readers of other processes) make
        the mode switch fail with ``DatabaseBusy``. The rekey runs in one rollback-journal
        transaction: a crash leaves a file that opens with exactly one of the two keys
        (old until the commit, new after), so a crash-safe caller tries both.
        ``new_seal_key``, if given, seals the file from the next close on. The commit
        counter lives in the header, so it is re-encrypted with every other page.
        """
        new_hex = _key_hex(new_key, "new_key")
        if new_seal_key is not None:
            _key_hex(new_seal_key, "new_seal_key")
        if self._readonly:
            raise InvalidInput("cannot rekey a read-only connection")
        self._check_open()
        with self._writer_lock:
            if self._tx_depth:
                raise InvalidInput("rekey() cannot run inside a transaction")
            conn = self._require_writer()
            self._pool.drain()
            try:
                wal = self._settings.journal_mode == "WAL"
                if wal:
                    self._checkpoint_on(conn, "TRUNCATE")
                    mode = self._scalar(conn, "PRAGMA journal_mode = DELETE")
                    if str(mode).lower() != "delete":
                        raise DatabaseBusy(f"rekey of {self._path} needs exclusive access")
                try:
                    self._close_cursor(self._run(conn, f"PRAGMA rekey = '{new_hex}'"))
                finally:
                    if wal:
                        self._close_cursor(self._run(conn, "PRAGMA journal_mode = WAL"))
                _close_quietly(self._connect(writer=False, new_db=False, hex_key=new_hex))
                self._hex = new_hex
                if new_seal_key is not None:
                    self._seal_key = bytes(new_seal_key)
            finally:
                self._pool.resume()

    # -- the commit counter ------------------------------------------------------------

    @property
    def _counts_commits(self) -> bool:
        return self._COUNT_COMMITS and not self._readonly

    def _bump_counter(self, conn: Any) -> CommitRecord:
        """Inside the outermost transaction, before COMMIT: the next commit counter."""
        with self._guard():
            return counter.bump(conn, self._file_id)

    def _note_commit(self, record: CommitRecord) -> None:
        """After COMMIT: record the counter outside the WAL (a failure only makes it lag)."""
        self._file_id = record.file_id
        lock = self._lock
        if lock is not None and lock.writable:
            with contextlib.suppress(OSError, StoreClosed):
                lock.advance_commit(record)

    # -- internals -------------------------------------------------------------------

    @property
    def _name(self) -> str:
        return str(self._path)

    def _check_open(self) -> None:
        # A transaction already under way may finish: close() waits for it.
        if self._closed and not self.in_transaction:
            raise StoreClosed(f"database {self._path} is closed")

    def _require_writer(self) -> Any:
        if self._writer is None:
            raise StoreClosed(f"database {self._path} is closed")
        return self._writer

    def _translate(self, exc: BaseException) -> BaseException | None:
        """The ``aico`` error for a driver exception (None: let it propagate as it is).

        Corruption is named (file, store) and remembered, so that no close seals it.
        """
        error = classify(exc, self._path)
        if isinstance(error, DatabaseCorrupted):
            self._note_corruption()
            return self._naming.named(error)
        return error

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """``translate_errors`` with ``_translate``'s naming and memory of corruption."""
        try:
            yield
        except BaseException as exc:
            error = self._translate(exc)
            if error is None:
                raise
            raise error from None

    @contextlib.contextmanager
    def _read_conn(self) -> Iterator[Any]:
        self._check_open()
        if self.in_transaction:
            with self._writer_lock:
                yield self._require_writer()
        else:
            with self._pool.reader() as conn:
                yield conn

    def _run(self, conn: Any, sql: str, params: Params = ()) -> Any:
        """Execute with translated errors, retrying "busy" while nothing is at stake.

        Translation is inlined rather than a ``with`` block: this runs for every statement.
        """
        sql, values = prepare(sql, params)
        deadline: float | None = None
        delay = 0.001
        while True:
            try:
                return conn.execute(sql, values)
            except BaseException as exc:
                error = self._translate(exc)
                if error is None:
                    raise
                if not isinstance(error, DatabaseBusy) or conn.in_transaction:
                    raise error from None
            now = time.monotonic()
            if deadline is None:
                deadline = now + self._settings.busy_timeout_ms / 1000
            if now >= deadline:
                raise error from None
            time.sleep(min(delay, deadline - now))
            delay = min(delay * 2, _MAX_BACKOFF_S)

    def _rows(self, cursor: Any, *, first_only: bool = False) -> list[dict[str, Any]]:
        # Close the cursor at once: an open statement pins a WAL snapshot.
        with self._guard():
            try:
                names = [d[0] for d in cursor.description or ()]
                if first_only:
                    row = cursor.fetchone()
                    rows = [] if row is None else [row]
                else:
                    rows = cursor.fetchall()
            finally:
                cursor.close()
        return [dict(zip(names, row, strict=False)) for row in rows]

    def _scalar(self, conn: Any, sql: str) -> Any:
        rows = self._rows(self._run(conn, sql), first_only=True)
        return next(iter(rows[0].values()), None) if rows else None

    def _close_cursor(self, cursor: Any) -> None:
        try:
            cursor.close()
        except BaseException as exc:
            error = self._translate(exc)
            if error is None:
                raise
            raise error from None

    def _checkpoint_on(self, conn: Any, mode: str) -> bool:
        mode = mode.upper()
        if mode not in _CHECKPOINT_MODES:
            raise InvalidInput(f"checkpoint mode must be one of {sorted(_CHECKPOINT_MODES)}")
        deadline = time.monotonic() + self._settings.busy_timeout_ms / 1000
        delay = 0.001
        while True:
            rows = self._rows(self._run(conn, f"PRAGMA wal_checkpoint({mode})"))
            busy = next(iter(rows[0].values())) if rows else 0
            if not busy:
                return True
            if mode == "PASSIVE" or time.monotonic() >= deadline:
                return False
            time.sleep(delay)
            delay = min(delay * 2, _MAX_BACKOFF_S)

    def _undo(self, conn: Any, depth: int, savepoint: str) -> None:
        # Best effort: the original exception is what the caller must see.
        with contextlib.suppress(AicoError):
            if depth == 0:
                if conn.in_transaction:
                    self._close_cursor(self._run(conn, "ROLLBACK"))
            else:
                self._close_cursor(self._run(conn, f"ROLLBACK TO {savepoint}"))
                self._close_cursor(self._run(conn, f"RELEASE {savepoint}"))


def _key_hex(key: object, name: str) -> str:
    if not isinstance(key, bytes | bytearray | memoryview) or len(key) != _KEY_BYTES:
        raise InvalidInput(f"{name} must be {_KEY_BYTES} raw bytes")
    return bytes(key).hex()


def _close_quietly(conn: Any) -> None:
    with contextlib.suppress(AicoError), translate_errors():
        conn.close()
