"""What a database's errors say: which file, which store, what happened, what to do.

Kept apart from the connection so that every message is written in one place: a caller must
be able to tell from any of them which file to restore (``path``, ``store``) and how to
recover, and none may carry row content.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from pathlib import Path

from aico.data.libsql.errors import is_no_space, storage_full
from aico.errors import DatabaseCorrupted, ReadOnly, StorageError

__all__ = ["RECOVERY", "Naming"]

RECOVERY = (
    "Restore it from a backup, move it aside (with its -wal, .seal and .lock files) to start "
    "this database empty, or run 'aico doctor'."
)
_DENIED = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})


@dataclass(frozen=True)
class Naming:
    """The errors of one database file; ``store`` is its name in the data dir, if known.

    ``key_verified``: the opener proved the key (the data store unwrapped it from the key
    file), so a file that does not decrypt is damaged, never "from another key".
    """

    path: Path
    store: str | None = None
    key_verified: bool = False

    @property
    def label(self) -> str:
        if self.store is None:
            return f"database {self.path}"
        return f"database {self.store!r} ({self.path})"

    def damaged(self, what: str) -> DatabaseCorrupted:
        return DatabaseCorrupted(
            f"{self.label} is damaged: {what}. {RECOVERY}", path=self.path, store=self.store
        )

    def named(self, exc: DatabaseCorrupted) -> DatabaseCorrupted:
        """A corruption error from below (driver, seal, file checks) with label and store.

        Errors made here pass unchanged; one from below keeps the file it named (a damaged
        seal), else it gets this database's.
        """
        if exc.path is not None and exc.store == self.store and str(exc).startswith(self.label):
            return exc
        named = self.damaged(str(exc).removeprefix("database corrupted: "))
        if exc.path is not None:
            named.path = exc.path
        return named

    def undecryptable(self) -> DatabaseCorrupted:
        if self.key_verified:
            return self.damaged(
                "it does not decrypt although the key is right (truncated, overwritten, "
                "or copied from another data dir)"
            )
        return self.damaged(
            "it did not open with its key (the file is damaged, or it was encrypted "
            "with another key)"
        )

    def quick_check_failed(self) -> DatabaseCorrupted:
        return self.damaged("it failed PRAGMA quick_check (its pages or b-trees are broken)")

    def missing(self, left: list[Path]) -> DatabaseCorrupted:
        names = ", ".join(p.name for p in left)
        return DatabaseCorrupted(
            f"{self.label} is missing: the file is gone but {names} of it remain, so it was "
            f"deleted or moved. {RECOVERY}",
            path=self.path,
            store=self.store,
        )

    def wal_lost(self, missing: int, wal: Path) -> DatabaseCorrupted:
        return DatabaseCorrupted(
            f"{self.label} is missing {missing} committed transaction(s): its write-ahead "
            f"log ({wal.name}) was lost or damaged after an unclean shutdown. Restore the "
            "database from a backup, or accept the loss explicitly (open it once with "
            "accept_wal_loss=True).",
            path=self.path,
            store=self.store,
        )

    def read_only(self, blocked: Path) -> ReadOnly:
        return ReadOnly(
            f"{self.label} cannot be written: {blocked} is on read-only media or not "
            "writable by this user. Open it read-only (readonly=True; "
            "DataStore.open(read_only=True))"
        )

    def unreadable_wal(self) -> ReadOnly:
        return ReadOnly(
            f"{self.label} has a write-ahead log that cannot be read on read-only media "
            "without its -shm file: copy the data dir to writable storage and open it there"
        )

    def os_error(self, doing: str, exc: OSError, *, readonly: bool) -> StorageError:
        """``StorageFull`` for lack of space, ``ReadOnly`` for a denied write, else generic."""
        if is_no_space(exc):
            outcome = (
                "it was left unsealed and is checked like after a crash when next opened"
                if doing == "seal"
                else f"the {doing} failed"
            )
            return storage_full(f"cannot {doing} {self.label}", outcome)
        if exc.errno in _DENIED and not readonly:
            return self.read_only(Path(exc.filename or self.path.parent))
        return StorageError(f"cannot {doing} {self.label}: {exc.strerror}")
