"""Argon2id: the passphrase-to-KEK step, the only deliberately slow part of unlocking.

The defaults are RFC 9106's "second recommended option" (low-memory Argon2id:
t=3, m=64 MiB, p=4), so an attacker who copies the key file pays that cost per guess.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Any

from argon2.low_level import Type, hash_secret_raw

from aico.errors import InvalidInput

__all__ = ["KEK_LENGTH", "MAX_MEMORY_COST_KIB", "KdfParams", "derive_kek"]

KEK_LENGTH = 32
"""Bytes of key-encryption key: an AES-256-GCM key."""

MAX_TIME_COST = 64
MAX_MEMORY_COST_KIB = 4 * 1024 * 1024
"""4 GiB: a cap, so a tampered key file cannot make unlocking exhaust memory."""
MAX_PARALLELISM = 64
MIN_SALT_LENGTH = 16


@dataclass(frozen=True, slots=True)
class KdfParams:
    """Argon2id cost parameters, recorded in the key file so they can change over time."""

    time_cost: int = 3
    memory_cost_kib: int = 65536
    parallelism: int = 4

    def __post_init__(self) -> None:
        for name, value, low, high in (
            ("time_cost", self.time_cost, 1, MAX_TIME_COST),
            ("parallelism", self.parallelism, 1, MAX_PARALLELISM),
            ("memory_cost_kib", self.memory_cost_kib, 8 * self.parallelism, MAX_MEMORY_COST_KIB),
        ):
            if type(value) is not int or not low <= value <= high:
                raise InvalidInput(f"KdfParams.{name} must be an integer in [{low}, {high}]")

    @classmethod
    def for_tests(cls) -> KdfParams:
        """The cheapest parameters Argon2 accepts (t=1, m=8 KiB, p=1): tests only, never data."""
        return cls(time_cost=1, memory_cost_kib=8, parallelism=1)

    def to_dict(self) -> dict[str, int]:
        """The JSON form stored in the key file (and bound into its AAD)."""
        return {
            "time_cost": self.time_cost,
            "memory_cost_kib": self.memory_cost_kib,
            "parallelism": self.parallelism,
        }

    @classmethod
    def from_dict(cls, data: Any) -> KdfParams:
        """Parse :meth:`to_dict` output; raises ``InvalidInput`` on anything else."""
        if not isinstance(data, dict):
            raise InvalidInput("KDF parameters must be an object")
        try:
            return cls(
                time_cost=data["time_cost"],
                memory_cost_kib=data["memory_cost_kib"],
                parallelism=data["parallelism"],
            )
        except KeyError as exc:
            raise InvalidInput(f"KDF parameter {exc.args[0]!r} is missing") from None


def derive_kek(passphrase: str, salt: bytes, params: KdfParams) -> bytes:
    """Stretch ``passphrase`` into a 256-bit key-encryption key with Argon2id.

    The passphrase is NFC-normalised first, so the same typed text unlocks on every OS
    (macOS input methods may produce decomposed accents).
    """
    if len(salt) < MIN_SALT_LENGTH:
        raise InvalidInput(f"salt must be at least {MIN_SALT_LENGTH} bytes")
    return hash_secret_raw(
        secret=unicodedata.normalize("NFC", passphrase).encode("utf-8"),
        salt=salt,
        time_cost=params.time_cost,
        memory_cost=params.memory_cost_kib,
        parallelism=params.parallelism,
        hash_len=KEK_LENGTH,
        type=Type.ID,
    )
