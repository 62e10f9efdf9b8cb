"""Re-seal every working-memory record under new keys, in one LMDB write transaction.

Why one transaction: LMDB commits atomically, so a crash (or a kill) at any moment leaves
either the old records with the old canary or the new records with the new canary, never a
mix that neither key opens. The cost is that the whole cache is held in memory and written
once more (copy-on-write: the map briefly needs room for both copies); working memory is a
24-hour cache, so that is small.

What is rewritten: every record key that holds a keyed hash (messages, values, sessions,
by-user) is recomputed from the ids inside the sealed record, every value is sealed again
under the new value key with its expiry unchanged, the expiry index is rebuilt from the new
keys, and the canary proves the new keys afterwards. Records the old key cannot open are
already unreadable; they are dropped and counted. So are version-1 session values, which do
not carry their key name (see ``_codec``) and so cannot be re-addressed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from aico.ai.memory.working._codec import decode_message, decode_session, value_ids
from aico.ai.memory.working._env import (
    CANARY,
    DB_BY_USER,
    DB_EXPIRY,
    DB_MESSAGES,
    DB_META,
    DB_SESSIONS,
    DB_VALUES,
)
from aico.ai.memory.working._keys import (
    TAG_MESSAGE,
    TAG_SESSION,
    TAG_VALUE,
    KeyHasher,
    expiry_key,
    message_key,
    split_message_key,
)
from aico.ai.memory.working._seal import NEVER, Sealer, expires_of
from aico.errors import IntegrityError, WorkingMemoryError

__all__ = ["ResealReport", "reseal_records"]

log = logging.getLogger(__name__)

_M: Final = DB_MESSAGES
_V: Final = DB_VALUES
_S: Final = DB_SESSIONS
_U: Final = DB_BY_USER
_X: Final = DB_EXPIRY
_META: Final = DB_META
_CANARY: Final = CANARY


@dataclass(frozen=True)
class ResealReport:
    """What a re-seal did; ``already_current`` means the store was under the new key already."""

    messages: int = 0
    values: int = 0
    sessions: int = 0
    dropped_unreadable: int = 0
    dropped_legacy_values: int = 0
    already_current: bool = False

    def as_dict(self) -> dict[str, int]:
        return {
            "messages": self.messages,
            "values": self.values,
            "sessions": self.sessions,
            "dropped_unreadable": self.dropped_unreadable,
            "dropped_legacy_values": self.dropped_legacy_values,
            "already_current": int(self.already_current),
        }


def reseal_records(
    txn: Any, dbs: Mapping[bytes, Any], old: Sealer, new: Sealer, hasher: KeyHasher
) -> ResealReport:
    """Rewrite every record of the environment under ``new`` / ``hasher``.

    Runs inside one write transaction and only reads from it before writing, so the
    caller's retry on a full map (which aborts and re-runs it) is safe.
    """
    unreadable = legacy = 0
    # (db name, new key, expiry tag, expires_us, plaintext)
    out: list[tuple[bytes, bytes, bytes, int, bytes]] = []
    users: list[tuple[str, str]] = []

    def opened(db: bytes) -> list[tuple[bytes, int, bytes]]:
        nonlocal unreadable
        found: list[tuple[bytes, int, bytes]] = []
        for key, sealed in txn.cursor(db=dbs[db]).iternext():
            try:
                found.append((bytes(key), expires_of(sealed), old.open(db, key, sealed)))
            except IntegrityError:
                unreadable += 1
        return found

    counts = {_M: 0, _V: 0, _S: 0}
    for key, expires, plain in opened(_M):
        session_id = decode_message(plain)[2]
        _, created_us, seq = split_message_key(key)
        out.append(
            (
                _M,
                message_key(hasher.session(session_id), created_us, seq),
                TAG_MESSAGE,
                expires,
                plain,
            )
        )
        counts[_M] += 1
    for _key, expires, plain in opened(_V):
        ids = value_ids(plain)
        if ids is None:
            legacy += 1
            continue
        session_id, value_name = ids
        out.append(
            (
                _V,
                hasher.session(session_id) + hasher.value_key(value_name),
                TAG_VALUE,
                expires,
                plain,
            )
        )
        counts[_V] += 1
    for _key, expires, plain in opened(_S):
        record = decode_session(plain)
        out.append((_S, hasher.session(record.session_id), TAG_SESSION, expires, plain))
        users.append((record.user_id, record.session_id))
        counts[_S] += 1

    for name in (_M, _V, _S, _U, _X):
        txn.drop(dbs[name], delete=False)
    for db, key, tag, expires, plain in out:
        if not txn.put(key, new.seal(db, key, expires, plain), db=dbs[db], overwrite=False):
            raise WorkingMemoryError("working memory: two records map to one key under the new key")
        txn.put(expiry_key(expires, tag, key), b"", db=dbs[_X])
    for user_id, session_id in users:
        by_user = hasher.user(user_id) + hasher.session(session_id)
        txn.put(by_user, new.seal(_U, by_user, NEVER, session_id.encode("utf-8")), db=dbs[_U])
    canary = new.seal(_META, _CANARY, NEVER, hasher.check_token())
    txn.put(_CANARY, canary, db=dbs[_META])
    if unreadable or legacy:
        log.warning(
            "working memory: re-seal dropped %d unreadable records and %d version-1 values",
            unreadable,
            legacy,
        )
    return ResealReport(
        messages=counts[_M],
        values=counts[_V],
        sessions=counts[_S],
        dropped_unreadable=unreadable,
        dropped_legacy_values=legacy,
    )
