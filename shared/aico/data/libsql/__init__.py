"""Encrypted libSQL connections: pragmas, one writer plus a reader pool, the error seam, the seal.

Everything a caller needs is re-exported here; the submodules are implementation.
"""

from aico.data.libsql.connection import EncryptedLibSQLConnection, ExecResult
from aico.data.libsql.errors import translate_errors
from aico.data.libsql.settings import SQLiteSettings

__all__ = [
    "EncryptedLibSQLConnection",
    "ExecResult",
    "SQLiteSettings",
    "translate_errors",
]
