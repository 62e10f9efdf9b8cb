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
    │   ├── DatabaseCorrupted           a database did not open or check with the right key
    │   ├── DatabaseBusy                a lock could not be taken within busy_timeout
    │   ├── StoreBusy                   the data dir is in use where exclusive use is needed
    │   ├── ConstraintViolation         a CHECK / UNIQUE / FOREIGN KEY constraint failed
    │   ├── QueryError                  any other statement failure
    │   ├── StoreClosed                 an operation on a closed store or connection
    │   ├── ReadOnly                    a write asked of a store opened read-only
    │   ├── WorkingMemoryError          LMDB-side failures that are not security errors
    │   └── SemanticMemoryError
    │       └── ModelMismatch           the store was built with another embedding model
    └── SchemaError
        ├── RegistrationError           a schema definition is invalid (gaps, duplicates)
        ├── MigrationError              a migration or rollback statement failed
        ├── ChecksumMismatch            an applied version's SQL changed in code
        └── DatabaseNewerThanCode       the database is at a version the code does not know
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "AicoError",
    "ChecksumMismatch",
    "ConfigError",
    "ConstraintViolation",
    "DatabaseBusy",
    "DatabaseCorrupted",
    "DatabaseNewerThanCode",
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
    "StoreBusy",
    "StoreClosed",
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
    """A database did not open or failed its checks although the key was right."""


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


class ReadOnly(StorageError):
    """A write was asked of a store opened read-only (``read_only=True``); nothing was written.

    Read verbs (status, search, verify) open their stores read-only so that they provably
    change nothing; open the store writable for the write.
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


class SemanticMemoryError(StorageError):
    """A semantic-memory (FTS5 / Chroma) operation failed."""


class ModelMismatch(SemanticMemoryError):
    """The store's vectors were made by another embedding model; run ``aico semantic reembed``."""
