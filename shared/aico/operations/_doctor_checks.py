"""The checks ``aico doctor`` runs, each on a store opened read-only; findings, no writes.

One function per store or link. A check that cannot run because a store it needs is
damaged says so instead of failing; none of them raises for damage (only for what doctor
cannot work without: the key). See ``doctor`` for the order and the repair.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

from aico.ai.memory.semantic._index_files import check_files
from aico.ai.memory.stores import open_semantic
from aico.ai.memory.working import WorkingMemoryStore
from aico.config import Config
from aico.data.libsql import EncryptedLibSQLConnection
from aico.data.store import DataStore
from aico.errors import (
    AicoError,
    DatabaseCorrupted,
    IndexDamaged,
    NotFound,
    WorkingMemoryCorrupted,
    WrongPassphrase,
)
from aico.operations._fts_rescue import fts_only_damage
from aico.operations.drift import IndexDrift, measure_drift
from aico.security import Purpose

if TYPE_CHECKING:
    from aico.ai.embeddings import Encoder
    from aico.ai.memory.semantic import SemanticMemoryStore

__all__ = ["Finding", "Probe", "Status"]

Status = Literal["ok", "warning", "problem"]
_FTS_MARK: Final = "fts5"


@dataclass(frozen=True)
class Finding:
    """One check's result. ``detail`` names files, stores and counts only.

    ``repair`` says what ``--repair`` does about it (``repairable``), or what the user
    can do when nothing automatic is safe (a damaged database: restore it).
    """

    check: str
    store: str
    status: Status
    detail: str
    repair: str | None = None
    repairable: bool = False


@dataclass
class Probe:
    """What the checks learned that later checks and the repair need."""

    store: DataStore
    config: Config
    encoder: Encoder | None
    now: float
    findings: list[Finding] = field(default_factory=list)
    broken: set[str] = field(default_factory=set)  # databases that do not open or check
    fts_damaged: bool = False
    working: WorkingMemoryStore | None = None
    working_damaged: bool = False
    semantic: SemanticMemoryStore | None = None
    chroma_damaged: bool = False
    drift: IndexDrift | None = None
    others: list[int] = field(default_factory=list)  # pids of other holders

    def add(self, *args: Any, **kwargs: Any) -> None:
        self.findings.append(Finding(*args, **kwargs))

    def close(self) -> None:
        for closer in (
            self.semantic.close if self.semantic else None,
            self.working.close if self.working else None,
        ):
            if closer is not None:
                with contextlib.suppress(AicoError):
                    closer()
        self.semantic = self.working = None


def _restore_hint(name: str) -> str:
    return (
        f"restore {name} from a backup ('aico backup list', then restore), or move the file "
        "aside with its -wal, .seal and .lock files to start that database empty"
    )


# ---- databases --------------------------------------------------------------------------


def check_databases(probe: Probe) -> None:
    """Open each database (seal, quick_check, commit counter), then ``integrity_check``."""
    store = probe.store
    for name, path in store.databases.items():
        sealed_before = path.with_name(path.name + ".seal").exists()
        try:
            conn = store.connection(name)
        except DatabaseCorrupted as exc:
            probe.broken.add(name)
            if name == "core" and _only_fts(probe, path):
                continue
            lost = "committed transaction" in str(exc)
            hint = _restore_hint(name)
            if lost:
                hint += f", or accept the loss: 'aico db accept-loss {name}'"
            probe.add("open", name, "problem", str(exc), hint)
            continue
        except NotFound:
            probe.add("open", name, "ok", f"{path.name} does not exist yet (created on first use)")
            continue
        _check_seal(probe, name, path, sealed_before)
        _check_integrity(probe, name, conn)
        _check_schema(probe, name)


def _only_fts(probe: Probe, path: Path) -> bool:
    """A refused core database whose only damage is its FTS5 index (``_fts_rescue``)."""
    problems = fts_only_damage(path, probe.store.master_key.subkey(Purpose.libsql("core")))
    if problems is None:
        return False
    probe.fts_damaged = True
    probe.add(
        "fts-refused",
        "core",
        "problem",
        f"the core database is refused at open because its FTS5 index fails its integrity "
        f"check ({problems} message(s)); nothing else in it is damaged",
        "rebuild the FTS5 index from the segments",
        repairable=True,
    )
    return True


def _check_seal(probe: Probe, name: str, path: Path, sealed_before: bool) -> None:
    if sealed_before:
        probe.add("seal", name, "ok", "closed cleanly; its seal verified")
    elif probe.others:
        probe.add("seal", name, "ok", "open in another process (checked when it closes)")
    else:
        probe.add(
            "seal",
            name,
            "warning",
            "not sealed: the last close was not clean; quick_check and the commit counter passed",
            "a clean close seals it again ('--repair' opens and closes it)",
            repairable=True,
        )


def _check_integrity(probe: Probe, name: str, conn: EncryptedLibSQLConnection) -> None:
    try:
        rows = [str(r.get("integrity_check")) for r in conn.fetch_all("PRAGMA integrity_check")]
    except DatabaseCorrupted as exc:
        probe.broken.add(name)
        probe.add("integrity", name, "problem", str(exc), _restore_hint(name))
        return
    if rows == ["ok"]:
        probe.add("integrity", name, "ok", "PRAGMA integrity_check: ok")
        return
    fts = [r for r in rows if _FTS_MARK in r.lower()]
    other = [r for r in rows if _FTS_MARK not in r.lower()]
    if fts and name == "core":
        probe.fts_damaged = True
        probe.add(
            "fts",
            name,
            "problem",
            f"the FTS5 index fails its integrity check ({len(fts)} message(s))",
            "rebuild the FTS5 index from the segments",
            repairable=True,
        )
    if other or (fts and name != "core"):
        probe.broken.add(name)
        probe.add(
            "integrity",
            name,
            "problem",
            f"PRAGMA integrity_check found {len(rows)} problem(s)",
            _restore_hint(name),
        )


def _check_schema(probe: Probe, name: str) -> None:
    try:
        statuses = probe.store.status(name)
    except AicoError as exc:
        probe.add("schema", name, "problem", f"its schema cannot be read ({type(exc).__name__})")
        return
    behind = sorted({s.schema for d in statuses for s in d.schemas if s.pending})
    if behind:
        probe.add(
            "schema",
            name,
            "warning",
            f"schemas behind the code: {', '.join(behind)}",
            "migrated by '--repair' (or 'aico db migrate')",
            repairable=True,
        )


# ---- working memory ---------------------------------------------------------------------


def check_working(probe: Probe) -> None:
    """Open working memory read-only: its file checks, seal and key."""
    store = probe.store
    directory = store.layout.working_memory
    sealed = (directory / "aico.seal").exists()
    try:
        probe.working = WorkingMemoryStore.from_config(
            store.layout.root, store.master_key, probe.config, read_only=True
        )
    except (WorkingMemoryCorrupted, WrongPassphrase) as exc:
        probe.working_damaged = True
        probe.add(
            "open",
            "working_memory",
            "problem",
            str(exc),
            "move it aside and rebuild it from the log (it is a cache)",
            repairable=True,
        )
        return
    except NotFound:
        probe.add(
            "open",
            "working_memory",
            "warning",
            "the environment is missing",
            "a fresh one is refilled from the log",
            repairable=True,
        )
        return
    except AicoError as exc:
        probe.add("open", "working_memory", "warning", f"not checked ({type(exc).__name__})")
        return
    state = "closed cleanly; its seal verified" if sealed else "open, or closed uncleanly"
    probe.add("open", "working_memory", "ok", f"readable ({state})")


# ---- semantic memory --------------------------------------------------------------------


def check_semantic(probe: Probe) -> None:
    """The Chroma index's condition and files (read-only; chromadb is not opened)."""
    if "core" in probe.broken:
        probe.add("index", "chroma", "warning", "not checked: the core database is damaged")
        return
    store = probe.store
    try:
        probe.semantic = open_semantic(
            store, probe.config, probe.encoder, check_model=False, read_only=True
        )
    except AicoError as exc:
        probe.add("index", "semantic", "problem", f"does not open ({type(exc).__name__}: {exc})")
        return
    semantic = probe.semantic
    if semantic.model_mismatch:
        probe.add(
            "model",
            "semantic",
            "warning",
            "the vectors were made by another embedding model",
            "run 'aico semantic reembed'",
        )
    health = semantic.index_health()
    if health.state == "damaged":
        probe.chroma_damaged = True
        probe.add(
            "index",
            "chroma",
            "problem",
            f"damaged ({health.reason}): {health.detail}",
            "rebuild it from the libSQL vectors",
            repairable=True,
        )
        return
    url = probe.config.get("memory.semantic.chroma_url")
    if url:
        probe.add("index", "chroma", "ok", f"a Chroma server ({health.state}); files not checked")
        return
    if probe.others:
        probe.add("files", "chroma", "ok", "not checked: open in another process")
        return
    try:
        check_files(store.layout.chroma, semantic.model.dimension)
    except IndexDamaged as exc:
        probe.chroma_damaged = True
        probe.add(
            "files", "chroma", "problem", str(exc), "rebuild it from the libSQL vectors", True
        )
        return
    except OSError as exc:
        probe.add("files", "chroma", "warning", f"not readable ({type(exc).__name__})")
        return
    probe.add("files", "chroma", "ok", "its files pass the checks made before chromadb opens them")


# ---- drift, backlog, sessions -----------------------------------------------------------


def _drift_findings(probe: Probe, drift: IndexDrift) -> None:
    def one(check: str, store: str, count: int | None, what: str, repair: str) -> None:
        if count:
            probe.add(check, store, "problem", f"{count} {what}", repair, repairable=True)

    one(
        "drift",
        "log",
        drift.unsegmented,
        "consolidated messages are in no segment",
        "consolidate them again",
    )
    one(
        "drift",
        "semantic",
        drift.orphan_segments,
        "segments were made only from messages the log no longer holds",
        "delete those segments",
    )
    one("drift", "fts", drift.fts_missing, "segments have no FTS5 row", "rebuild the FTS5 index")
    one("drift", "fts", drift.fts_extra, "FTS5 rows have no segment", "rebuild the FTS5 index")
    one(
        "drift",
        "chroma",
        drift.chroma_missing,
        "current vectors are missing from Chroma",
        "rebuild Chroma from the libSQL vectors",
    )
    one(
        "drift",
        "chroma",
        drift.chroma_extra,
        "Chroma ids belong to no live segment",
        "rebuild Chroma from the libSQL vectors",
    )
    if drift.unindexed:
        probe.add(
            "drift",
            "semantic",
            "warning",
            f"{drift.unindexed} segments have no vector and no queued work",
            "queue them for indexing",
            repairable=True,
        )
    if drift.chroma_note:
        probe.add("drift", "chroma", "ok", f"Chroma ids not compared: {drift.chroma_note}")
    if drift.ok:
        compared = "" if drift.chroma_missing is None else f", {drift.chroma_ids} Chroma ids"
        probe.add(
            "drift",
            "semantic",
            "ok",
            f"{drift.messages} messages, {drift.segments} segments, {drift.fts_rows} FTS5 "
            f"rows, {drift.vectors} vectors{compared}: in agreement",
        )


def check_drift(probe: Probe) -> None:
    """Log vs segments vs FTS5 vs vectors vs Chroma (``aico.operations.drift``)."""
    if probe.broken & {"core", "conversations"}:
        probe.add("drift", "semantic", "warning", "not checked: a database it needs is damaged")
        return
    if probe.fts_damaged:
        probe.add("drift", "fts", "warning", "FTS5 rows not counted: the index is damaged")
    store = probe.store
    try:
        drift = measure_drift(
            store.connection("core"),
            store.connection("conversations"),
            semantic=None,
            chroma_dir=None
            if probe.config.get("memory.semantic.chroma_url")
            else (store.layout.chroma),
            read_catalog=not probe.others and not probe.chroma_damaged,
        )
    except AicoError as exc:
        probe.add("drift", "semantic", "problem", f"not measured ({type(exc).__name__}: {exc})")
        return
    probe.drift = drift
    if probe.fts_damaged:
        drift = _without_fts(drift)
    _drift_findings(probe, drift)


def _without_fts(drift: IndexDrift) -> IndexDrift:
    from dataclasses import replace

    return replace(drift, fts_missing=0, fts_extra=0)


def check_backlog(probe: Probe) -> None:
    """Work a crash or a failure left queued: replayed by the repair."""
    if probe.broken & {"core", "conversations"}:
        return
    core = probe.store.connection("core")
    log = probe.store.connection("conversations")
    counts = {
        "semantic outbox rows": int(core.fetch_value("SELECT count(*) FROM semantic_outbox") or 0),
        "of them failed before": int(
            core.fetch_value("SELECT count(*) FROM semantic_outbox WHERE attempts > 0") or 0
        ),
        "working-memory appends unconfirmed": int(
            log.fetch_value("SELECT count(*) FROM working_outbox") or 0
        ),
        "forgets unfinished": int(
            log.fetch_value("SELECT count(*) FROM forget_ledger WHERE completed_at IS NULL") or 0
        ),
        "consolidations pending": int(
            log.fetch_value("SELECT count(*) FROM compaction_history WHERE status = 'pending'") or 0
        ),
    }
    queued = {k: v for k, v in counts.items() if v}
    if not queued:
        probe.add("backlog", "log", "ok", "nothing queued")
        return
    detail = ", ".join(f"{v} {k}" for k, v in queued.items())
    probe.add(
        "backlog",
        "log",
        "warning",
        detail,
        "replay the outbox and finish the work",
        repairable=True,
    )


def check_sessions(probe: Probe) -> None:
    """Session rows against the log's messages, and working memory against the log."""
    if "conversations" in probe.broken:
        return
    log = probe.store.connection("conversations")
    miscounted = int(
        log.fetch_value(
            "SELECT count(*) FROM session_metadata s WHERE message_count != "
            "(SELECT count(*) FROM messages m WHERE m.session_id = s.session_id)"
        )
        or 0
    )
    if miscounted:
        probe.add(
            "sessions",
            "log",
            "problem",
            f"{miscounted} sessions' message counts differ from their messages",
            "recount them from the log",
            repairable=True,
        )
    working = probe.working
    if working is None:
        return
    try:
        held = working.message_ids()
    except AicoError as exc:
        probe.add(
            "sessions",
            "working_memory",
            "problem",
            f"unreadable ({type(exc).__name__})",
            "move it aside and rebuild it from the log",
            repairable=True,
        )
        probe.working_damaged = True
        return
    known = {str(r["id"]) for r in log.fetch_all("SELECT id FROM messages")}
    phantoms = sum(1 for _, message_id in held if message_id not in known)
    expected = {
        str(r["id"])
        for r in log.fetch_all(
            "SELECT m.id FROM messages m JOIN session_metadata s ON s.session_id = m.session_id "
            "WHERE s.working_memory_expires_at > ? AND m.timestamp > ? "
            "AND m.id NOT IN (SELECT message_id FROM working_outbox)",
            (probe.now, probe.now - working.ttl),
        )
    }
    missing = len(expected - {message_id for _, message_id in held})
    _session_findings(probe, phantoms, missing, len(expected))


def _session_findings(probe: Probe, phantoms: int, missing: int, expected: int) -> None:
    if phantoms:
        probe.add(
            "sessions",
            "working_memory",
            "problem",
            f"{phantoms} messages in working memory are not in the log",
            "remove them",
            repairable=True,
        )
    if missing:
        probe.add(
            "sessions",
            "working_memory",
            "problem",
            f"{missing} of {expected} recent "
            "messages of live sessions are missing from working memory",
            "restore them from the log",
            repairable=True,
        )
    if not phantoms and not missing:
        probe.add(
            "sessions",
            "working_memory",
            "ok",
            f"agrees with the log ({expected} recent messages of live sessions)",
        )


CHECKS: Final[tuple[Callable[[Probe], None], ...]] = (
    check_databases,
    check_working,
    check_semantic,
    check_drift,
    check_backlog,
    check_sessions,
)
"""In order: each may use what the earlier ones found (``Probe``)."""
