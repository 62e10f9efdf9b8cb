"""One user's complete memory as a portable file: ``export_user`` and ``import_user``.

**What is in it**: the profile (``users``), facts, feedback events, conversations with their
messages, attachments (bytes included) and compaction history, session state
(``session_metadata``, ``user_preferences``) and long-term segments with their vectors and
their source messages. Every row is exported with all its columns, as stored, with the ids
it has. **Left out**: bearer tokens (credentials of this installation), the system log,
and what is derived (the FTS5 index, Chroma, working memory, outboxes): import rebuilds
them from the rows.

**The document** (format ``aico-user-export``, version 1) is JSON::

    {"format": "aico-user-export", "version": 1, "exported_at": <unix seconds>,
     "user_id": ..., "embedding_model": {"name", "dimension", "fingerprint"} | null,
     "tables": {"users": [{column: value, ...}], "facts": [...], ...,
                "semantic_segment_messages": [{"segment_id", "message_id"}]}}

A BLOB value is written ``{"base64": "..."}``; a segment's ``vector`` is its float32
little-endian bytes. The internal segment row id and Chroma id are not exported: import
assigns new ones (they are never shown to anyone).

**Encrypted by default** under a passphrase the user chooses (Argon2id with the configured
cost, then the archive container of ``aico.operations.archive``, kind ``export``). With
``plaintext=True`` the JSON is written as it is, for a user leaving the product; it is
then readable by anyone who gets the file (the CLI says so).

**Import** refuses (``InvalidInput``, before writing anything) when the target already has
that user or any of the export's ids; the ids are never remapped, so a round trip is exact
(same ids, same search results). Segments whose vectors come from another embedding model
than the target's are re-embedded by the target's outbox.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aico.config import Config, load_config
from aico.data.repositories._base import chunks
from aico.data.store import DataStore, kdf_params_from_config
from aico.errors import InvalidInput, NotFound, SemanticMemoryError
from aico.operations.archive import (
    MAGIC,
    PayloadReader,
    PayloadWriter,
    SealedReader,
    SealedWriter,
    derive_archive_key,
    new_header,
    read_header,
)
from aico.security import KdfParams
from aico.security.kdf import derive_kek
from aico.validation import check_id

if TYPE_CHECKING:
    from aico.ai.memory import MemoryManager

__all__ = [
    "EXPORT_FORMAT",
    "EXPORT_VERSION",
    "ExportReport",
    "ImportReport",
    "build_document",
    "export_user",
    "import_user",
    "read_export",
]

EXPORT_FORMAT = "aico-user-export"
EXPORT_VERSION = 1
_ENTRY = "export.json"
_MAX_DOCUMENT = 1 << 34  # 16 GiB: a sanity bound on what import will decompress

# (database, table, how the user's rows are found, the columns that identify a row)
_TABLES: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("core", "users", "user_id = ?", ("user_id",)),
    ("core", "facts", "user_id = ?", ("fact_id",)),
    ("core", "feedback_events", "user_id = ?", ("event_id",)),
    ("core", "semantic_segments", "user_id = ?", ("segment_id",)),
    ("conversations", "conversations", "user_id = ?", ("id",)),
    ("conversations", "messages", "user_id = ?", ("id",)),
    ("conversations", "compaction_history", "user_id = ?", ("id",)),
    ("conversations", "session_metadata", "user_id = ?", ("session_id",)),
    ("sessions", "user_preferences", "user_id = ?", ("id",)),
)
_INTERNAL = {"semantic_segments": ("id", "chroma_id")}


@dataclass(frozen=True)
class ExportReport:
    """What ``export_user`` wrote: the file, whether it is encrypted, rows per table."""

    path: Path
    encrypted: bool
    rows: Mapping[str, int]
    bytes: int


@dataclass(frozen=True)
class ImportReport:
    """What ``import_user`` added: the user, rows per table, segments indexed now."""

    user_id: str
    rows: Mapping[str, int]
    indexed: int
    reembedded: bool


# ---- values ------------------------------------------------------------------------------------


def _encode(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return {"base64": base64.b64encode(bytes(value)).decode("ascii")}
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) != {"base64"} or not isinstance(value["base64"], str):
            raise InvalidInput("the export holds a value that is not a column value")
        try:
            return base64.b64decode(value["base64"], validate=True)
        except ValueError:
            raise InvalidInput("the export holds a malformed binary value") from None
    if value is None or isinstance(value, str | int | float):
        return value
    raise InvalidInput("the export holds a value that is not a column value")


def _rows(conn: Any, table: str, where: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
    return [
        {k: _encode(v) for k, v in r.items() if k not in _INTERNAL.get(table, ())}
        for r in conn.fetch_all(f"SELECT * FROM {table} WHERE {where} ORDER BY rowid", params)
    ]


def _in(conn: Any, sql: str, values: list[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for chunk in chunks(values, 500):
        out += conn.fetch_all(sql.format(",".join("?" * len(chunk))), chunk)
    return out


# ---- export ------------------------------------------------------------------------------------


def build_document(store: DataStore, user_id: str) -> dict[str, Any]:
    """The export document of ``user_id`` (``NotFound`` if this data dir has no such user)."""
    check_id(user_id, "user_id")
    core = store.connection("core")
    if core.fetch_value("SELECT 1 FROM users WHERE user_id = ?", (user_id,)) is None:
        raise NotFound("this data dir has no such user")
    tables: dict[str, list[dict[str, Any]]] = {}
    for database, table, where, _ in _TABLES:
        tables[table] = _rows(store.connection(database), table, where, (user_id,))
    message_ids = [str(m["id"]) for m in tables["messages"]]
    log = store.connection("conversations")
    tables["message_attachments"] = [
        {k: _encode(v) for k, v in r.items()}
        for r in _in(
            log,
            "SELECT * FROM message_attachments WHERE message_id IN ({}) ORDER BY rowid",
            message_ids,
        )
    ]
    tables["semantic_segment_messages"] = [
        {"segment_id": str(r["segment_id"]), "message_id": str(r["message_id"])}
        for r in core.fetch_all(
            "SELECT s.segment_id, m.message_id FROM semantic_segment_messages m "
            "JOIN semantic_segments s ON s.id = m.segment_rowid WHERE s.user_id = ? "
            "ORDER BY s.id, m.message_id",
            (user_id,),
        )
    ]
    model = core.fetch_one("SELECT name, dimension, fingerprint FROM semantic_model")
    return {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "exported_at": time.time(),
        "user_id": user_id,
        "embedding_model": model,
        "tables": tables,
    }


def export_user(
    store: DataStore,
    user_id: str,
    path: str | os.PathLike[str],
    *,
    config: Config | None = None,
    passphrase: str | None = None,
    plaintext: bool = False,
    kdf: KdfParams | None = None,
) -> ExportReport:
    """Write ``user_id``'s memory to ``path`` (a new file), encrypted under ``passphrase``.

    Reads only (a read-only ``store`` will do). ``plaintext=True`` writes the JSON
    unencrypted instead (then ``passphrase`` must be None). ``kdf`` defaults to the
    configured Argon2id cost. The file is created 0600 and appears whole or not at all.
    """
    config = config or load_config()
    if plaintext == (passphrase is not None):
        raise InvalidInput("give a passphrase for an encrypted export, or plaintext=True")
    if passphrase is not None and not passphrase:
        raise InvalidInput("the export passphrase must not be empty")
    path = Path(path)
    if path.exists():
        raise InvalidInput(f"{path} already exists; choose a new file")
    document = build_document(store, user_id)
    rows = {table: len(items) for table, items in document["tables"].items()}
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with open(fd, "wb") as fh:
            if plaintext:
                fh.write(json.dumps(document, indent=2, sort_keys=True).encode("utf-8"))
            else:
                assert passphrase is not None
                params = kdf or kdf_params_from_config(config)
                threshold = int(config.get("storage.backup.compression_threshold"))
                _write_encrypted(fh, document, passphrase, params, threshold)
            fh.flush()
            os.fsync(fh.fileno())
        os.link(partial, path)  # never replaces a file that appeared meanwhile
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
        raise
    partial.unlink()
    return ExportReport(path, not plaintext, rows, path.stat().st_size)


def _write_encrypted(
    fh: Any, document: dict[str, Any], passphrase: str, params: KdfParams, threshold: int
) -> None:
    header, key = new_header(
        "export",
        {"kdf": {"name": "argon2id", **params.to_dict()}},
        lambda salt: derive_kek(passphrase, salt, params),
    )
    sealed = SealedWriter(fh, key, header)
    payload = PayloadWriter(sealed, compression_threshold=threshold)
    payload.add_bytes(_ENTRY, json.dumps(document, sort_keys=True).encode("utf-8"))
    payload.end()


# ---- reading -----------------------------------------------------------------------------------


def read_export(path: str | os.PathLike[str], passphrase: str | None = None) -> dict[str, Any]:
    """The document of an export file, encrypted (needs ``passphrase``) or plaintext.

    ``WrongPassphrase`` for a wrong passphrase, ``IntegrityError`` for a damaged or altered
    encrypted file, ``InvalidInput`` for anything that is not an aico user export.
    """
    path = Path(path)
    with open(path, "rb") as fh:
        encrypted = fh.read(len(MAGIC)) == MAGIC
        fh.seek(0)
        if encrypted:
            if passphrase is None:
                raise InvalidInput(f"{path.name} is encrypted: give its passphrase")
            raw = _read_encrypted(fh, passphrase, path.name)
        else:
            raw = fh.read()
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InvalidInput(f"{path.name} is not an aico user export") from None
    if not isinstance(document, dict) or document.get("format") != EXPORT_FORMAT:
        raise InvalidInput(f"{path.name} is not an aico user export")
    version = document.get("version")
    if type(version) is not int or version > EXPORT_VERSION:
        raise InvalidInput(
            f"{path.name} has export version {version!r}; this aico reads up to {EXPORT_VERSION}"
        )
    return document


def _read_encrypted(fh: Any, passphrase: str, name: str) -> bytes:
    header = read_header(fh, name=name)
    if header.kind != "export":
        raise InvalidInput(f"{name} is not a user export (it is an aico {header.kind})")
    try:
        params = KdfParams.from_dict(
            {k: v for k, v in dict(header.source["kdf"]).items() if k != "name"}
        )
    except (KeyError, TypeError, ValueError):
        raise InvalidInput(f"{name}: the export's key parameters are malformed") from None
    key = derive_archive_key(derive_kek(passphrase, header.salt, params), header.salt)
    payload = PayloadReader(SealedReader(fh, key, header, name=name))
    entry = payload.next_entry()
    if entry is None or entry.name != _ENTRY:
        raise InvalidInput(f"{name} is not an aico user export")
    raw = entry.read_all(limit=_MAX_DOCUMENT)
    if payload.next_entry() is not None:
        raise InvalidInput(f"{name} is not an aico user export")
    return raw


# ---- import ------------------------------------------------------------------------------------


def _table_rows(document: Mapping[str, Any], table: str) -> list[dict[str, Any]]:
    tables = document.get("tables")
    if not isinstance(tables, dict):
        raise InvalidInput("the export has no tables")
    rows = tables.get(table, [])
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise InvalidInput(f"the export's table {table} is malformed")
    return rows


def _columns(conn: Any, table: str) -> set[str]:
    return {str(r["name"]) for r in conn.fetch_all(f"PRAGMA table_info({table})")}


def _checked(conn: Any, table: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows with decoded values, refused if they name a column the target lacks."""
    known = _columns(conn, table)
    out = []
    for row in rows:
        unknown = set(row) - known
        if unknown:
            raise InvalidInput(
                f"the export's table {table} has columns this data dir lacks: "
                f"{', '.join(sorted(unknown))} (an export from a newer aico?)"
            )
        out.append({k: _decode(v) for k, v in row.items()})
    return out


def _insert(conn: Any, table: str, row: Mapping[str, Any]) -> Any:
    columns = list(row)
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    return conn.execute(sql, tuple(row[c] for c in columns))


def _conflicts(conn: Any, table: str, key: str, values: Iterable[Any]) -> bool:
    items = [v for v in values if v is not None]
    if not items:
        return False
    return bool(_in(conn, f"SELECT 1 FROM {table} WHERE {key} IN ({{}}) LIMIT 1", items))


def import_user(
    manager: MemoryManager,
    path: str | os.PathLike[str],
    *,
    passphrase: str | None = None,
) -> ImportReport:
    """Add the user of an export file to ``manager``'s data dir, with every id unchanged.

    Checks everything first: the file (see ``read_export``), every row's columns, and that
    none of its ids exists here (``InvalidInput`` otherwise, nothing written). Then one
    transaction per database (core, conversations, sessions) and the semantic outbox is
    replayed so the segments are searchable at once. A failure between the transactions
    leaves a partial import, which ``manager.forget(user_id)`` removes.
    """
    document = read_export(path, passphrase)
    user_id = document.get("user_id")
    if not isinstance(user_id, str):
        raise InvalidInput("the export names no user")
    check_id(user_id, "user_id")
    store = manager.store
    dbs = {name: store.connection(name) for name in ("core", "conversations", "sessions")}
    plan: dict[str, list[dict[str, Any]]] = {}
    for database, table, _, keys in _TABLES:
        rows = _checked(dbs[database], table, _table_rows(document, table))
        if any(r.get("user_id", user_id) != user_id for r in rows):
            raise InvalidInput(f"the export's table {table} holds rows of another user")
        for key in keys:
            if _conflicts(dbs[database], table, key, (r.get(key) for r in rows)):
                raise InvalidInput(
                    "this data dir already holds that user or some of the export's records "
                    f"({table}); forget the user here first, or import into another data dir"
                )
        plan[table] = rows
    if len(plan["users"]) != 1:
        raise InvalidInput("the export must hold exactly one user profile")
    message_ids = {str(m.get("id")) for m in plan["messages"]}
    attachments = _checked(
        dbs["conversations"], "message_attachments", _table_rows(document, "message_attachments")
    )
    if any(str(a.get("message_id")) not in message_ids for a in attachments):
        raise InvalidInput("the export holds attachments of messages it does not hold")
    if _conflicts(
        dbs["conversations"], "message_attachments", "id", (a.get("id") for a in attachments)
    ):
        raise InvalidInput(
            "this data dir already holds some of the export's records (message_attachments); "
            "forget the user here first, or import into another data dir"
        )
    sources = _table_rows(document, "semantic_segment_messages")
    segment_ids = {str(s.get("segment_id")) for s in plan["semantic_segments"]}
    if any(str(s.get("segment_id")) not in segment_ids for s in sources):
        raise InvalidInput("the export's segment sources name segments it does not hold")
    model = document.get("embedding_model")
    current = dbs["core"].fetch_one("SELECT fingerprint FROM semantic_model")
    reembed = bool(plan["semantic_segments"]) and (
        not isinstance(model, dict)
        or current is None
        or model.get("fingerprint") != current["fingerprint"]
    )
    _write(dbs, plan, attachments, sources)
    indexed = 0
    try:
        result = manager.semantic.process_outbox()
        indexed = result.indexed
    except SemanticMemoryError:
        pass  # the rows are committed; the outbox stays queued for maintenance
    return ImportReport(
        user_id=user_id,
        rows={t: len(r) for t, r in plan.items()}
        | {"message_attachments": len(attachments), "semantic_segment_messages": len(sources)},
        indexed=indexed,
        reembedded=reembed,
    )


def _write(
    dbs: Mapping[str, Any],
    plan: Mapping[str, list[dict[str, Any]]],
    attachments: list[dict[str, Any]],
    sources: list[dict[str, Any]],
) -> None:
    core, log, sessions = dbs["core"], dbs["conversations"], dbs["sessions"]
    with core.transaction():
        for table in ("users", "facts", "feedback_events"):
            for row in plan[table]:
                _insert(core, table, row)
        rowids: dict[str, int] = {}
        for row in plan["semantic_segments"]:
            result = _insert(core, "semantic_segments", {**row, "chroma_id": secrets.token_hex(16)})
            rowids[str(row["segment_id"])] = int(result.lastrowid)
        for source in sources:
            core.execute(
                "INSERT INTO semantic_segment_messages (message_id, segment_rowid) VALUES (?, ?)",
                (str(source["message_id"]), rowids[str(source["segment_id"])]),
            )
    with log.transaction():
        for table in ("conversations", "messages"):
            for row in plan[table]:
                _insert(log, table, row)
        for row in attachments:
            _insert(log, "message_attachments", row)
        for table in ("compaction_history", "session_metadata"):
            for row in plan[table]:
                _insert(log, table, row)
    with sessions.transaction():
        for row in plan["user_preferences"]:
            _insert(sessions, "user_preferences", row)
