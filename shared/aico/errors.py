"""The one exception hierarchy of aico.

Every error a caller can see is an ``AicoError``. Driver errors (libSQL's plain
``ValueError``, pyo3's ``PanicException``, LMDB and Chroma errors) are translated at one
seam per backend and re-raised ``from`` the original, so callers never catch driver types.

Messages never contain user content: they name keys, paths, schemas and versions only.

    AicoError
    ├── ConfigError                     bad or unknown configuration key/value
    ├── InvalidInput                    a caller passed something unusable
    ├── NotFound                        a requested record does not exist
    ├── SecurityError
    │   ├── WrongPassphrase             the key file did not unwrap (the one "wrong key" signal)
    │   ├── Locked                      no unlock source was available
    │   ├── KeyFileError                the key file is missing, unreadable or malformed
    │   └── IntegrityError              sealed data failed authentication
    ├── StorageError
    │   ├── DatabaseCorrupted           a database is damaged (names the store and the file)
    │   ├── DatabaseBusy                a lock could not be taken within busy_timeout
    │   ├── StoreBusy                   the data dir is in use where exclusive use is needed
    │   ├── ConstraintViolation         a CHECK / UNIQUE / FOREIGN KEY constraint failed
    │   ├── QueryError                  any other statement failure
    │   ├── StoreClosed                 an operation on a closed store or connection
    │   ├── StorageFull                 the disk (or a file-size limit) has no room left
    │   ├── ReadOnly                    a write asked of a store opened read-only, or of
    │   │                               a data dir on read-only media
    │   ├── WorkingMemoryError          LMDB-side failures that are not security errors
    │   │   └── WorkingMemoryCorrupted  the LMDB environment is damaged (a cache: rebuilt)
    │   └── SemanticMemoryError
    │       ├── ModelMismatch           the store was built with another embedding model
    │       └── IndexDamaged            the Chroma index is damaged or missing (rebuilt)
    └── SchemaError
        ├── RegistrationError           a schema definition is invalid (gaps, duplicates)
        ├── MigrationError              a migration or rollback statement failed
        ├── ChecksumMismatch            an applied version's SQL changed in code
        └── DatabaseNewerThanCode       the database is at a version the code does not know
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

__all__ = [
    "AicoError",
    "ChecksumMismatch",
    "ConfigError",
    "ConstraintViolation",
    "DatabaseBusy",
    "DatabaseCorrupted",
    "DatabaseNewerThanCode",
    "IndexDamaged",
    "IntegrityError",
    "InvalidInput",
    "KeyFileError",
    "Locked",
    "MigrationError",
    "ModelMismatch",
    "NotFound",
    "QueryError",
    "ReadOnly",
    "RegistrationError",
    "SchemaError",
    "SecurityError",
    "SemanticMemoryError",
    "StorageError",
    "StorageFull",
    "StoreBusy",
    "StoreClosed",
    "WorkingMemoryCorrupted",
    "WorkingMemoryError",
    "WrongPassphrase",
]


class AicoError(Exception):
    """Root of every error aico raises on purpose."""


class ConfigError(AicoError):
    """A configuration key is unknown or its value is invalid; the message names the key."""


class InvalidInput(AicoError, ValueError):
    """A caller passed an argument aico cannot use (also a ``ValueError`` for convenience)."""


class NotFound(AicoError, LookupError):
    """A requested record does not exist."""


class SecurityError(AicoError):
    """Base for key and integrity failures. Messages stay deliberately opaque."""


class WrongPassphrase(SecurityError):
    """The passphrase (or key) did not unwrap the master key."""


class Locked(SecurityError):
    """No unlock source produced a passphrase or key."""


class KeyFileError(SecurityError):
    """The key file is missing, unreadable, or not in a format this code understands."""


class IntegrityError(SecurityError):
    """Sealed data failed authentication: it was altered, moved, or sealed with another key."""


class StorageError(AicoError):
    """Base for failures of the underlying stores."""


class DatabaseCorrupted(StorageError):
    """A database did not open or failed its checks although the key was right.

    ``path`` is the damaged file when known and ``store`` the database's name in the data
    dir (``core``, ``conversations``, ...), so a caller can say which file to restore. The
    message names the recovery options; it never carries row content.
    """

    def __init__(
        self, message: str, *, path: str | Path | None = None, store: str | None = None
    ) -> None:
        super().__init__(message)
        self.path: Path | None = None if path is None else Path(path)
        self.store: str | None = store


class DatabaseBusy(StorageError):
    """A lock could not be taken within the configured busy timeout."""


class StoreBusy(StorageError):
    """The data dir is open elsewhere, so an operation that needs it alone was refused.

    Raised up front, before anything is changed: by a master-key rotation while another
    store (in any process) has the data dir open, and by an open while a rotation holds it.
    ``pids`` are the other holders' process ids (one per open store; may be empty when a
    holder could not be identified). Close them and retry.
    """

    def __init__(self, message: str, *, pids: Iterable[int] = ()) -> None:
        super().__init__(message)
        self.pids: tuple[int, ...] = tuple(pids)


class ConstraintViolation(StorageError):
    """A CHECK, UNIQUE, NOT NULL or FOREIGN KEY constraint rejected a write."""


class QueryError(StorageError):
    """A statement failed for a reason that is not corruption, locking or a constraint."""


class StoreClosed(StorageError):
    """The store or connection was used after it was closed."""


class StorageFull(StorageError):
    """A write failed for want of space: the disk is full or a file-size limit was reached.

    Nothing acknowledged is lost: the write that failed was rolled back. Free space and
    retry; derived stores catch up from the log on the next open or maintenance.
    """


class ReadOnly(StorageError):
    """A write was asked of a store opened read-only, or the data dir cannot be written.

    Read verbs (status, search, verify) open their stores read-only so that they provably
    change nothing; a data dir on read-only media (or without write permission) can only be
    opened with ``read_only=True`` (``aico --read-only``). Nothing was written.
    """


class SchemaError(AicoError):
    """Base for schema registry and migration failures."""


class RegistrationError(SchemaError):
    """A schema definition is invalid: duplicate name, version gap, bad priority."""


class MigrationError(SchemaError):
    """A migration or rollback failed; the database is left at the previous version."""


class ChecksumMismatch(SchemaError):
    """An applied version's statements differ from the code's: history was rewritten."""


class DatabaseNewerThanCode(SchemaError):
    """The database records a version this code does not know; refuse to touch it."""


class WorkingMemoryError(StorageError):
    """A working-memory (LMDB) operation failed for a non-security reason."""


class WorkingMemoryCorrupted(WorkingMemoryError):
    """The LMDB environment is damaged (truncated, flipped, failed its seal or its walk).

    Working memory is a cache of the message log: the coordinator moves the damaged
    environment aside (``path``) and rebuilds it from the log.
    """

    def __init__(self, message: str, *, path: str | Path | None = None) -> None:
        super().__init__(message)
        self.path: Path | None = None if path is None else Path(path)


class SemanticMemoryError(StorageError):
    """A semantic-memory (FTS5 / Chroma) operation failed."""


class ModelMismatch(SemanticMemoryError):
    """The store's vectors were made by another embedding model; run ``aico semantic reembed``."""


class IndexDamaged(SemanticMemoryError):
    """The Chroma index is damaged or missing. It is derived from libSQL: search degrades to
    BM25 plus the exact scan, and the index is rebuilt (``aico semantic rebuild``)."""

    def __init__(self, message: str, *, path: str | Path | None = None) -> None:
        super().__init__(message)
        self.path: Path | None = None if path is None else Path(path)
