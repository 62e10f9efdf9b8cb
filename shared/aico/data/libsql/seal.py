"""A keyed HMAC seal over a closed database file: checked by the first opener, written by the last.

Why: SQLite3 Multiple Ciphers encrypts pages with AES-256-CBC and no MAC. A flipped
ciphertext byte garbles one 16-byte block of plaintext; if it lands inside a row,
``PRAGMA quick_check`` still says "ok" and the row silently reads back wrong. So on the last
clean close the file (and any WAL or journal left behind) is sealed with HMAC-SHA256 under a subkey,
and the first opener verifies the seal before SQLite reads a byte. While the database is
open the seal is removed: a database without a seal is "open or closed uncleanly", and then
only ``quick_check`` protects it (structural damage only, not a flipped byte in a row).

Who is first and who is last is decided by the sidecar lock (:mod:`aico.data.libsql.sidecar`).
A write of the seal that fails for want of space raises ``OSError`` (``ENOSPC``, ``EFBIG``,
``EDQUOT``); the connection turns it into ``StorageFull``.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import struct
from pathlib import Path

from aico.errors import DatabaseCorrupted

__all__ = ["remove_seal", "seal_path", "verify_seal", "wal_path", "write_seal"]

SEAL_VERSION = 1
_DOMAIN = b"aico/seal/v1\x00"
_CHUNK = 1 << 20


def seal_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".seal")


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
        view = memoryview(body)
        while view:  # a short write (file-size limit, full disk) raises on the next call
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    finally:
        os.close(fd)
    os.replace(tmp, target)
    _fsync_dir(target.parent)


def verify_seal(db_path: Path, seal_key: bytes) -> bool:
    """Check the seal; True if present and matching, False if absent.

    Raises ``DatabaseCorrupted`` if a seal is present but does not match the files (no
    ``path``: which of the files changed cannot be told) or is itself unreadable (``path``
    is the seal). The connection adds the database and its store to the message.
    """
    try:
        raw = seal_path(db_path).read_bytes()
    except FileNotFoundError:
        return False
    seal = seal_path(db_path)
    try:
        data = json.loads(raw)
        version, expected = data["version"], str(data["mac"])
    except (ValueError, KeyError, TypeError):
        raise DatabaseCorrupted(
            f"its integrity seal {seal.name} is unreadable", path=seal
        ) from None
    if version != SEAL_VERSION:
        raise DatabaseCorrupted(
            f"its integrity seal {seal.name} has unknown version {version!r}", path=seal
        )
    _, actual = compute_mac(db_path, seal_key)
    if not hmac.compare_digest(actual, expected):
        raise DatabaseCorrupted("integrity seal mismatch: the file was modified while closed")
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
