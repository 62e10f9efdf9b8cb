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
  file: it finds structural damage but not a flipped byte inside a row.
- **A wrong key never writes.** If a hot journal or WAL content is waiting for recovery, the
  key is first proved on a scratch copy of page 1 (:mod:`aico.data.libsql.keycheck`):
  SQLite would otherwise recover through the wrong key and destroy the file.
"""

from __future__ import annotations

import contextlib
import stat
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import libsql_experimental as libsql

from aico.data.libsql.errors import translate_errors
from aico.data.libsql.keycheck import key_fits_pending_recovery
from aico.data.libsql.params import Params, as_tuple, has_wide_int, prepare
from aico.data.libsql.pool import ReaderPool
from aico.data.libsql.seal import OpenLock, remove_seal, verify_seal, write_seal
from aico.data.libsql.settings import SQLiteSettings
from aico.errors import (
    AicoError,
    DatabaseBusy,
    DatabaseCorrupted,
    InvalidInput,
    NotFound,
    StorageError,
    StoreClosed,
)

__all__ = ["EncryptedLibSQLConnection", "ExecResult"]

_PLAINTEXT_MAGIC = b"SQLite format 3\x00"
_KEY_BYTES = 32
_BUSY_SLICE_MS = 20
_MAX_BACKOFF_S = 0.05
_CHECKPOINT_MODES = frozenset({"PASSIVE", "FULL", "RESTART", "TRUNCATE"})
# Hashing for the seal runs under the exclusive open lock; allow for big files.
_HASH_BYTES_PER_S = 50_000_000


@dataclass(frozen=True)
class ExecResult:
    """What a write statement did."""

    rowcount: int
    lastrowid: int | None


class EncryptedLibSQLConnection:
    """A thread-safe handle on one SQLite3-Multiple-Ciphers encrypted database.

    ``encryption_key`` is a 32-byte subkey; it reaches libsql as hex. A database that does
    not open with it raises ``DatabaseCorrupted``: the caller has already proved the
    passphrase with the key file, so the file is corrupt or from another key.

    ``seal_key`` (32 bytes) turns on the integrity seal: the last clean close writes an
    HMAC of the file to ``<db>.seal`` and the first opener verifies it, because the cipher
    has no MAC and a flipped byte inside a row would otherwise read back as wrong data.
    After an unclean close there is no seal; the first opener then runs
    ``PRAGMA quick_check``, which catches structural damage only.

    Parameters are positional (``?``) only: the driver supports nothing else. Use
    ``execute`` for anything that writes; ``fetch_*`` run on read-only connections unless
    the calling thread is inside ``transaction()``.
    """

    def __init__(
        self,
        db_path: str | Path,
        encryption_key: bytes,
        *,
        settings: SQLiteSettings | None = None,
        seal_key: bytes | None = None,
        readonly: bool = False,
    ) -> None:
        self._path = Path(db_path).expanduser().absolute()
        self._hex = _key_hex(encryption_key, "encryption_key")
        if seal_key is not None:
            _key_hex(seal_key, "seal_key")
        self._seal_key = None if seal_key is None else bytes(seal_key)
        self._settings = settings or SQLiteSettings()
        self._readonly = readonly
        self._writer_lock = threading.RLock()
        self._state_lock = threading.Lock()
        self._tx_depth = 0
        self._tx_owner: int | None = None
        self._closed = False
        self._corrupted = False
        self._writer: Any = None
        self._lock: OpenLock | None = None
        self._pool = ReaderPool(self._open_reader, self._settings.reader_pool_size, self._name)
        self._open()

    # -- lifecycle -------------------------------------------------------------------

    @property
    def path(self) -> Path:
        return self._path

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
            seal = self._seal_key is not None and not self._corrupted
            if writer is not None:
                if seal:
                    # A failed checkpoint is fine: the seal covers a leftover WAL too.
                    with contextlib.suppress(AicoError):
                        self._checkpoint_on(writer, "TRUNCATE")
                _close_quietly(writer)
            self._release_open_lock(seal=seal)

    def _open(self) -> None:
        if self._readonly and not self._path.exists():
            raise NotFound(f"database {self._path} does not exist")
        try:
            _make_private_dirs(self._path.parent)
            self._lock = OpenLock(self._path)
        except OSError as exc:
            raise StorageError(f"cannot open database {self._path}: {exc.strerror}") from None
        try:
            first = self._lock.acquire(self._lock_timeout_s())
            existed = _inspect_existing_file(self._path)
            sealed = False
            if first and self._seal_key is not None:
                sealed = verify_seal(self._path, self._seal_key)
            if first and existed and not key_fits_pending_recovery(self._path, self._hex):
                raise self._wrong_key()
            self._writer = self._connect(writer=True, new_db=not existed)
            if first:
                if existed and not sealed:
                    self._quick_check()
                # From here on the file changes; a stale seal would fail the next open.
                remove_seal(self._path)
                self._lock.downgrade()
        except OSError as exc:
            self._abandon()
            raise StorageError(f"cannot open database {self._path}: {exc.strerror}") from None
        except BaseException:
            self._abandon()
            raise

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
            if lock.release_and_try_last() and seal and self._seal_key is not None:
                write_seal(self._path, self._seal_key)
        except OSError as exc:
            raise StorageError(f"cannot seal database {self._path}: {exc.strerror}") from None
        finally:
            lock.close()

    def _lock_timeout_s(self) -> float:
        try:
            size = self._path.stat().st_size
        except FileNotFoundError:
            size = 0
        return self._settings.busy_timeout_ms / 1000 + size / _HASH_BYTES_PER_S

    def _connect(self, *, writer: bool, new_db: bool, hex_key: str | None = None) -> Any:
        with translate_errors():
            conn = libsql.connect(
                str(self._path),
                isolation_level=None,
                check_same_thread=False,
                encryption_key=hex_key or self._hex,
            )
        try:
            try:
                # The cipher shows a wrong key only when a page is read: read one now.
                self._close_cursor(self._run(conn, "SELECT count(*) FROM sqlite_master"))
            except DatabaseCorrupted:
                raise self._wrong_key() from None
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

    def _wrong_key(self) -> DatabaseCorrupted:
        return DatabaseCorrupted(
            f"database {self._path} did not open with its key: the file is corrupt "
            "or was encrypted with another key"
        )

    def _open_reader(self) -> Any:
        return self._connect(writer=False, new_db=False)

    def _quick_check(self) -> None:
        rows = self._rows(self._run(self._writer, "PRAGMA quick_check"))
        if [next(iter(r.values())) for r in rows] != ["ok"]:
            self._corrupted = True
            raise DatabaseCorrupted(f"database {self._path} failed PRAGMA quick_check")

    # -- statements ------------------------------------------------------------------

    def execute(self, sql: str, params: Params = ()) -> ExecResult:
        """Run one write statement on the writer; autocommits outside ``transaction()``."""
        self._check_open()
        with self._writer_lock:
            cursor = self._run(self._require_writer(), sql, params)
            with self._guard():
                result = ExecResult(cursor.rowcount, cursor.lastrowid)
            self._close_cursor(cursor)
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

        Not atomic by itself: wrap it in ``transaction()`` when it must be.
        """
        self._check_open()
        with self._writer_lock:
            conn = self._require_writer()
            with self._guard():
                conn.executescript(sql)

    def fetch_all(self, sql: str, params: Params = ()) -> list[dict[str, Any]]:
        """All rows as dicts keyed by column name."""
        with self._read_conn() as conn:
            return self._rows(self._run(conn, sql, params))

    def fetch_one(self, sql: str, params: Params = ()) -> dict[str, Any] | None:
        """The first row as a dict, or None."""
        with self._read_conn() as conn:
            rows = self._rows(self._run(conn, sql, params), first_only=True)
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
                try:
                    end = "COMMIT" if depth == 0 else f"RELEASE {savepoint}"
                    self._close_cursor(self._run(conn, end))
                except BaseException:
                    self._undo(conn, depth, savepoint)
                    raise
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
        ``new_seal_key``, if given, seals the file from the next close on.
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

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """``translate_errors`` plus: remember corruption so close() will not seal it."""
        try:
            with translate_errors():
                yield
        except DatabaseCorrupted:
            self._corrupted = True
            raise

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
        """Execute with translated errors, retrying "busy" while nothing is at stake."""
        sql, values = prepare(sql, params)
        deadline: float | None = None
        delay = 0.001
        while True:
            try:
                with self._guard():
                    return conn.execute(sql, values)
            except DatabaseBusy:
                if conn.in_transaction:
                    raise
                now = time.monotonic()
                if deadline is None:
                    deadline = now + self._settings.busy_timeout_ms / 1000
                if now >= deadline:
                    raise
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
        with self._guard():
            cursor.close()

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


def _make_private_dirs(directory: Path) -> None:
    """Create missing directories 0700 (``mkdir(parents=True)`` would not for ancestors)."""
    missing: list[Path] = []
    current = directory
    while not current.exists():
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=0o700)


def _inspect_existing_file(path: Path) -> bool:
    """Refuse files that cannot be an intact encrypted database; True if one exists.

    Runs under the open lock, so a file another opener is still creating is not seen
    half-written.
    """
    try:
        info = path.stat()
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(info.st_mode):
        raise InvalidInput(f"database path {path} is not a regular file")
    if info.st_size == 0:
        raise DatabaseCorrupted(f"database {path} is empty (0 bytes): truncated or never written")
    with open(path, "rb") as fh:
        head = fh.read(len(_PLAINTEXT_MAGIC))
    if head == _PLAINTEXT_MAGIC:
        raise DatabaseCorrupted(f"database {path} is a plaintext SQLite file, refusing")
    if info.st_size % 512:
        raise DatabaseCorrupted(f"database {path} is truncated: not a whole number of pages")
    return True
