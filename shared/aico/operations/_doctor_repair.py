"""What ``aico doctor --repair`` does about the findings, always from the log outwards.

Order: damaged databases first (nothing automatic is safe: the newest verified backup is
offered, or the manual options printed); without the core and conversations databases
nothing derived can be rebuilt, so the repair stops there. Then schemas are migrated, the
FTS5 index rebuilt from the segments when it is damaged or drifted, a damaged working
memory moved aside, and the ``MemoryManager`` opened, whose ``repair()`` finishes
forgets and consolidations, replays the working outbox and refills working memory from
the log. On that manager: segments of messages the log no longer holds are deleted,
consolidated messages in no segment are consolidated again, session counts recounted,
Chroma rebuilt from the libSQL vectors when it is damaged or disagrees, and the semantic
outbox replayed. Closing the manager seals every file again.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from aico.ai.memory.semantic import models
from aico.ai.memory.semantic.fts import DEFAULT_FTS_TOKENIZER
from aico.ai.memory.semantic.schema import FTS_TABLE
from aico.ai.memory.upgrade import upgrade_store
from aico.ai.memory.working import quarantine_working
from aico.config import Config
from aico.data.libsql import EncryptedLibSQLConnection
from aico.data.repositories._base import chunks
from aico.data.store import DataStore
from aico.errors import AicoError
from aico.layout import DataDir
from aico.operations._doctor_checks import Finding
from aico.operations._fts_rescue import rescue_fts
from aico.operations.drift import compare_chroma, orphan_segments, unsegmented_messages
from aico.security import Purpose

if TYPE_CHECKING:
    from aico.ai.embeddings import Encoder
    from aico.ai.memory import MemoryManager

__all__ = [
    "RepairAction",
    "RestoreChooser",
    "broken_databases",
    "rebuild_fts",
    "repair_store",
    "restore_offer",
]

RestoreChooser = Callable[[str, Any], bool]
"""``choose(databases, backup_info) -> bool``: whether to restore that (verified) backup
over the whole data dir now; ``databases`` names the damaged ones."""

_LOAD_WAIT_S: Final = 120.0


@dataclass(frozen=True)
class RepairAction:
    """One thing the repair did (or, ``done=False``, could not do and what to do instead)."""

    action: str
    store: str
    detail: str
    done: bool = True


def rebuild_fts(conn: EncryptedLibSQLConnection) -> int:
    """Recreate every FTS5 table from the segments, with the tokenizer it was built with
    (``models.rebuild_fts``: drop and fill in one transaction, so a damaged index is never
    read and a crash leaves the old one). Returns the rows of the main table."""
    models.rebuild_fts(conn, models.stored_tokenizer(conn) or DEFAULT_FTS_TOKENIZER)
    return int(conn.fetch_value(f"SELECT count(*) FROM {FTS_TABLE}_docsize") or 0)


def _has(
    findings: list[Finding],
    *,
    store: str | None = None,
    check: str | None = None,
    warnings: bool = False,
) -> bool:
    """Whether a problem (``warnings``: or a warning) of that check or store was found."""
    levels = ("problem", "warning") if warnings else ("problem",)
    return any(
        f.status in levels
        and (store is None or f.store == store)
        and (check is None or f.check == check)
        for f in findings
    )


def restore_offer(
    layout: DataDir,
    config: Config,
    broken: list[str],
    *,
    passphrase: str | None,
    encoder: Encoder | None,
    choose: RestoreChooser | None,
) -> RepairAction:
    """The newest backup that verifies, restored if ``choose`` says so; else how to do it.

    A restore replaces the whole data dir (``aico.operations.restore``: staged, verified,
    the forget ledger re-applied, swapped in atomically), so no store may be open here.
    Backups are verified only with an explicit ``passphrase``.
    """
    names = ", ".join(broken)
    manual = (
        "restore a backup ('aico backup list', 'aico backup restore ID'), or move the "
        "damaged file aside with its -wal, .seal and .lock files to start it empty"
    )
    try:
        backup: Any = importlib.import_module("aico.operations.backup")
        directory = backup.backup_directory(layout, config)
        found = list(backup.list_backups(directory))
    except (ImportError, AttributeError, AicoError):
        return RepairAction("restore", names, f"not automatic: {manual}", done=False)
    if not found:
        return RepairAction("restore", names, f"no backup in {directory}: {manual}", done=False)
    verified = None
    if passphrase is not None:
        for info in found:
            try:
                backup.verify_backup(info.path, passphrase)
            except AicoError:
                continue
            verified = info
            break
    if verified is None:
        newest = found[0]
        return RepairAction(
            "restore",
            names,
            f"newest backup {newest.id}: check it ('aico backup verify {newest.id}'), then "
            f"restore it ('aico backup restore {newest.id}'); or move the damaged file aside",
            done=False,
        )
    try:
        restore: Any = importlib.import_module("aico.operations.restore").restore_backup
    except (ImportError, AttributeError):
        restore = None
    if restore is None or choose is None or not choose(names, verified):
        return RepairAction(
            "restore",
            names,
            f"backup {verified.id} verifies: restore it with 'aico backup restore {verified.id}'",
            done=False,
        )
    try:
        restore(verified.path, passphrase, data_dir=layout, config=config, encoder=encoder)
    except AicoError as exc:
        return RepairAction(
            "restore",
            names,
            f"restoring {verified.id} failed: {type(exc).__name__}: {exc}",
            done=False,
        )
    return RepairAction("restore", names, f"restored backup {verified.id} (verified)")


def broken_databases(layout: DataDir, findings: list[Finding]) -> list[str]:
    """Databases that do not open or fail their integrity check (not only FTS5)."""
    return sorted(
        {
            f.store
            for f in findings
            if f.status == "problem"
            and f.check in ("open", "integrity")
            and f.store in layout.databases
        }
    )


def repair_store(
    store: DataStore,
    findings: list[Finding],
    *,
    config: Config,
    encoder: Encoder | None,
    clock: Callable[[], float],
) -> list[RepairAction]:
    """Repair what the findings call for (module docstring); closes ``store``."""
    from aico.ai.memory import MemoryManager

    actions: list[RepairAction] = []
    try:
        broken = broken_databases(store.layout, findings)
        if _has(findings, check="fts-refused") and "core" not in broken:
            rows = rescue_fts(
                store.path_of("core"),
                store.master_key.subkey(Purpose.libsql("core")),
                store.settings,
            )
            actions.append(RepairAction("rebuild", "fts", f"FTS5 index rebuilt: {rows} rows"))
        if {"core", "conversations"} & set(broken):
            actions.append(
                RepairAction(
                    "rebuild",
                    "memory",
                    "skipped: the derived stores are rebuilt from the core and conversations "
                    "databases, so those come first",
                    done=False,
                )
            )
            store.close()
            return actions
        if _has(findings, check="schema", warnings=True):
            if broken:
                actions.append(
                    RepairAction("migrate", "data_dir", "skipped: a database is damaged", False)
                )
            else:
                steps = upgrade_store(store)
                actions.append(RepairAction("migrate", "data_dir", f"{len(steps)} schema steps"))
        if not _has(findings, check="fts-refused") and (
            _has(findings, check="fts") or _has(findings, store="fts")
        ):
            rows = rebuild_fts(store.connection("core"))
            actions.append(RepairAction("rebuild", "fts", f"FTS5 index rebuilt: {rows} rows"))
        directory = store.layout.working_memory
        if _has(findings, store="working_memory", check="open") and directory.exists():
            moved = quarantine_working(directory)
            actions.append(
                RepairAction("quarantine", "working_memory", f"moved aside to {moved.name}")
            )
    except BaseException:
        store.close()
        raise
    try:
        manager = MemoryManager.from_store(store, config=config, encoder=encoder, clock=clock)
    except BaseException:
        store.close()
        raise
    try:
        actions += _repair_memory(manager, findings)
    finally:
        manager.close()
    return actions


def _repair_memory(manager: MemoryManager, findings: list[Finding]) -> list[RepairAction]:
    actions: list[RepairAction] = []
    report = manager.last_repair
    if report.total or report.legacy_messages_moved:
        counts = ", ".join(f"{k} {v}" for k, v in vars(report).items() if v)
        actions.append(RepairAction("repair", "log", f"made to agree with the log: {counts}"))
    core = manager.store.connection("core")
    log = manager.store.connection("conversations")
    orphans = orphan_segments(core, log)
    if orphans:
        deleted = manager.semantic.delete_segments(orphans)
        actions.append(RepairAction("delete", "semantic", f"{deleted} orphaned segments"))
    unsegmented = unsegmented_messages(core, log)
    if unsegmented:
        actions.append(_reconsolidate(manager, unsegmented))
    recounted = log.execute(
        "UPDATE session_metadata SET message_count = (SELECT count(*) FROM messages m "
        "WHERE m.session_id = session_metadata.session_id) WHERE message_count != "
        "(SELECT count(*) FROM messages m WHERE m.session_id = session_metadata.session_id)"
    ).rowcount
    if recounted > 0:
        actions.append(RepairAction("recount", "log", f"{recounted} sessions' message counts"))
    actions += _repair_chroma(manager, findings)
    return actions


def _reconsolidate(manager: MemoryManager, message_ids: list[str]) -> RepairAction:
    log = manager.store.connection("conversations")
    sessions: set[str] = set()
    for chunk in chunks(message_ids, 500):
        marks = ",".join("?" * len(chunk))
        sessions |= {
            str(r["session_id"])
            for r in log.fetch_all(
                f"SELECT DISTINCT session_id FROM messages WHERE id IN ({marks})", chunk
            )
        }
    with log.transaction():
        released = manager.log.release(message_ids)
    made = sum(manager.consolidate(session) for session in sorted(sessions))
    return RepairAction(
        "consolidate", "log", f"{released} messages consolidated again: {made} segments"
    )


def _repair_chroma(manager: MemoryManager, findings: list[Finding]) -> list[RepairAction]:
    semantic = manager.semantic
    semantic.wait_ready(_LOAD_WAIT_S)
    health = semantic.index_health()
    chroma = compare_chroma(
        manager.store.connection("core"), semantic=semantic, chroma_dir=None, read_catalog=False
    )
    needed = _has(findings, store="chroma") or health.state == "damaged" or chroma.ok is False
    if needed and health.state != "unavailable":
        written = semantic.rebuild()
        return [RepairAction("rebuild", "chroma", f"rebuilt from libSQL: {written} vectors")]
    result = semantic.process_outbox()
    if result.indexed or result.deleted:
        return [
            RepairAction(
                "outbox",
                "chroma",
                f"replayed: {result.indexed} indexed, {result.deleted} deleted, "
                f"{result.remaining} left",
            )
        ]
    return []
