"""The key file: the only place the master key exists at rest, wrapped under the passphrase.

``keys/master.key`` is a small JSON document::

    {"format": 1,
     "kdf": {"name": "argon2id", "time_cost": 3, "memory_cost_kib": 65536,
             "parallelism": 4, "salt": "<b64, 16 bytes>"},
     "key": {"alg": "aes-256-gcm", "key_id": "<hex>", "nonce": "<b64>", "wrapped": "<b64>"},
     "pending": null | {same shape as "key"},
     "created_at": "...", "updated_at": "..."}

Each wrap's AES-GCM associated data binds the format version, the KDF name, parameters and
salt, the slot (``key``/``pending``) and the key id, so editing any of them makes the unwrap
fail exactly like a wrong passphrase does. That failure is the one opaque "wrong passphrase"
signal. Every change goes through :func:`aico.security._atomic.atomic_write`, so a crash
leaves the old or the new file, never neither. Writers serialise on an advisory lock
(``master.key.lock`` next to the file); readers need none.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import re
import secrets
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from aico.errors import InvalidInput, KeyFileError, WrongPassphrase
from aico.layout import DataDir
from aico.security import _atomic
from aico.security.kdf import KdfParams, derive_kek
from aico.security.master_key import MASTER_KEY_LENGTH, MasterKey

__all__ = ["FORMAT_VERSION", "KeyFile"]

FORMAT_VERSION: Final = 1
KDF_NAME: Final = "argon2id"
WRAP_ALG: Final = "aes-256-gcm"
SALT_LENGTH: Final = 16
NONCE_LENGTH: Final = 12
_WRAPPED_LENGTH: Final = MASTER_KEY_LENGTH + 16  # key + GCM tag
_MAX_FILE_BYTES: Final = 64 * 1024
_KEY_ID_RE: Final = re.compile(r"[0-9a-f]{16}")
_SLOT_CURRENT: Final = "key"
_SLOT_PENDING: Final = "pending"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclass(frozen=True, slots=True)
class _Wrapped:
    """One AES-GCM wrapped master key and its (non-secret) fingerprint."""

    key_id: str
    nonce: bytes = field(repr=False)
    wrapped: bytes = field(repr=False)

    def to_dict(self) -> dict[str, str]:
        return {
            "alg": WRAP_ALG,
            "key_id": self.key_id,
            "nonce": _b64(self.nonce),
            "wrapped": _b64(self.wrapped),
        }


class _Parser:
    """Turns the JSON document into checked values; every complaint names the path."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, what: str) -> KeyFileError:
        return KeyFileError(f"key file {self.path} is malformed: {what}")

    def obj(self, value: Any, what: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(f"{what} must be a JSON object")
        return value

    def str_(self, data: dict[str, Any], key: str, where: str) -> str:
        value = data.get(key)
        if not isinstance(value, str):
            raise self.fail(f"{where}.{key} must be a string")
        return value

    def b64(self, data: dict[str, Any], key: str, where: str, length: int) -> bytes:
        try:
            raw = base64.b64decode(self.str_(data, key, where), validate=True)
        except binascii.Error:
            raise self.fail(f"{where}.{key} is not valid base64") from None
        if len(raw) != length:
            raise self.fail(f"{where}.{key} must decode to {length} bytes")
        return raw

    def wrapped(self, value: Any, where: str) -> _Wrapped:
        data = self.obj(value, where)
        if data.get("alg") != WRAP_ALG:
            raise self.fail(f"{where}.alg must be {WRAP_ALG!r}")
        key_id = self.str_(data, "key_id", where)
        if _KEY_ID_RE.fullmatch(key_id) is None:
            raise self.fail(f"{where}.key_id must be 16 lowercase hex digits")
        return _Wrapped(
            key_id=key_id,
            nonce=self.b64(data, "nonce", where, NONCE_LENGTH),
            wrapped=self.b64(data, "wrapped", where, _WRAPPED_LENGTH),
        )


@dataclass(frozen=True, slots=True)
class KeyFile:
    """A parsed key file: only non-secret fields, plus wrapped keys that need the passphrase.

    The classmethods are the operations (each reads, checks, and atomically rewrites the
    file); :meth:`load` alone gives the header, e.g. the key id, without any passphrase.
    """

    path: Path
    params: KdfParams
    salt: bytes = field(repr=False)
    current: _Wrapped
    pending: _Wrapped | None
    created_at: str
    updated_at: str
    format: int = FORMAT_VERSION

    # ----------------------------------------------------------------- non-secret view

    @property
    def key_id(self) -> str:
        """Fingerprint of the current master key."""
        return self.current.key_id

    @property
    def rotation_pending(self) -> bool:
        """True from :meth:`begin_rotation` until :meth:`finish_rotation`/:meth:`abort_rotation`."""
        return self.pending is not None

    @staticmethod
    def default_path(data_dir: str | os.PathLike[str]) -> Path:
        """``<data_dir>/keys/master.key`` (``DataDir(data_dir).key_file``)."""
        return DataDir(data_dir).key_file

    # ----------------------------------------------------------------- (de)serialisation

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> KeyFile:
        """Read and check the key file; raises ``KeyFileError`` naming what is wrong."""
        path = Path(path)
        try:
            with open(path, "rb") as fh:
                raw = fh.read(_MAX_FILE_BYTES + 1)
        except FileNotFoundError:
            raise KeyFileError(f"key file {path} does not exist") from None
        except OSError as exc:
            raise KeyFileError(f"key file {path} cannot be read: {exc.strerror}") from None
        return cls._parse(path, raw)

    @classmethod
    def _parse(cls, path: Path, raw: bytes) -> KeyFile:
        p = _Parser(path)
        if len(raw) > _MAX_FILE_BYTES:
            raise p.fail(f"larger than {_MAX_FILE_BYTES} bytes")
        try:
            doc = p.obj(json.loads(raw.decode("utf-8")), "the document")
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise p.fail("not valid UTF-8 JSON") from None
        version = doc.get("format")
        if type(version) is not int or version < 1:
            raise p.fail("format must be a positive integer")
        if version > FORMAT_VERSION:
            raise KeyFileError(
                f"key file {path} has format {version}, newer than this version of aico "
                f"understands ({FORMAT_VERSION}); upgrade aico"
            )
        kdf = p.obj(doc.get("kdf"), "kdf")
        if kdf.get("name") != KDF_NAME:
            raise p.fail(f"kdf.name must be {KDF_NAME!r}")
        try:
            params = KdfParams.from_dict(kdf)
        except InvalidInput as exc:
            raise p.fail(str(exc)) from None
        pending = doc.get(_SLOT_PENDING)
        return cls(
            path=path,
            format=version,
            params=params,
            salt=p.b64(kdf, "salt", "kdf", SALT_LENGTH),
            current=p.wrapped(doc.get(_SLOT_CURRENT), _SLOT_CURRENT),
            pending=None if pending is None else p.wrapped(pending, _SLOT_PENDING),
            created_at=p.str_(doc, "created_at", "the document"),
            updated_at=p.str_(doc, "updated_at", "the document"),
        )

    def to_json(self) -> bytes:
        """The file's bytes (no secrets in the clear)."""
        doc = {
            "format": self.format,
            "kdf": {"name": KDF_NAME, **self.params.to_dict(), "salt": _b64(self.salt)},
            _SLOT_CURRENT: self.current.to_dict(),
            _SLOT_PENDING: None if self.pending is None else self.pending.to_dict(),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }
        return (json.dumps(doc, indent=2) + "\n").encode("utf-8")

    # ----------------------------------------------------------------- crypto (no I/O)

    def _aad(self, slot: str, key_id: str) -> bytes:
        bound = {
            "format": self.format,
            "kdf": {"name": KDF_NAME, **self.params.to_dict(), "salt": _b64(self.salt)},
            "slot": slot,
            "alg": WRAP_ALG,
            "key_id": key_id,
        }
        canonical = json.dumps(bound, sort_keys=True, separators=(",", ":"))
        return b"aico-keyfile\x00" + canonical.encode("ascii")

    def _kek(self, passphrase: str) -> bytes:
        _check_passphrase(passphrase, allow_empty=True)
        return derive_kek(passphrase, self.salt, self.params)

    def _wrap(self, kek: bytes, slot: str, key: MasterKey) -> _Wrapped:
        nonce = secrets.token_bytes(NONCE_LENGTH)
        aad = self._aad(slot, key.key_id)
        return _Wrapped(key.key_id, nonce, AESGCM(kek).encrypt(nonce, key.expose_bytes(), aad))

    def _unwrap(self, kek: bytes, slot: str) -> MasterKey:
        wrapped = self.current if slot == _SLOT_CURRENT else self.pending
        if wrapped is None:
            raise KeyFileError(f"key file {self.path} has no pending master-key rotation")
        try:
            aad = self._aad(slot, wrapped.key_id)
            raw = AESGCM(kek).decrypt(wrapped.nonce, wrapped.wrapped, aad)
        except InvalidTag:
            raise WrongPassphrase("wrong passphrase") from None
        key = MasterKey.from_bytes(raw)
        if key.key_id != wrapped.key_id:  # authenticated, so only a buggy writer gets here
            raise KeyFileError(f"key file {self.path}: {slot}.key_id does not match its key")
        return key

    def _rewrapped(
        self,
        kek: bytes,
        current: MasterKey,
        pending: MasterKey | None,
        *,
        salt: bytes | None = None,
        params: KdfParams | None = None,
    ) -> KeyFile:
        """A new version of this file holding ``current``/``pending`` under ``kek``."""
        shell = replace(
            self,
            format=FORMAT_VERSION,
            salt=self.salt if salt is None else salt,
            params=self.params if params is None else params,
            updated_at=_now(),
        )
        return replace(
            shell,
            current=shell._wrap(kek, _SLOT_CURRENT, current),
            pending=None if pending is None else shell._wrap(kek, _SLOT_PENDING, pending),
        )

    # ----------------------------------------------------------------- operations

    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        passphrase: str,
        params: KdfParams | None = None,
    ) -> MasterKey:
        """Generate a master key and write it wrapped under ``passphrase``.

        Refuses to overwrite an existing key file (that would orphan every database).
        """
        path = Path(path)
        _check_passphrase(passphrase)
        params = KdfParams() if params is None else params
        _ensure_key_dir(path.parent)
        master = MasterKey.generate()
        now = _now()
        salt = secrets.token_bytes(SALT_LENGTH)
        placeholder = _Wrapped("", b"", b"")
        shell = cls(path, params, salt, placeholder, None, now, now)
        kf = shell._rewrapped(derive_kek(passphrase, salt, params), master, None)
        with _atomic.exclusive_lock(path):
            if os.path.lexists(path):
                raise KeyFileError(f"key file {path} already exists; refusing to overwrite it")
            try:
                _atomic.atomic_write(path, kf.to_json(), overwrite=False)
            except FileExistsError:
                raise KeyFileError(
                    f"key file {path} already exists; refusing to overwrite it"
                ) from None
            except OSError as exc:
                raise KeyFileError(f"key file {path} cannot be written: {exc.strerror}") from None
        return master

    @classmethod
    def unlock(cls, path: str | os.PathLike[str], passphrase: str) -> MasterKey:
        """Unwrap the current master key; ``WrongPassphrase`` if it does not unwrap."""
        kf = cls.load(path)
        return kf._unwrap(kf._kek(passphrase), _SLOT_CURRENT)

    @classmethod
    def change_passphrase(
        cls,
        path: str | os.PathLike[str],
        old: str,
        new: str,
        params: KdfParams | None = None,
    ) -> None:
        """Re-wrap the master key (and any pending one) under ``new``: O(1), no data touched.

        A fresh salt is drawn; ``params`` optionally upgrades the Argon2 cost.
        """
        _check_passphrase(new)
        with _atomic.exclusive_lock(Path(path)):
            kf = cls.load(path)
            old_kek = kf._kek(old)
            current = kf._unwrap(old_kek, _SLOT_CURRENT)
            pending = kf._unwrap(old_kek, _SLOT_PENDING) if kf.pending is not None else None
            salt = secrets.token_bytes(SALT_LENGTH)
            params = kf.params if params is None else params
            new_kek = derive_kek(new, salt, params)
            kf._rewrapped(new_kek, current, pending, salt=salt, params=params)._write()

    @classmethod
    def begin_rotation(
        cls, path: str | os.PathLike[str], passphrase: str
    ) -> tuple[MasterKey, MasterKey]:
        """Record a new master key as *pending* next to the current one; return (old, new).

        Idempotent: if a rotation is already pending, its key is returned unchanged, so an
        interrupted rotation resumes with the same new key.
        """
        with _atomic.exclusive_lock(Path(path)):
            kf = cls.load(path)
            kek = kf._kek(passphrase)
            old = kf._unwrap(kek, _SLOT_CURRENT)
            if kf.pending is not None:
                return old, kf._unwrap(kek, _SLOT_PENDING)
            new = MasterKey.generate()
            kf._rewrapped(kek, old, new)._write()
            return old, new

    @classmethod
    def pending_rotation(cls, path: str | os.PathLike[str], passphrase: str) -> MasterKey | None:
        """The pending new master key, or ``None`` when no rotation is under way."""
        kf = cls.load(path)
        kek = kf._kek(passphrase)
        kf._unwrap(kek, _SLOT_CURRENT)  # the passphrase is checked even when nothing is pending
        return None if kf.pending is None else kf._unwrap(kek, _SLOT_PENDING)

    @classmethod
    def finish_rotation(cls, path: str | os.PathLike[str], passphrase: str) -> MasterKey:
        """Promote the pending key to current (atomically) and return it.

        Call only once every store has been re-encrypted with the new key. Raises
        ``KeyFileError`` when no rotation is pending.
        """
        with _atomic.exclusive_lock(Path(path)):
            kf = cls.load(path)
            kek = kf._kek(passphrase)
            kf._unwrap(kek, _SLOT_CURRENT)
            new = kf._unwrap(kek, _SLOT_PENDING)
            kf._rewrapped(kek, new, None)._write()
            return new

    @classmethod
    def abort_rotation(cls, path: str | os.PathLike[str], passphrase: str) -> None:
        """Drop the pending key; a no-op when none is pending.

        Only safe while no store holds data encrypted with the pending key.
        """
        with _atomic.exclusive_lock(Path(path)):
            kf = cls.load(path)
            kek = kf._kek(passphrase)
            current = kf._unwrap(kek, _SLOT_CURRENT)
            if kf.pending is not None:
                kf._rewrapped(kek, current, None)._write()

    def _write(self) -> None:
        try:
            _atomic.atomic_write(self.path, self.to_json())
        except OSError as exc:
            raise KeyFileError(f"key file {self.path} cannot be written: {exc.strerror}") from None


def _check_passphrase(passphrase: object, *, allow_empty: bool = False) -> None:
    if not isinstance(passphrase, str):
        raise InvalidInput("a passphrase must be a str")
    if not allow_empty and not passphrase:
        raise InvalidInput("a passphrase must not be empty")


def _ensure_key_dir(directory: Path) -> None:
    """Create the keys directory owner-only (an existing directory is left as the user set it)."""
    if directory.is_dir():
        return
    try:
        directory.mkdir(mode=0o700, parents=True)
        with contextlib.suppress(NotImplementedError):
            os.chmod(directory, 0o700)  # mkdir's mode is filtered by the umask
    except FileExistsError:
        return
    except OSError as exc:
        raise KeyFileError(f"key directory {directory} cannot be created: {exc.strerror}") from None
