"""Record keys: keyed hashes of identifiers plus big-endian numbers, so nothing is readable.

Layout (all integers big-endian, so byte order is numeric order):

- message   ``H(session) ‖ created_us:8 ‖ seq:4`` — a session's messages sort by time and
  two messages in the same microsecond get consecutive ``seq`` values instead of colliding;
- value     ``H(session) ‖ H(value key)``;
- session   ``H(session)``;
- by-user   ``H(user) ‖ H(session)`` — lets ``delete_user`` find sessions without a scan;
- expiry    ``expires_us:8 ‖ tag:1 ‖ record key`` — the sweeper walks this index from the
  start and stops at the first key in the future, so it only ever reads expired keys.

``H`` is keyed BLAKE2b truncated to 16 bytes, with a different personalisation per kind of
identifier, so the same string used as a user id and as a session id hashes differently.
Without the key-hash subkey an attacker cannot even test a guessed id.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Final

__all__ = [
    "HASH_LEN",
    "MAX_SEQ",
    "MESSAGE_KEY_LEN",
    "TAG_MESSAGE",
    "TAG_SESSION",
    "TAG_VALUE",
    "KeyHasher",
    "expiry_key",
    "message_created_us",
    "message_key",
    "split_expiry_key",
    "split_message_key",
]

HASH_LEN: Final = 16
_TS_SEQ: Final = struct.Struct(">QI")
MESSAGE_KEY_LEN: Final = HASH_LEN + _TS_SEQ.size
MAX_SEQ: Final = 0xFFFFFFFF
_EXPIRY: Final = struct.Struct(">Q")

# Expiry-index tags. Sessions sort after their entries at the same instant, so one sweep
# pass removes a session's last entries before the session record itself.
TAG_MESSAGE: Final = b"\x01"
TAG_VALUE: Final = b"\x02"
TAG_SESSION: Final = b"\x03"

_PERSON_SESSION: Final = b"aico-wm-session"
_PERSON_USER: Final = b"aico-wm-user"
_PERSON_VALUE: Final = b"aico-wm-value"
_PERSON_CHECK: Final = b"aico-wm-check"
_CACHE_LIMIT: Final = 4096


class KeyHasher:
    """Keyed hashes of ids, memoised: the same session is hashed on every call."""

    __slots__ = ("_cache", "_key")

    def __init__(self, key: bytes) -> None:
        self._key = bytes(key)
        self._cache: dict[tuple[bytes, str], bytes] = {}

    def _hash(self, person: bytes, text: str) -> bytes:
        found = self._cache.get((person, text))
        if found is not None:
            return found
        digest = hashlib.blake2b(
            text.encode("utf-8"), key=self._key, digest_size=HASH_LEN, person=person
        ).digest()
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[(person, text)] = digest
        return digest

    def session(self, session_id: str) -> bytes:
        return self._hash(_PERSON_SESSION, session_id)

    def user(self, user_id: str) -> bytes:
        return self._hash(_PERSON_USER, user_id)

    def value_key(self, key: str) -> bytes:
        return self._hash(_PERSON_VALUE, key)

    def check_token(self) -> bytes:
        """A fixed token only the right key-hash key produces (kept in the sealed canary)."""
        return self._hash(_PERSON_CHECK, "canary")


def message_key(session_hash: bytes, created_us: int, seq: int) -> bytes:
    return session_hash + _TS_SEQ.pack(created_us, seq)


def message_created_us(key: bytes) -> int:
    """The creation time (µs) of a message key, without unpacking the rest."""
    return int.from_bytes(key[HASH_LEN : HASH_LEN + 8], "big")


def split_message_key(key: bytes) -> tuple[bytes, int, int]:
    """``(session hash, created_us, seq)`` of a message key."""
    created_us, seq = _TS_SEQ.unpack_from(key, HASH_LEN)
    return key[:HASH_LEN], created_us, seq


def expiry_key(expires_us: int, tag: bytes, record_key: bytes) -> bytes:
    return _EXPIRY.pack(expires_us) + tag + record_key


def split_expiry_key(key: bytes) -> tuple[int, bytes, bytes]:
    """``(expires_us, tag, record key)`` of an expiry-index key."""
    return _EXPIRY.unpack_from(key)[0], key[8:9], key[9:]
