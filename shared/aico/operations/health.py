"""``health_report(manager)``: the state of a data dir, for ``aico health`` and ``/v1/health``.

It only reads, so it works on a read-only manager (``aico --read-only health``) and writes
nothing there; the numbers come from the stores themselves:

- **stores**: bytes and files of each database (with its ``-wal``), working memory, the
  Chroma directory and the backups; growth per day against the oldest size the
  ``health-check`` job recorded (its runs are kept in the tasks table);
- **disk**: the data dir's file system, against ``disk_usage_alert_threshold``;
- **backlog**: semantic outbox rows (and those that failed at least once), working-memory
  appends not confirmed, forgets and consolidations still pending;
- **expired**: working-memory entries past their time and not swept yet, active sessions
  whose working memory ran out, expired file scores;
- **drift** (``aico.operations.drift``): log vs segments vs FTS5 rows vs vectors vs Chroma
  ids; ``index``: the Chroma index's condition;
- **slow statements** and **process errors** (``aico.operations.monitoring``; this
  process only), failed job runs and outbox errors from the stores;
- **cache**: working memory's coverage of the recent turns the log holds for live
  sessions: the share of ``recent()`` reads it serves without the log;
- **backup**: the newest archive in ``backups/`` and its age; **maintenance**: each
  scheduled job's last run.

Every field is JSON-able (``to_dict``); nothing in it is user content (counts, sizes,
store names, statement shapes, job names, error class names).
"""

from __future__ import annotations

import importlib
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

from aico.data.repositories import TaskRepository
from aico.errors import AicoError, ConfigError
from aico.operations._durations import parse_duration
from aico.operations.drift import IndexDrift, chroma_dir_of, measure_drift
from aico.operations.monitoring import ErrorCounts, SlowQueryStats, monitoring_snapshot
from aico.operations.settings import MonitoringSettings

if TYPE_CHECKING:
    from aico.ai.memory import MemoryManager

__all__ = [
    "Backlog",
    "BackupAge",
    "CacheStats",
    "DiskUsage",
    "ErrorSummary",
    "Expired",
    "HealthReport",
    "JobStatus",
    "StoreSize",
    "health_report",
]

Status = Literal["ok", "warning", "critical"]
_DAY: Final = 86_400.0
_HEALTH_JOB: Final = "health-check"
_RECENT_S: Final = _DAY  # failures and log errors are counted over the last day


@dataclass(frozen=True)
class StoreSize:
    """One store on disk; ``growth_bytes_per_day`` is None without an earlier size."""

    name: str
    path: str
    bytes: int
    files: int
    growth_bytes_per_day: float | None = None


@dataclass(frozen=True)
class DiskUsage:
    path: str
    total_bytes: int
    used_bytes: int
    free_bytes: int
    used_fraction: float
    threshold: float
    alert: bool


@dataclass(frozen=True)
class Backlog:
    semantic_outbox: int
    semantic_outbox_failing: int
    working_outbox: int
    forgets_pending: int
    consolidations_pending: int


@dataclass(frozen=True)
class Expired:
    working_entries: int | None
    sessions: int
    file_scores: int


@dataclass(frozen=True)
class CacheStats:
    """``working_coverage``: held / expected (None when no live session expects any)."""

    working_expected: int
    working_held: int
    working_coverage: float | None


@dataclass(frozen=True)
class ErrorSummary:
    failed_runs_24h: int
    outbox_errors: int
    log_errors_24h: int
    process: ErrorCounts


@dataclass(frozen=True)
class BackupAge:
    last_at: float | None
    age_s: float | None
    count: int
    alert: bool
    note: str | None = None


@dataclass(frozen=True)
class JobStatus:
    """A scheduled job's state and its newest recorded run."""

    name: str
    schedule: str | None
    status: str
    last_run_at: float | None
    next_run_at: float | None
    last_error: str | None
    last_duration_s: float | None = None
    last_result: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class HealthReport:
    """See the module docstring. ``status`` is the worst alert's level."""

    generated_at: float
    data_dir: str
    read_only: bool
    status: Status
    alerts: tuple[str, ...]
    stores: tuple[StoreSize, ...]
    disk: DiskUsage
    backlog: Backlog
    expired: Expired
    drift: IndexDrift | None
    index: dict[str, Any]
    slow_queries: SlowQueryStats
    cache: CacheStats
    errors: ErrorSummary
    backup: BackupAge
    maintenance: tuple[JobStatus, ...]
    took_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``json.dumps`` (dataclasses as dicts, tuples as lists)."""
        return asdict(self)

    def sizes(self) -> dict[str, int]:
        """``bytes.<store>`` per store: what the health job records for growth."""
        return {f"bytes.{s.name}": s.bytes for s in self.stores}


def _tree_bytes(path: Path) -> tuple[int, int]:
    if path.is_file():
        return path.stat().st_size, 1
    total = files = 0
    for root, _, names in os.walk(path):
        for name in names:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
                files += 1
            except OSError:
                continue
    return total, files


def _store_sizes(manager: MemoryManager) -> list[tuple[str, Path, int, int]]:
    layout = manager.store.layout
    found: list[tuple[str, Path, int, int]] = []
    for name, path in layout.databases.items():
        size = files = 0
        for part in (path, path.with_name(path.name + "-wal")):
            if part.exists():
                size += part.stat().st_size
                files += 1
        found.append((name, path, size, files))
    for name, path in (
        ("working_memory", layout.working_memory),
        ("chroma", layout.chroma),
        ("backups", layout.backups),
    ):
        size, files = _tree_bytes(path) if path.exists() else (0, 0)
        found.append((name, path, size, files))
    return found


def _growth(
    tasks: TaskRepository, sizes: list[tuple[str, Path, int, int]], now: float
) -> dict[str, float]:
    """Bytes per day since the oldest recorded health run that has each store's size."""
    runs = tasks.history(_HEALTH_JOB, limit=500)
    growth: dict[str, float] = {}
    for name, _, size, _ in sizes:
        key = f"bytes.{name}"
        for run in reversed(runs):  # oldest first
            result = run.payload.get("result") or {}
            when = run.last_run_at
            if key in result and when is not None and now - float(when) >= 60.0:
                growth[name] = (size - int(result[key])) / (now - float(when)) * _DAY
                break
    return growth


def _disk(manager: MemoryManager, threshold: float) -> DiskUsage:
    root = manager.store.layout.root
    usage = shutil.disk_usage(root)
    fraction = usage.used / usage.total if usage.total else 0.0
    return DiskUsage(
        str(root), usage.total, usage.used, usage.free, fraction, threshold, fraction >= threshold
    )


def _backlog(manager: MemoryManager) -> Backlog:
    core = manager.store.connection("core")
    log = manager.store.connection("conversations")
    row = core.fetch_one(
        "SELECT count(*) AS n, coalesce(sum(attempts > 0), 0) AS failing FROM semantic_outbox"
    ) or {"n": 0, "failing": 0}
    return Backlog(
        semantic_outbox=int(row["n"]),
        semantic_outbox_failing=int(row["failing"]),
        working_outbox=int(log.fetch_value("SELECT count(*) FROM working_outbox") or 0),
        forgets_pending=int(
            log.fetch_value("SELECT count(*) FROM forget_ledger WHERE completed_at IS NULL") or 0
        ),
        consolidations_pending=int(
            log.fetch_value("SELECT count(*) FROM compaction_history WHERE status = 'pending'") or 0
        ),
    )


def _expired(manager: MemoryManager, now: float) -> Expired:
    log = manager.store.connection("conversations")
    files = manager.store.connection("file_index")
    try:
        working: int | None = int(manager.working.stats()["expired_pending"])
    except AicoError:
        working = None
    return Expired(
        working_entries=working,
        sessions=int(
            log.fetch_value(
                "SELECT count(*) FROM session_metadata WHERE status = 'active' "
                "AND working_memory_expires_at <= ?",
                (now,),
            )
            or 0
        ),
        file_scores=int(
            files.fetch_value(
                "SELECT count(*) FROM file_relevance_scores WHERE expires_at IS NOT NULL AND "
                "(CASE WHEN typeof(expires_at) IN ('integer', 'real') THEN expires_at "
                "ELSE unixepoch(expires_at) END) <= ?",
                (now,),
            )
            or 0
        ),
    )


def _cache(manager: MemoryManager, now: float) -> CacheStats:
    """Working memory's share of the live sessions' recent log messages."""
    log = manager.store.connection("conversations")
    expected = {
        str(r["id"])
        for r in log.fetch_all(
            "SELECT m.id FROM messages m JOIN session_metadata s ON s.session_id = m.session_id "
            "WHERE s.working_memory_expires_at > ? AND m.timestamp > ?",
            (now, now - manager.working.ttl),
        )
    }
    try:
        held = {message_id for _, message_id in manager.working.message_ids()}
    except AicoError:
        held = set()
    hits = len(expected & held)
    return CacheStats(len(expected), hits, hits / len(expected) if expected else None)


def _errors(manager: MemoryManager, process: ErrorCounts, now: float) -> ErrorSummary:
    core = manager.store.connection("core")
    since = now - _RECENT_S
    return ErrorSummary(
        failed_runs_24h=int(
            core.fetch_value(
                "SELECT count(*) FROM tasks WHERE schedule IS NULL AND status = 'failed' "
                "AND last_run_at >= ?",
                (since,),
            )
            or 0
        ),
        outbox_errors=int(
            core.fetch_value("SELECT count(*) FROM semantic_outbox WHERE last_error IS NOT NULL")
            or 0
        ),
        log_errors_24h=int(
            core.fetch_value(
                "SELECT count(*) FROM logs WHERE level IN ('ERROR', 'CRITICAL') AND timestamp >= ?",
                (since,),
            )
            or 0
        ),
        process=process,
    )


def _backup_interval_s(manager: MemoryManager) -> float | None:
    """``storage.backup.backup_interval`` when backups are enabled there (else None)."""
    try:
        section = manager.config.section("storage.backup")
    except ConfigError:
        return None
    if not section.get("enabled", True) or "backup_interval" not in section:
        return None
    try:
        interval = parse_duration(section["backup_interval"], "storage.backup.backup_interval")
    except ConfigError:
        return None
    return interval or None  # "0s": backups are not scheduled


def _archives(manager: MemoryManager) -> list[float]:
    """Creation times of the backup archives (``aico.operations.backup`` lists them)."""
    try:
        backup: Any = importlib.import_module("aico.operations.backup")
        directory = backup.backup_directory(manager.store.layout, manager.config)
        return [float(info.created_at) for info in backup.list_backups(directory)]
    except (ImportError, AttributeError, AicoError):
        directory = manager.store.layout.backups
        if not directory.is_dir():
            return []
        return [p.stat().st_mtime for p in directory.iterdir() if p.is_file()]


def _backup(manager: MemoryManager, now: float) -> BackupAge:
    """The newest archive and its age; an alert when older than twice the interval."""
    created = _archives(manager)
    newest = max(created) if created else None
    age = None if newest is None else max(now - newest, 0.0)
    interval = _backup_interval_s(manager)
    alert = interval is not None and (age is None or age > 2 * interval)
    note = None if interval is not None else "no backup interval configured"
    return BackupAge(newest, age, len(created), alert, note)


def _maintenance(tasks: TaskRepository) -> tuple[JobStatus, ...]:
    jobs: list[JobStatus] = []
    for job in tasks.jobs():
        runs = tasks.history(job.task_id, limit=1)
        last = runs[0] if runs else None
        payload = last.payload if last is not None else {}
        jobs.append(
            JobStatus(
                name=job.task_id,
                schedule=job.schedule,
                status=job.status,
                last_run_at=job.last_run_at,
                next_run_at=job.next_run_at,
                last_error=job.last_error,
                last_duration_s=payload.get("duration_s"),
                last_result=dict(payload.get("result") or {}),
            )
        )
    return tuple(sorted(jobs, key=lambda j: j.name))


def _alerts(report: dict[str, Any]) -> list[tuple[Status, str]]:
    alerts: list[tuple[Status, str]] = []
    disk: DiskUsage = report["disk"]
    if disk.alert:
        level: Status = "critical" if disk.used_fraction >= 0.98 else "warning"
        alerts.append(
            (level, f"disk {disk.used_fraction:.0%} used (alert at {disk.threshold:.0%})")
        )
    index = report["index"]
    if index["state"] != "ok":
        alerts.append(("warning", f"semantic index {index['state']} ({index['reason']})"))
    drift: IndexDrift | None = report["drift"]
    if drift is not None and not drift.ok:
        alerts.append(("warning", "index drift: run 'aico doctor' for details"))
    backlog: Backlog = report["backlog"]
    if backlog.semantic_outbox_failing:
        alerts.append(("warning", f"{backlog.semantic_outbox_failing} outbox rows are failing"))
    if backlog.forgets_pending:
        alerts.append(("warning", f"{backlog.forgets_pending} forgets are not finished"))
    backup: BackupAge = report["backup"]
    if backup.alert:
        alerts.append(("warning", "no recent backup"))
    for job in report["maintenance"]:
        if job.status == "failed":
            alerts.append(("warning", f"job {job.name} failed: {job.last_error}"))
    errors: ErrorSummary = report["errors"]
    if errors.process.errors:
        alerts.append(("warning", f"{errors.process.errors} errors logged by this process"))
    return alerts


def health_report(
    manager: MemoryManager,
    *,
    drift: bool = True,
    monitoring: MonitoringSettings | None = None,
) -> HealthReport:
    """The data dir's health (see the module docstring); reads only.

    ``drift=False`` skips the drift count, the one part that reads every message and
    segment id (measured in docs/operations.md), for a caller that asks often.
    """
    started = time.perf_counter()
    now = manager.clock()
    settings = monitoring or MonitoringSettings.from_config(manager.config)
    core = manager.store.connection("core")
    tasks = TaskRepository(core)
    sizes = _store_sizes(manager)
    growth = _growth(tasks, sizes, now)
    slow, process = monitoring_snapshot()
    measured: IndexDrift | None = None
    if drift:
        measured = measure_drift(
            core,
            manager.store.connection("conversations"),
            semantic=manager.semantic,
            chroma_dir=chroma_dir_of(manager),
            read_catalog=not manager.store.other_holders(),
        )
    parts: dict[str, Any] = {
        "disk": _disk(manager, settings.disk_usage_alert_threshold),
        "backlog": _backlog(manager),
        "expired": _expired(manager, now),
        "drift": measured,
        "index": asdict(manager.semantic.index_health()),
        "slow_queries": slow,
        "cache": _cache(manager, now),
        "errors": _errors(manager, process, now),
        "backup": _backup(manager, now),
        "maintenance": _maintenance(tasks),
    }
    alerts = _alerts(parts)
    status: Status = "ok"
    if alerts:
        status = "critical" if any(level == "critical" for level, _ in alerts) else "warning"
    return HealthReport(
        generated_at=now,
        data_dir=str(manager.store.layout.root),
        read_only=manager.read_only,
        status=status,
        alerts=tuple(text for _, text in alerts),
        stores=tuple(
            StoreSize(name, str(path), size, files, growth.get(name))
            for name, path, size, files in sizes
        ),
        took_s=time.perf_counter() - started,
        **parts,
    )
