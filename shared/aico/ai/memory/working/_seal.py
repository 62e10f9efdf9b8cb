"""AES-GCM sealing of every LMDB value, bound to the database and key it is stored under.

A sealed value is ``format:1 ‖ expires_us:8 ‖ nonce:12 ‖ ciphertext+tag``. The header stays
in the clear so the sweeper and every read can test expiry before decrypting anything, but
it is part of the associated data together with the database name and the full record key:
moving a value to another key, or pushing its expiry into the future, makes it fail to open.

Nonces are 96 random bits per seal. The usual bound for random GCM nonces (2^32 seals per
key) is far above what a 24-hour cache of one person's conversations writes.
"""

from __future__ import annotations

import os
import struct
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from aico.errors import IntegrityError, InvalidInput

__all__ = ["FORMAT", "HEADER_LEN", "NEVER", "Sealer", "expires_of"]

FORMAT: Final = 1
_HEADER: Final = struct.Struct(">BQ")
HEADER_LEN: Final = _HEADER.size
NEVER: Final = 2**64 - 1
_NONCE_LEN: Final = 12
_TAG_LEN: Final = 16
_BODY: Final = HEADER_LEN + _NONCE_LEN
_MIN_LEN: Final = _BODY + _TAG_LEN
_AAD_PREFIX: Final = b"aico/working-memory/v1\x00"


def _failure(db: bytes, record_key: bytes) -> IntegrityError:
    # Names the database and the (keyed-hash) record key only: nothing a user wrote.
    return IntegrityError(
        f"working-memory entry failed authentication (db={db.decode()}, key={record_key.hex()})"
    )


class Sealer:
    """Seals and opens values with one 32-byte subkey (``Purpose.LMDB_VALUES``)."""

    __slots__ = ("_aead", "_prefixes")

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, bytes) or len(key) != 32:
            raise InvalidInput("the working-memory value key must be 32 bytes")
        self._aead = AESGCM(key)
        self._prefixes: dict[bytes, bytes] = {}

    def _aad(self, db: bytes, record_key: bytes, header: bytes) -> bytes:
        prefix = self._prefixes.get(db)
        if prefix is None:
            prefix = self._prefixes.setdefault(db, _AAD_PREFIX + db + b"\x00")
        return prefix + record_key + header

    def seal(self, db: bytes, record_key: bytes, expires_us: int, plaintext: bytes) -> bytes:
        header = _HEADER.pack(FORMAT, expires_us)
        nonce = os.urandom(_NONCE_LEN)
        aad = self._aad(db, record_key, header)
        return header + nonce + self._aead.encrypt(nonce, plaintext, aad)

    def open(self, db: bytes, record_key: bytes, sealed: bytes) -> bytes:
        """The plaintext, or ``IntegrityError`` if anything about the record was altered."""
        if len(sealed) < _MIN_LEN or sealed[0] != FORMAT:
            raise _failure(db, record_key)
        aad = self._aad(db, record_key, sealed[:HEADER_LEN])
        try:
            return self._aead.decrypt(sealed[HEADER_LEN:_BODY], sealed[_BODY:], aad)
        except InvalidTag:
            raise _failure(db, record_key) from None


def expires_of(sealed: bytes) -> int:
    """The expiry (µs) from a sealed value's header; 0 (already expired) if malformed.

    Unauthenticated on purpose: it only decides visibility and sweeping. A forged header
    cannot make an entry readable, because opening it checks the header as associated data.
    """
    if len(sealed) < HEADER_LEN or sealed[0] != FORMAT:
        return 0
    return int.from_bytes(sealed[1:HEADER_LEN], "big")
