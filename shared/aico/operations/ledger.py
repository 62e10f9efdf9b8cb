"""The forget ledger across a restore: whoever was forgotten after a backup stays forgotten.

``forget_ledger`` (conversations database, written by ``aico.ai.memory.forget``) records
each forget by grain and ids only; once the forget is complete its ids are replaced by
keyed hashes, ``HMAC-SHA256(master.subkey("forget/ledger"), id)``, so the ledger can
recognise an id without keeping it.

A restore reads the ledger of the data dir it replaces (the *current* one) and, before the
swap, matches every row against the ids the restored data holds (users, conversations,
messages). A hash is tried under every key the restore knows: the current data dir's
master key and the backup's (rows closed before a master-key rotation are hashed under the
older key, which is the backup's when the backup predates the rotation). A pending row
carries its ids as they are. Every match is forgotten again in the restored data through
the ``MemoryManager``'s own ``forget``, so every store is cleaned as by the original
forget, which records a fresh row. Every row that matched nothing is copied into the
restored ledger, so a later restore of an even older backup applies it too.

What cannot be matched: a row hashed under a key that is neither of the two (the data dir
was rotated again after the forget, and the backup is older than both rotations). The
Forgetter derives its hash key from the master key; a key of its own, kept in the
conversations database (rekeyed with it, never rotated), would close that gap.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aico.ai.memory.forget import LEDGER_PURPOSE, ledger_hash
from aico.security import MasterKey

__all__ = [
    "LEDGER_PURPOSE",
    "Forget",
    "LedgerRow",
    "RestoredIds",
    "carry_over",
    "ledger_hash",
    "match_ledger",
    "read_ledger",
    "restored_ids",
]


@dataclass(frozen=True)
class LedgerRow:
    """One ``forget_ledger`` row: raw ids while pending, keyed hashes once completed."""

    grain: str
    user_id: str
    conversation_id: str | None
    message_id: str | None
    requested_at: float
    completed_at: float | None

    @property
    def pending(self) -> bool:
        return self.completed_at is None


@dataclass(frozen=True)
class Forget:
    """A forget to apply to restored data, with the restored (raw) ids."""

    grain: str
    user_id: str
    conversation_id: str | None = None
    message_id: str | None = None


@dataclass(frozen=True)
class RestoredIds:
    """The ids a restored data dir holds: users, and each conversation's and message's owner."""

    users: frozenset[str]
    conversations: Mapping[str, str]
    messages: Mapping[str, str]


def read_ledger(conn: Any) -> list[LedgerRow]:
    """Every row of the conversations database's ledger, oldest first."""
    rows = conn.fetch_all(
        "SELECT grain, user_id, conversation_id, message_id, requested_at, completed_at "
        "FROM forget_ledger ORDER BY id"
    )
    return [
        LedgerRow(
            str(r["grain"]),
            str(r["user_id"]),
            r["conversation_id"],
            r["message_id"],
            float(r["requested_at"]),
            None if r["completed_at"] is None else float(r["completed_at"]),
        )
        for r in rows
    ]


def restored_ids(core: Any, log: Any, *, messages: bool) -> RestoredIds:
    """The ids in a restored data dir's core and conversations databases.

    ``messages``: also every message's id (only needed when the ledger has message rows).
    """
    users = {str(r["user_id"]) for r in core.fetch_all("SELECT user_id FROM users")}
    users |= {
        str(r["user_id"]) for r in core.fetch_all("SELECT DISTINCT user_id FROM semantic_segments")
    }
    for table in ("conversations", "session_metadata", "messages"):
        users |= {
            str(r["user_id"])
            for r in log.fetch_all(
                f"SELECT DISTINCT user_id FROM {table} WHERE user_id IS NOT NULL"
            )
        }
    conversations = {
        str(r["id"]): str(r["user_id"])
        for r in log.fetch_all("SELECT id, user_id FROM conversations WHERE user_id IS NOT NULL")
    }
    found_messages: dict[str, str] = {}
    if messages:
        found_messages = {
            str(r["id"]): str(r["user_id"])
            for r in log.fetch_all("SELECT id, user_id FROM messages WHERE user_id IS NOT NULL")
        }
    return RestoredIds(frozenset(users), conversations, found_messages)


class _Hashes:
    """Lazily built ``hash -> id`` tables, one per key."""

    def __init__(self, ids: Iterable[str], keys: Mapping[str, bytes]) -> None:
        self._ids = list(ids)
        self._keys = keys
        self._tables: dict[str, dict[str, str]] = {}

    def lookup(self, digest: str) -> str | None:
        for key_id, key in self._keys.items():
            table = self._tables.get(key_id)
            if table is None:
                table = {ledger_hash(key, i): i for i in self._ids}
                self._tables[key_id] = table
            found = table.get(digest)
            if found is not None:
                return found
        return None


def match_ledger(
    rows: list[LedgerRow],
    restored: RestoredIds,
    *,
    keys: Iterable[MasterKey],
) -> tuple[list[Forget], list[LedgerRow]]:
    """Split ``rows`` into forgets to apply to the restored data and rows that matched none.

    ``keys``: the master keys a closed row's hashes are tried under (the current data
    dir's and the backup's).
    """
    hash_keys = {key.key_id: key.subkey(LEDGER_PURPOSE) for key in keys}
    users = _Hashes(restored.users, hash_keys)
    conversations = _Hashes(restored.conversations, hash_keys)
    messages = _Hashes(restored.messages, hash_keys)
    forgets: list[Forget] = []
    unmatched: list[LedgerRow] = []
    for row in rows:
        forget = _match(row, restored, users, conversations, messages)
        if forget is None:
            unmatched.append(row)
        elif forget not in forgets:
            forgets.append(forget)
    # Whole users first: their forget covers their conversations and messages.
    forgets.sort(key=lambda f: {"user": 0, "conversation": 1, "message": 2}[f.grain])
    return forgets, unmatched


def _match(
    row: LedgerRow,
    restored: RestoredIds,
    users: _Hashes,
    conversations: _Hashes,
    messages: _Hashes,
) -> Forget | None:
    if row.pending:  # raw ids
        if row.grain == "user" and row.user_id in restored.users:
            return Forget("user", row.user_id)
        conversation, message = row.conversation_id, row.message_id
        if row.grain == "conversation" and conversation is not None:
            owner = restored.conversations.get(conversation)
            if owner is None:
                return None
            return Forget("conversation", owner, conversation_id=conversation)
        if row.grain == "message" and message is not None:
            owner = restored.messages.get(message)
            if owner is None:
                return None
            return Forget("message", owner, message_id=message)
        return None
    if row.grain == "user":
        user = users.lookup(row.user_id)
        return None if user is None else Forget("user", user)
    if row.grain == "conversation" and row.conversation_id is not None:
        found = conversations.lookup(row.conversation_id)
        if found is None:
            return None
        return Forget("conversation", restored.conversations[found], conversation_id=found)
    if row.grain == "message" and row.message_id is not None:
        found = messages.lookup(row.message_id)
        if found is None:
            return None
        return Forget("message", restored.messages[found], message_id=found)
    return None


def carry_over(conn: Any, rows: list[LedgerRow], *, restored_key: MasterKey, now: float) -> int:
    """Copy unmatched ``rows`` into the restored ledger as closed rows; returns how many.

    Closed rows keep their hashes; a pending row's raw ids are hashed under
    ``restored_key`` (as the restored data dir's Forgetter would). Rows the restored ledger
    already holds are skipped.
    """
    hash_key = restored_key.subkey(LEDGER_PURPOSE)

    def convert(value: str | None, pending: bool) -> str | None:
        if value is None or not pending:
            return value
        return ledger_hash(hash_key, value)

    existing = {
        (r["grain"], r["user_id"], r["conversation_id"], r["message_id"])
        for r in conn.fetch_all(
            "SELECT grain, user_id, conversation_id, message_id FROM forget_ledger "
            "WHERE completed_at IS NOT NULL"
        )
    }
    added = 0
    with conn.transaction():
        for row in rows:
            values = (
                row.grain,
                convert(row.user_id, row.pending),
                convert(row.conversation_id, row.pending),
                convert(row.message_id, row.pending),
            )
            if values in existing:
                continue
            existing.add(values)
            conn.execute(
                "INSERT INTO forget_ledger (grain, user_id, conversation_id, message_id, "
                "session_ids, requested_at, completed_at) VALUES (?, ?, ?, ?, '[]', ?, ?)",
                (*values, row.requested_at, row.completed_at or now),
            )
            added += 1
    return added
