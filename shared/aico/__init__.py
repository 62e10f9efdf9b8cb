"""aico: encrypted, local-first memory for a personal AI companion.

The top level re-exports what most callers need; heavy parts (embedding models, Chroma)
live in ``aico.ai`` and are imported only by code that uses them.
"""

from importlib.metadata import PackageNotFoundError, version

from aico.config import Config, load_config, resolve_data_dir
from aico.data.store import DataStore
from aico.errors import (
    AicoError,
    ChecksumMismatch,
    ConfigError,
    DatabaseCorrupted,
    DatabaseNewerThanCode,
    InvalidInput,
    Locked,
    MigrationError,
    NotFound,
    SchemaError,
    WrongPassphrase,
)
from aico.security import KdfParams, KeyFile, MasterKey, unlock_master_key

try:
    __version__ = version("aico")
except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
    __version__ = "0.0.0"

__all__ = [
    "AicoError",
    "ChecksumMismatch",
    "Config",
    "ConfigError",
    "DataStore",
    "DatabaseCorrupted",
    "DatabaseNewerThanCode",
    "InvalidInput",
    "KdfParams",
    "KeyFile",
    "Locked",
    "MasterKey",
    "MigrationError",
    "NotFound",
    "SchemaError",
    "WrongPassphrase",
    "__version__",
    "load_config",
    "resolve_data_dir",
    "unlock_master_key",
]
