"""``<db>.lock``: who has a database open, and what must survive the loss of its WAL.

The sidecar next to every database does two jobs.

**Open set** (``flock``): every opener holds ``LOCK_SH`` while open; an opener or closer
that gets a non-blocking ``LOCK_EX`` knows no other opener exists, so it is the first
(it verifies the seal) or the last (it writes the seal). Each ``OpenLock`` has its own
open file description, so two connections in one process count as two openers.

**Records** (16-byte slots written with ``pwrite``, no fsync):

- offset 0, the *commit record*: the database's id and the last commit counter any
  connection saw committed (see ``EncryptedLibSQLConnection``). It lives outside the
  database because a deleted, truncated or damaged ``-wal`` takes the database's own
  counter back with it; the page cache keeps the record across a ``SIGKILL`` (only an OS
  crash can lose it, and then it lags, which is never a false alarm).
- offset 16, the *session record*: set by the first opener and read by the last closer,
  who must not seal a file that was opened unsealed without re-checking it, nor one on
  which any opener saw corruption.

Each slot carries a magic and a CRC: a slot that is absent or garbled reads as unknown.
Writers of the commit record keep the maximum (serial-number order, the counter is 32
bits): several connections and processes commit in one order but record afterwards, in
any order. That read-compare-write runs under a POSIX byte-range lock on the slot (other
processes) and a per-file mutex (this process: POSIX locks belong to the process, and
closing any descriptor of the file drops them, so ``close`` takes the mutex too). POSIX
``flock`` and byte-range locks do not interact on Linux. POSIX only.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from aico.errors import DatabaseBusy, StoreClosed

__all__ = [
    "CommitRecord",
    "OpenLock",
    "Session",
    "commits_missing",
    "lock_path",
    "next_counter",
]

_COMMIT_SLOT = 0
_SESSION_SLOT = 16
_SLOT = struct.Struct(">4sIII")  # magic, a, b, crc32 of the first 12 bytes
_COMMIT_MAGIC = b"aCC1"
_SESSION_MAGIC = b"aCS1"
_OPENED_UNSEALED = 1
_CORRUPTION_SEEN = 2
_COUNTER_MOD = 1 << 32
_STRIPES = 64
_COMMIT_PATIENCE_S = 0.05
_FIRST_OPENER_PATIENCE_S = 2.0


def lock_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".lock")


@dataclass(frozen=True)
class CommitRecord:
    """A database's id (``PRAGMA application_id``, 0 = never counted) and commit counter."""

    file_id: int
    counter: int


@dataclass(frozen=True)
class Session:
    """What the first opener of this open session found, and what any opener saw since."""

    opened_unsealed: bool
    corruption_seen: bool


def next_counter(counter: int) -> int:
    """The counter after ``counter`` (32 bits, wrapping)."""
    return (counter + 1) % _COUNTER_MOD


def commits_missing(database: CommitRecord, recorded: CommitRecord | None) -> int:
    """How many recorded commits the database lacks; 0 when none or when unknown.

    Unknown: no record, or a record of another file (a different id). A database that
    was never counted (id 0) but has a record lost the very commit that counted it first.
    """
    if recorded is None or recorded.counter == 0:
        return 0
    if database.file_id not in (0, recorded.file_id):
        return 0
    behind = (recorded.counter - database.counter) % _COUNTER_MOD
    return behind if 0 < behind < _COUNTER_MOD // 2 else 0


def _pack(magic: bytes, a: int, b: int) -> bytes:
    head = struct.pack(">4sII", magic, a, b)
    return head + struct.pack(">I", zlib.crc32(head))


def _unpack(raw: bytes, magic: bytes) -> tuple[int, int] | None:
    if len(raw) != _SLOT.size:
        return None
    found, a, b, crc = _SLOT.unpack(raw)
    if found != magic or crc != zlib.crc32(raw[:12]):
        return None
    return a, b


# One mutex per stripe of lock files: bounded, and two paths sharing one only wait a bit.
_MUTEXES = [threading.Lock() for _ in range(_STRIPES)]


def _mutex(path: Path) -> threading.Lock:
    return _MUTEXES[hash(str(path)) % _STRIPES]


def _after_fork_in_child() -> None:
    # Another thread may have held one at the fork; the child starts with free mutexes.
    for index in range(_STRIPES):
        _MUTEXES[index] = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


class OpenLock:
    """One opener's descriptor of ``<db>.lock``: the open set and the records.

    ``writable=False`` (read-only media) opens an existing sidecar read-only and raises
    ``FileNotFoundError`` when there is none; locking works, records are read but never
    written, and a seal found by a joiner is left alone.
    """

    def __init__(self, db_path: Path, *, writable: bool = True) -> None:
        self._db_path = db_path
        self._path = lock_path(db_path)
        self.writable = writable
        flags = os.O_RDWR | os.O_CREAT if writable else os.O_RDONLY
        self._fd: int | None = os.open(self._path, flags, 0o600)

    # -- the open set ---------------------------------------------------------------

    def acquire(self, timeout_s: float) -> bool:
        """Join the open set; return True if this opener is the first (holds ``LOCK_EX``).

        A joiner that finds a seal raced with a last closer that sealed after our
        exclusive attempt failed: it retries to become first so the seal gets verified
        and removed instead of going stale. A read-only opener cannot remove it and does
        not need to: it never writes, so the seal stays true.
        """
        deadline = time.monotonic() + timeout_s
        delay = 0.001
        while True:
            if self._try(fcntl.LOCK_EX):
                return True
            if self._try(fcntl.LOCK_SH):
                if not self.writable or not _seal_exists(self._db_path):
                    return False
                self._unlock()
            if time.monotonic() >= deadline:
                raise DatabaseBusy(f"could not take the open lock of {self._db_path}")
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def downgrade(self) -> None:
        """Exclusive -> shared once the first opener has checked the files."""
        fcntl.flock(self._require_fd(), fcntl.LOCK_SH)

    def release_and_try_last(self) -> bool:
        """Leave the open set; return True (holding ``LOCK_EX``) if nobody else is open.

        Releasing before the exclusive attempt matters: a failed ``flock`` conversion on
        Linux can drop the shared lock anyway, and two closers that each still held a
        shared lock would both fail and leave the file unsealed.
        """
        self._unlock()
        return self._try(fcntl.LOCK_EX)

    def close(self) -> None:
        with _mutex(self._path):  # never drop another opener's byte-range lock mid-write
            if self._fd is not None:
                with contextlib.suppress(OSError):
                    os.close(self._fd)  # closing the descriptor drops any flock
                self._fd = None

    # -- records --------------------------------------------------------------------

    def read_commit(self) -> CommitRecord | None:
        slot = self._read(_COMMIT_SLOT, _COMMIT_MAGIC)
        return None if slot is None else CommitRecord(*slot)

    def reset_commit(self, record: CommitRecord | None) -> None:
        """Overwrite the commit record (``None``: unknown). Only a first opener may."""
        data = bytes(_SLOT.size) if record is None else self._commit_bytes(record)
        with self._slot_locked(_COMMIT_SLOT, patience_s=_FIRST_OPENER_PATIENCE_S):
            # Written even unlocked: under LOCK_EX no opener is left that could commit.
            os.pwrite(self._require_fd(), data, _COMMIT_SLOT)

    def advance_commit(self, record: CommitRecord) -> None:
        """Record a committed counter unless a later one of the same file is recorded.

        Skipped if another process holds the slot for longer than a commit should wait.
        """
        with self._slot_locked(_COMMIT_SLOT, patience_s=_COMMIT_PATIENCE_S) as locked:
            if not locked:
                return
            current = self.read_commit()
            if current is not None and current.file_id == record.file_id:
                ahead = (record.counter - current.counter) % _COUNTER_MOD
                if not 0 < ahead < _COUNTER_MOD // 2:
                    return
            os.pwrite(self._require_fd(), self._commit_bytes(record), _COMMIT_SLOT)

    def read_session(self) -> Session:
        """The session record; absent or garbled reads as "opened unsealed" (check it)."""
        slot = self._read(_SESSION_SLOT, _SESSION_MAGIC)
        flags = _OPENED_UNSEALED if slot is None else slot[0]
        return Session(bool(flags & _OPENED_UNSEALED), bool(flags & _CORRUPTION_SEEN))

    def start_session(self, *, opened_unsealed: bool) -> None:
        """Written by the first opener, under ``LOCK_EX``: a new session, nothing seen yet."""
        flags = _OPENED_UNSEALED if opened_unsealed else 0
        with self._slot_locked(_SESSION_SLOT, patience_s=_FIRST_OPENER_PATIENCE_S):
            os.pwrite(self._require_fd(), _pack(_SESSION_MAGIC, flags, 0), _SESSION_SLOT)

    def mark_corruption_seen(self) -> None:
        """Any opener that saw corruption: the last closer of this session must not seal.

        Written even if the slot stays locked: losing this mark could seal damage.
        """
        with self._slot_locked(_SESSION_SLOT, patience_s=_FIRST_OPENER_PATIENCE_S):
            session = self.read_session()
            flags = _CORRUPTION_SEEN | (_OPENED_UNSEALED if session.opened_unsealed else 0)
            os.pwrite(self._require_fd(), _pack(_SESSION_MAGIC, flags, 0), _SESSION_SLOT)

    # -- internals ------------------------------------------------------------------

    @staticmethod
    def _commit_bytes(record: CommitRecord) -> bytes:
        return _pack(_COMMIT_MAGIC, record.file_id % _COUNTER_MOD, record.counter % _COUNTER_MOD)

    def _read(self, offset: int, magic: bytes) -> tuple[int, int] | None:
        try:
            raw = os.pread(self._require_fd(), _SLOT.size, offset)
        except OSError:
            return None
        return _unpack(raw, magic)

    @contextlib.contextmanager
    def _slot_locked(self, offset: int, *, patience_s: float) -> Iterator[bool]:
        """Hold the slot's byte-range lock; yields whether it was had within ``patience_s``.

        Bounded, because the commit path waits here: a holder that is stopped (``SIGSTOP``,
        a debugger) must not stall every other process's commits. Callers that cannot wait
        skip their write (a record that lags is never a false alarm).
        """
        if not self.writable:
            raise PermissionError(errno.EBADF, "sidecar opened read-only", str(self._path))
        with _mutex(self._path):
            fd = self._require_fd()
            deadline = time.monotonic() + patience_s
            delay = 0.0005
            while True:
                try:
                    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, _SLOT.size, offset, os.SEEK_SET)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                if time.monotonic() >= deadline:
                    yield False
                    return
                time.sleep(delay)
                delay = min(delay * 2, 0.01)
            try:
                yield True
            finally:
                fcntl.lockf(fd, fcntl.LOCK_UN, _SLOT.size, offset, os.SEEK_SET)

    def _try(self, kind: int) -> bool:
        try:
            fcntl.flock(self._require_fd(), kind | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                return False
            raise
        return True

    def _unlock(self) -> None:
        fcntl.flock(self._require_fd(), fcntl.LOCK_UN)

    def _require_fd(self) -> int:
        if self._fd is None:
            raise StoreClosed(f"open lock of {self._db_path} is already released")
        return self._fd


def _seal_exists(db_path: Path) -> bool:
    return db_path.with_name(db_path.name + ".seal").exists()
