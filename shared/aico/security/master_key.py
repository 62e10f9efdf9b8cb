"""The master key and the purposes its subkeys are derived for.

The master key is 32 random bytes that never change when the passphrase does; every
store key is ``HKDF-SHA256(master, info = "aico/v1/" + purpose)``, so one unlock yields
independent keys per database and per use, and no key is ever reused across purposes.
"""

from __future__ import annotations

import hmac
import re
import secrets
from typing import ClassVar, Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from aico.errors import InvalidInput

__all__ = ["MASTER_KEY_LENGTH", "MasterKey", "Purpose"]

MASTER_KEY_LENGTH: Final = 32
_SUBKEY_INFO_PREFIX: Final = b"aico/v1/"
# Outside the "aico/v1/" namespace, so no purpose string can ever derive the fingerprint.
_KEY_ID_INFO: Final = b"aico/key-id"
_KEY_ID_HEX_CHARS: Final = 16
_MAX_SUBKEY_LENGTH: Final = 255 * 32  # RFC 5869 limit for SHA-256

_NAME_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+-]{0,127}")


def _hkdf(key: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(key)


class Purpose:
    """Builds and checks subkey purposes.

    Rule: a purpose is one or more *names* joined by ``/``; a name is 1-128 characters
    from ``A-Z a-z 0-9 . _ : @ + -`` and starts with a letter or digit. Since a name can
    never contain ``/``, ``Purpose.libsql("a/b")`` is refused instead of silently
    colliding with another purpose.
    """

    LMDB_VALUES: ClassVar[str] = "lmdb/values"
    LMDB_KEY_HASH: ClassVar[str] = "lmdb/key-hash"
    VECTOR_ROTATION: ClassVar[str] = "vector/rotation"

    @staticmethod
    def name(value: str, *, what: str = "name") -> str:
        """Return ``value`` if it is a valid purpose name, else raise ``InvalidInput``."""
        if not isinstance(value, str) or _NAME_RE.fullmatch(value) is None:
            raise InvalidInput(
                f"{what} must be 1-128 characters of A-Z a-z 0-9 . _ : @ + - "
                "starting with a letter or digit"
            )
        return value

    @staticmethod
    def validate(purpose: str) -> str:
        """Return ``purpose`` if every ``/``-separated part is a valid name."""
        if not isinstance(purpose, str) or not purpose:
            raise InvalidInput("purpose must be a non-empty string")
        for part in purpose.split("/"):
            Purpose.name(part, what="each part of a purpose")
        return purpose

    @staticmethod
    def libsql(db_name: str) -> str:
        """The page-encryption key of one libSQL database."""
        return "libsql/" + Purpose.name(db_name, what="database name")

    @staticmethod
    def seal(db_name: str) -> str:
        """The HMAC seal key of one libSQL database."""
        return "seal/" + Purpose.name(db_name, what="database name")

    @staticmethod
    def user(user_id: str) -> str:
        """Key material of one user, e.g. to wrap that user's own data keys."""
        return "user/" + Purpose.name(user_id, what="user id")


class MasterKey:
    """256 random bits that every other key is derived from. Never printed, never logged."""

    __slots__ = ("_key", "_key_id")

    _key: bytes
    _key_id: str

    def __init__(self, key: bytes | bytearray | memoryview) -> None:
        if not isinstance(key, bytes | bytearray | memoryview):
            raise InvalidInput("a master key must be bytes")
        raw = bytes(key)
        if len(raw) != MASTER_KEY_LENGTH:
            raise InvalidInput(f"a master key must be exactly {MASTER_KEY_LENGTH} bytes")
        object.__setattr__(self, "_key", raw)
        fingerprint = _hkdf(raw, _KEY_ID_INFO, _KEY_ID_HEX_CHARS // 2).hex()
        object.__setattr__(self, "_key_id", fingerprint)

    @classmethod
    def generate(cls) -> MasterKey:
        """A fresh key from the OS CSPRNG."""
        return cls(secrets.token_bytes(MASTER_KEY_LENGTH))

    @classmethod
    def from_bytes(cls, key: bytes | bytearray | memoryview) -> MasterKey:
        """Wrap existing key bytes (e.g. just unwrapped); raises ``InvalidInput`` on bad length."""
        return cls(key)

    @property
    def key_id(self) -> str:
        """A short, non-secret fingerprint: tells keys apart without revealing them."""
        return self._key_id

    def subkey(self, purpose: str, length: int = 32) -> bytes:
        """Derive the key for ``purpose`` (see :class:`Purpose`); deterministic per master key."""
        Purpose.validate(purpose)
        if type(length) is not int or not 1 <= length <= _MAX_SUBKEY_LENGTH:
            raise InvalidInput(f"subkey length must be an integer in [1, {_MAX_SUBKEY_LENGTH}]")
        return _hkdf(self._key, _SUBKEY_INFO_PREFIX + purpose.encode("ascii"), length)

    def expose_bytes(self) -> bytes:
        """The raw key. Only for wrapping it or handing it to the OS keyring."""
        return self._key

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("MasterKey is immutable")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MasterKey):
            return NotImplemented
        return hmac.compare_digest(self._key, other._key)

    def __hash__(self) -> int:
        return hash(self._key_id)

    def __repr__(self) -> str:
        return f"MasterKey(key_id={self._key_id!r})"

    __str__ = __repr__

    def __copy__(self) -> MasterKey:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> MasterKey:
        return self

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("MasterKey cannot be pickled: it would write the key in the clear")
