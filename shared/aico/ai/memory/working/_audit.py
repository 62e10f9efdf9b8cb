"""Damage in the values: every record opened after an unclean close, and failures remembered.

Why: the child walk (``_walk``) proves LMDB's structure, not the bytes of the values, and
without a clean-close seal nothing else does. A flipped byte inside a value (or a record
key, which is part of the value's associated data) would otherwise surface later as an
``IntegrityError`` from whatever read met it first. Opening every record turns that into one
``WorkingMemoryCorrupted`` at open, which the coordinator answers by rebuilding the cache
from the log. Only the first opener after an unclean close pays for it (measured on this
project's 2-core VM: 10,200 records of 10,000 messages in 22 ms).

While open, a record that fails authentication (the file damaged under a running process) is
reported by ``WatchedSealer``: the store marks the environment damaged, so that the last
closer does not seal the damage in, and the next opener checks the file in full.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

from aico.ai.memory.working._check import damaged
from aico.ai.memory.working._env import DB_BY_USER, DB_MESSAGES, DB_SESSIONS, DB_VALUES
from aico.ai.memory.working._seal import Sealer
from aico.errors import IntegrityError

__all__ = ["WatchedSealer", "audit_records"]

# Every database whose values are sealed (``meta`` holds the canary, checked on its own;
# ``expiry`` holds empty values).
_SEALED: Final = (DB_MESSAGES, DB_VALUES, DB_SESSIONS, DB_BY_USER)


def audit_records(txn: Any, dbs: Mapping[bytes, Any], sealer: Sealer, directory: Path) -> int:
    """Open every sealed record in ``txn``; the number opened, or ``WorkingMemoryCorrupted``."""
    opened = 0
    for name in _SEALED:
        for key, value in txn.cursor(db=dbs[name]):
            try:
                sealer.open(name, key, value)
            except IntegrityError:
                raise damaged(
                    directory, f"a record in {name.decode()} failed authentication"
                ) from None
            opened += 1
    return opened


class WatchedSealer(Sealer):
    """A ``Sealer`` that calls ``on_failure`` before an ``IntegrityError`` leaves ``open``."""

    __slots__ = ("_on_failure",)

    def __init__(self, key: bytes, on_failure: Callable[[], None]) -> None:
        super().__init__(key)
        self._on_failure = on_failure

    def open(self, db: bytes, record_key: bytes, sealed: bytes) -> bytes:
        try:
            return super().open(db, record_key, sealed)
        except IntegrityError:
            self._on_failure()
            raise
