"""A keyed HMAC seal over a closed database file, and the sidecar lock that decides who seals.

Why: SQLite3 Multiple Ciphers encrypts pages with AES-256-CBC and no MAC. A flipped
ciphertext byte garbles one 16-byte block of plaintext; if it lands inside a row,
``PRAGMA quick_check`` still says "ok" and the row silently reads back wrong. So on the last
clean close the file (and any WAL or journal left behind) is sealed with HMAC-SHA256 under a subkey,
and the first opener verifies the seal before SQLite reads a byte. While the database is
open the seal is removed: a database without a seal is "open or closed uncleanly", and then
only ``quick_check`` protects it (structural damage only, not a flipped byte in a row).

Who is first and who is last is decided with ``flock`` on ``<db>.lock``: every opener holds
``LOCK_SH`` while open; an opener or closer that gets a non-blocking ``LOCK_EX`` knows no
other opener exists. POSIX only.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import hmac
import json
import os
import struct
import time
from pathlib import Path

from aico.errors import DatabaseBusy, DatabaseCorrupted, StoreClosed

__all__ = ["OpenLock", "seal_path", "verify_seal", "write_seal"]

SEAL_VERSION = 1
_DOMAIN = b"aico/seal/v1\x00"
_CHUNK = 1 << 20


def seal_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".seal")


def lock_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".lock")


def wal_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + "-wal")


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def compute_mac(db_path: Path, seal_key: bytes) -> tuple[dict[str, int], str]:
    """HMAC-SHA256 over the sizes and bytes of the database, its WAL and its journal.

    Absent files count as empty. The WAL and the rollback journal are covered because
    SQLite would replay a planted ``-wal`` or roll back a planted ``-journal`` on open.
    """
    parts = {
        "db_size": db_path,
        "wal_size": wal_path(db_path),
        "journal_size": db_path.with_name(db_path.name + "-journal"),
    }
    sizes = {name: _file_size(path) for name, path in parts.items()}
    header = struct.pack(">QQQ", *(sizes[name] for name in parts))
    mac = hmac.new(seal_key, _DOMAIN + header, hashlib.sha256)
    for name, path in parts.items():
        remaining = sizes[name]
        if not remaining:
            continue
        with open(path, "rb") as fh:
            while remaining:
                chunk = fh.read(min(_CHUNK, remaining))
                if not chunk:  # shrank under us: the MAC will not match, which is right
                    break
                mac.update(chunk)
                remaining -= len(chunk)
    return sizes, mac.hexdigest()


def write_seal(db_path: Path, seal_key: bytes) -> None:
    """Seal the closed database atomically (temp file, fsync, rename, fsync dir)."""
    sizes, mac = compute_mac(db_path, seal_key)
    body = json.dumps(
        {"version": SEAL_VERSION, "alg": "HMAC-SHA256", **sizes, "mac": mac},
        sort_keys=True,
    ).encode()
    target = seal_path(db_path)
    tmp = target.with_name(target.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, body)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, target)
    _fsync_dir(target.parent)


def verify_seal(db_path: Path, seal_key: bytes) -> bool:
    """Check the seal; True if present and matching, False if absent.

    Raises ``DatabaseCorrupted`` if a seal is present but does not match the files.
    """
    try:
        raw = seal_path(db_path).read_bytes()
    except FileNotFoundError:
        return False
    try:
        data = json.loads(raw)
        version, expected = data["version"], str(data["mac"])
    except (ValueError, KeyError, TypeError):
        raise DatabaseCorrupted(f"integrity seal of {db_path} is unreadable") from None
    if version != SEAL_VERSION:
        raise DatabaseCorrupted(f"integrity seal of {db_path} has unknown version {version!r}")
    _, actual = compute_mac(db_path, seal_key)
    if not hmac.compare_digest(actual, expected):
        raise DatabaseCorrupted(
            f"integrity seal mismatch for {db_path}: the file was modified while closed"
        )
    return True


def remove_seal(db_path: Path) -> None:
    """Mark the database open (dirty): a stale seal would fail the next verification."""
    target = seal_path(db_path)
    try:
        target.unlink()
    except FileNotFoundError:
        return
    _fsync_dir(target.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class OpenLock:
    """``flock`` on ``<db>.lock``: shared while open, exclusive to be first or last.

    Each instance has its own open file description, so two connections in one process
    count as two openers, exactly like two processes.
    """

    def __init__(self, db_path: Path) -> None:
        self._db_path = db_path
        self._fd: int | None = os.open(lock_path(db_path), os.O_RDWR | os.O_CREAT, 0o600)

    def acquire(self, timeout_s: float) -> bool:
        """Join the open set; return True if this opener is the first (holds ``LOCK_EX``).

        A joiner that finds a seal raced with a last closer that sealed after our
        exclusive attempt failed: it retries to become first so the seal gets verified
        and removed instead of going stale.
        """
        deadline = time.monotonic() + timeout_s
        delay = 0.001
        while True:
            if self._try(fcntl.LOCK_EX):
                return True
            if self._try(fcntl.LOCK_SH):
                if not seal_path(self._db_path).exists():
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
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)  # closing the descriptor drops any flock
            self._fd = None

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
