"""Opening DuckDB the one safe way: httpfs from its wheel, encrypted files, locked settings.

DuckDB writes encrypted database files (AES-GCM) securely only with OpenSSL, which the
``httpfs`` extension brings; without it, DuckDB refuses to write encrypted files. The
extension comes from the pinned ``duckdb-ext-httpfs`` wheel and is loaded by path: nothing
is ever downloaded (auto-install and auto-load are switched off before anything runs).

Every DuckDB error is translated here (``translate``), the one seam of this backend, into
an ``aico.errors`` type whose message never carries SQL text or values.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import platform
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import duckdb

from aico.errors import (
    AicoError,
    DatabaseCorrupted,
    InvalidInput,
    QueryError,
    ReadOnly,
    StorageError,
    StorageFull,
)

__all__ = ["ANALYTICS_PURPOSE", "attach", "connect", "httpfs_path", "lock", "translate"]

ANALYTICS_PURPOSE: Final = "analytics/duckdb"
"""The HKDF purpose of the analytics file's key (``MasterKey.subkey``)."""

CATALOG: Final = "a"
"""The alias the analytics database is attached under; every table is ``a.<name>``."""

_WHEEL: Final = "duckdb-ext-httpfs"
_EXTENSION_NAME: Final = "httpfs.duckdb_extension"


def _platform() -> str:
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
        machine, machine
    )
    system = platform.system().lower()
    return f"{'osx' if system == 'darwin' else system}_{arch}"


def httpfs_path() -> Path:
    """The httpfs extension file of the installed wheel, for this DuckDB version."""
    wanted = f"v{duckdb.__version__}/{_platform()}/{_EXTENSION_NAME}"
    try:
        files = importlib.metadata.files(_WHEEL) or []
    except importlib.metadata.PackageNotFoundError:
        raise StorageError(
            "the duckdb-ext-httpfs package is not installed: analytics needs it to "
            "encrypt its files"
        ) from None
    for file in files:
        if str(file).endswith(wanted):
            path = Path(str(file.locate()))
            if path.is_file():
                return path
    raise StorageError(
        f"duckdb-ext-httpfs has no extension for DuckDB {duckdb.__version__} on {_platform()}"
    )


def _quote(text: str) -> str:
    """A SQL string literal (DuckDB's ``ATTACH``, ``LOAD`` and ``SET`` take no parameters)."""
    if "\x00" in text:
        raise InvalidInput("a path for analytics must not contain NUL")
    return "'" + text.replace("'", "''") + "'"


@contextlib.contextmanager
def translate() -> Iterator[None]:
    """Map DuckDB's exceptions to aico's; messages name the kind of failure only."""
    try:
        yield
    except AicoError:
        raise
    except duckdb.PermissionException as exc:
        raise ReadOnly("analytics SQL may only read the documented views") from exc
    except (duckdb.ParserException, duckdb.BinderException, duckdb.CatalogException) as exc:
        raise InvalidInput(
            f"analytics SQL was refused ({type(exc).__name__.removesuffix('Exception')})"
        ) from exc
    except duckdb.OutOfMemoryException as exc:
        raise StorageFull("analytics ran out of memory or temp space") from exc
    except duckdb.IOException as exc:
        if "No space" in str(exc):
            raise StorageFull("the analytics file has no room left") from exc
        raise DatabaseCorrupted(
            "the analytics file could not be read or written (a derived store: "
            "delete it and run aico analytics export)"
        ) from exc
    except duckdb.SerializationException as exc:
        raise DatabaseCorrupted("the analytics file is damaged or has another key") from exc
    except duckdb.Error as exc:
        raise QueryError(f"analytics query failed ({type(exc).__name__})") from exc


def connect(
    temp_dir: Path, *, memory_limit: str = "1GB", threads: int = 1
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with httpfs loaded, spill files encrypted under ``temp_dir``.

    ``temp_dir`` must be inside the data dir: DuckDB's temp (spill) files go there, sealed
    with ``temp_file_encryption``, so a large sort never leaves plaintext anywhere else.
    """
    with translate():
        con = duckdb.connect(
            ":memory:",
            config={
                "autoinstall_known_extensions": False,
                "autoload_known_extensions": False,
                "allow_community_extensions": False,
                "allow_unsigned_extensions": False,
            },
        )
        try:
            con.execute(f"LOAD {_quote(str(httpfs_path()))}")
            con.execute("SET temp_file_encryption = true")
            con.execute(f"SET temp_directory = {_quote(str(temp_dir))}")
            con.execute(f"SET memory_limit = {_quote(memory_limit)}")
            con.execute(f"SET threads = {int(threads)}")
            con.execute("SET preserve_insertion_order = false")
        except BaseException:
            con.close()
            raise
    return con


def attach(
    con: duckdb.DuckDBPyConnection,
    path: Path | None,
    key: bytes | None,
    *,
    read_only: bool = False,
    alias: str = CATALOG,
) -> None:
    """Attach the analytics database as ``alias``: an AES-GCM file, or memory (``path=None``)."""
    with translate():
        if path is None:
            con.execute(f"ATTACH ':memory:' AS {alias}")
            return
        if key is None or len(key) != 32:
            raise InvalidInput("the analytics file needs a 32-byte key")
        options = [f"ENCRYPTION_KEY {_quote(key.hex())}", "ENCRYPTION_CIPHER 'GCM'"]
        if read_only:
            options.append("READ_ONLY")
        con.execute(f"ATTACH {_quote(str(path))} AS {alias} ({', '.join(options)})")
        cipher = con.execute(
            "SELECT encrypted, cipher FROM duckdb_databases() WHERE database_name = ?",
            (alias,),
        ).fetchone()
        if cipher is None or not cipher[0] or cipher[1] != "GCM":
            con.execute(f"DETACH {alias}")
            raise StorageError("the analytics file is not AES-GCM encrypted; refusing it")


def lock(con: duckdb.DuckDBPyConnection) -> None:
    """No file access and no setting changes from here on (for ad-hoc SQL)."""
    with translate():
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
