"""The two secrets the semantic store needs, and what it derives from them.

- ``rotation_key`` (``Purpose.VECTOR_ROTATION``) seeds the secret orthogonal matrix that
  every vector is multiplied by before it reaches Chroma (see ``rotation``).
- ``id_key`` (``SEMANTIC_ID_PURPOSE``) keys the HMACs that replace user ids, conversation ids
  and role names in Chroma's metadata, so Chroma can filter on them without ever holding them.
  Each kind of id has its own domain-separation prefix, so a user and a conversation with the
  same id never share a tag.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field

from aico.errors import InvalidInput
from aico.security import MasterKey, Purpose

__all__ = ["SEMANTIC_ID_PURPOSE", "SemanticKeys"]

#: Subkey purpose of the keyed hashes in Chroma metadata (not shared with LMDB's key hash).
SEMANTIC_ID_PURPOSE = Purpose.validate("semantic/id-hash")
_KEY_BYTES = 32
_TAG_HEX = 32  # 128 bits: no collisions among any realistic number of users/conversations
_ROLE_HEX = 16


@dataclass(frozen=True)
class SemanticKeys:
    """Subkeys of the semantic store. ``repr`` never shows them."""

    rotation_key: bytes = field(repr=False)
    id_key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        for name in ("rotation_key", "id_key"):
            value = getattr(self, name)
            if not isinstance(value, bytes | bytearray) or len(value) != _KEY_BYTES:
                raise InvalidInput(f"{name} must be {_KEY_BYTES} raw bytes")
            object.__setattr__(self, name, bytes(value))

    @classmethod
    def from_master_key(cls, master: MasterKey) -> SemanticKeys:
        return cls(
            rotation_key=master.subkey(Purpose.VECTOR_ROTATION),
            id_key=master.subkey(SEMANTIC_ID_PURPOSE),
        )

    def _tag(self, kind: bytes, value: str, length: int) -> str:
        message = kind + b"\x00" + value.encode("utf-8", "surrogatepass")
        return hmac.new(self.id_key, message, hashlib.sha256).hexdigest()[:length]

    def user_tag(self, user_id: str) -> str:
        """Opaque stand-in for a user id in Chroma metadata."""
        return self._tag(b"user", user_id, _TAG_HEX)

    def conversation_tag(self, conversation_id: str) -> str:
        """Opaque stand-in for a conversation id in Chroma metadata."""
        return self._tag(b"conversation", conversation_id, _TAG_HEX)

    def role_field(self, role: str) -> str:
        """Opaque metadata *key* whose presence (value True) says the segment has ``role``."""
        return "r" + self._tag(b"role", role, _ROLE_HEX)
