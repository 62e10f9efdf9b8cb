"""Plaintext layouts of sealed records: compact binary, because decoding is on the read path.

JSON would cost more to parse than AES-GCM costs to decrypt; a length-prefixed layout keeps
reading the 20 newest 1 KB messages well under 100 µs. Each layout starts with a version
byte so it can change without ambiguity. Only free-form user data (message metadata and
session values) is JSON.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any, Final

from aico.errors import InvalidInput, WorkingMemoryError

__all__ = [
    "SessionRecord",
    "decode_message",
    "decode_session",
    "decode_value",
    "encode_message",
    "encode_session",
    "encode_value",
    "value_ids",
]

_VERSION: Final = 1
# version; character lengths of id, user id, session id, role and conversation id (-1 = None),
# all decoded from one UTF-8 "head"; the head's byte length; the metadata JSON's byte length
# (0 = empty). The content is everything after them: two decodes per message, not six.
_MESSAGE: Final = struct.Struct(">B4HhHI")
# version, started_us, last_us, message count, then lengths of session id, user id,
# conversation id (-1 = None).
_SESSION: Final = struct.Struct(">BQQQ3i")
# A session value: version 2, byte lengths of the session id and the value key, then both and
# the JSON. The ids are kept (sealed) because the record key holds only their keyed hashes,
# and a master-key rotation must recompute those. Version 1 was the bare JSON, which never
# starts with this byte.
_VALUE_VERSION: Final = 2
_VALUE: Final = struct.Struct(">BHH")


def _json(value: Any, what: str) -> bytes:
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode(
            "utf-8"
        )
    except (TypeError, ValueError):
        raise InvalidInput(f"{what} must be JSON-serialisable (no NaN or infinity)") from None


def _malformed() -> WorkingMemoryError:
    # Only reachable if an authenticated record has a layout this code does not know.
    return WorkingMemoryError("a working-memory record has an unknown layout")


MessageFields = tuple[str, str, str, str, str | None, dict[str, Any], str]


def encode_message(
    message_id: str,
    user_id: str,
    session_id: str,
    role: str,
    conversation_id: str | None,
    metadata: dict[str, Any] | None,
    content: str,
) -> bytes:
    """Callers bound every id to 128 characters, so the head always fits its fields."""
    conv = conversation_id or ""
    head = "".join((message_id, user_id, session_id, role, conv)).encode("utf-8")
    meta = _json(metadata, "metadata") if metadata else b""
    header = _MESSAGE.pack(
        _VERSION,
        len(message_id),
        len(user_id),
        len(session_id),
        len(role),
        -1 if conversation_id is None else len(conv),
        len(head),
        len(meta),
    )
    return b"".join((header, head, meta, content.encode("utf-8")))


def decode_message(data: bytes) -> MessageFields:
    """``(id, user_id, session_id, role, conversation_id, metadata, content)``."""
    try:
        version, n_id, n_user, n_session, n_role, n_conv, n_head, n_meta = _MESSAGE.unpack_from(
            data
        )
        if version != _VERSION:
            raise _malformed()
        pos = _MESSAGE.size
        head = data[pos : pos + n_head].decode("utf-8")
        a = n_id
        b = a + n_user
        c = b + n_session
        d = c + n_role
        conversation_id = None if n_conv < 0 else head[d : d + n_conv]
        pos += n_head
        metadata: dict[str, Any] = {}
        if n_meta:
            metadata = json.loads(data[pos : pos + n_meta])
            pos += n_meta
        content = data[pos:].decode("utf-8")
    except (struct.error, UnicodeDecodeError, ValueError):
        raise _malformed() from None
    return head[:a], head[a:b], head[b:c], head[c:d], conversation_id, metadata, content


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """The LMDB mirror of a session's ``session_metadata`` row (sealed; ids never in keys).

    ``message_count`` continues the libSQL row's count when the record is (re)created, so
    the row can be brought up to date with an idempotent ``MAX`` (see ``_metadata``).
    """

    session_id: str
    user_id: str
    conversation_id: str | None
    started_us: int
    last_us: int
    message_count: int


def encode_session(record: SessionRecord) -> bytes:
    sid = record.session_id.encode("utf-8")
    uid = record.user_id.encode("utf-8")
    conv = b"" if record.conversation_id is None else record.conversation_id.encode("utf-8")
    header = _SESSION.pack(
        _VERSION,
        record.started_us,
        record.last_us,
        record.message_count,
        len(sid),
        len(uid),
        -1 if record.conversation_id is None else len(conv),
    )
    return b"".join((header, sid, uid, conv))


def decode_session(data: bytes) -> SessionRecord:
    try:
        version, started, last, count, n_sid, n_uid, n_conv = _SESSION.unpack_from(data)
        if version != _VERSION:
            raise _malformed()
        pos = _SESSION.size
        sid = data[pos : pos + n_sid].decode("utf-8")
        pos += n_sid
        uid = data[pos : pos + n_uid].decode("utf-8")
        pos += n_uid
        conv = None if n_conv < 0 else data[pos : pos + n_conv].decode("utf-8")
    except (struct.error, UnicodeDecodeError):
        raise _malformed() from None
    return SessionRecord(sid, uid, conv, started, last, count)


def encode_value(session_id: str, key: str, value: Any) -> bytes:
    """Callers bound the session id and key to 128 and 512 characters: they fit ``H``."""
    sid = session_id.encode("utf-8")
    name = key.encode("utf-8")
    body = _json(value, "a session value")
    return b"".join((_VALUE.pack(_VALUE_VERSION, len(sid), len(name)), sid, name, body))


def _split_value(data: bytes) -> tuple[tuple[str, str] | None, bytes]:
    if data[:1] != bytes([_VALUE_VERSION]):
        return None, data  # version 1: JSON only
    try:
        _, n_sid, n_key = _VALUE.unpack_from(data)
        pos = _VALUE.size
        sid = data[pos : pos + n_sid].decode("utf-8")
        key = data[pos + n_sid : pos + n_sid + n_key].decode("utf-8")
    except (struct.error, UnicodeDecodeError):
        raise _malformed() from None
    return (sid, key), data[pos + n_sid + n_key :]


def decode_value(data: bytes) -> Any:
    try:
        return json.loads(_split_value(data)[1])
    except ValueError:
        raise _malformed() from None


def value_ids(data: bytes) -> tuple[str, str] | None:
    """``(session id, value key)`` of a value record; None for a version-1 record."""
    return _split_value(data)[0]
