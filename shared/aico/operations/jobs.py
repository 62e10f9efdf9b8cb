"""Maintenance jobs on the storage specification's schedule, and how a run is recorded.

==========================  =========  ==================================================
job                         every      what it does (``--dry-run``: what it would do)
==========================  =========  ==================================================
``expired-cleanup``         day        expired working memory, sessions, file scores,
                                       leftovers (``retention.sweep_expired``)
``file-versions``           week       ``file_version_*`` retention (``retention``)
``optimize``                week       ``PRAGMA optimize`` + incremental vacuum
                                       (``compaction.optimize_databases``)
``index-compact``           30 days    FTS5 optimize; Chroma rebuilt when needed
``lmdb-compact``            30 days    compact copy of working memory (nothing may have
                                       it open: the CLI runs it before opening the stores)
``archive-conversations``   91 days    ``conversation_archive_days`` and the per-user cap
``health-check``            ``health_check_interval``: sizes for growth, alerts logged
==========================  =========  ==================================================

``run_job(manager, name)`` runs one and returns a ``JobReport`` (``result()`` is the flat
mapping a scheduler records); it records nothing itself, so the backend's scheduler,
which claims and records runs in the tasks table, can run it as it is.
``run_recorded(manager, name)`` is the same run claimed and recorded the way the
scheduler does (``TaskRepository``: the job row with its schedule, ``start``,
``complete``/``fail``, one run row), which is how ``aico maintenance run`` leaves a trace
that health shows. A dry run only reads: it works on a read-only manager and records
nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

from aico.config import Config
from aico.data.repositories import TaskRepository
from aico.errors import AicoError, InvalidInput, ReadOnly
from aico.operations import compaction, retention
from aico.operations.health import health_report
from aico.operations.settings import LifecycleSettings, MonitoringSettings, PerformanceSettings

if TYPE_CHECKING:
    from aico.ai.memory import MemoryManager

__all__ = [
    "JOBS",
    "SERVICE_JOBS",
    "JobReport",
    "JobSpec",
    "job_interval",
    "run_job",
    "run_recorded",
]

log = logging.getLogger("aico.operations.jobs")

_DAY: Final = 86_400.0
_RETRY_S: Final = 3600.0  # a failed run recorded by ``run_recorded`` is due again after this
_HISTORY_KEEP: Final = 50


@dataclass(frozen=True)
class JobSpec:
    """A job's name, period (None: ``health_check_interval``) and one line about it."""

    name: str
    every_s: float | None
    summary: str


JOBS: Final[Mapping[str, JobSpec]] = MappingProxyType(
    {
        spec.name: spec
        for spec in (
            JobSpec("expired-cleanup", _DAY, "expired working memory, sessions, caches"),
            JobSpec("file-versions", 7 * _DAY, "file version retention"),
            JobSpec("optimize", 7 * _DAY, "PRAGMA optimize and incremental vacuum"),
            JobSpec("index-compact", 30 * _DAY, "FTS5 optimize, Chroma rebuild when needed"),
            JobSpec("lmdb-compact", 30 * _DAY, "compact copy of working memory"),
            JobSpec("archive-conversations", 91 * _DAY, "conversation archival and cap"),
            JobSpec("health-check", None, "sizes for growth; alerts to the log"),
        )
    }
)
"""Every job by name, in the order ``aico maintenance run`` runs them all."""

SERVICE_JOBS: Final = tuple(name for name in JOBS if name != "lmdb-compact")
"""The jobs a running service can do (``lmdb-compact`` needs working memory closed)."""


def job_interval(name: str, config: Config) -> float:
    """The job's period in seconds (``health-check``: ``health_check_interval``)."""
    spec = _spec(name)
    if spec.every_s is not None:
        return spec.every_s
    return MonitoringSettings.from_config(config).health_check_interval_s


@dataclass(frozen=True)
class JobReport:
    """One run: when, what it did (``done``: counts; in a dry run what it would do), why
    it was skipped if it was, a ``note`` (a decision's reason), and ``details`` (ids, for
    display only: never recorded)."""

    job: str
    dry_run: bool
    started_at: float
    finished_at: float
    done: dict[str, Any] = field(default_factory=dict)
    skipped: str | None = None
    note: str | None = None
    details: dict[str, list[str]] = field(default_factory=dict)

    def result(self) -> dict[str, Any]:
        """The flat mapping a scheduler keeps with the run (counts and short strings)."""
        out: dict[str, Any] = dict(self.done)
        if self.dry_run:
            out["dry_run"] = True
        if self.skipped:
            out["skipped"] = self.skipped
        if self.note:
            out["note"] = self.note
        return out


def _spec(name: str) -> JobSpec:
    spec = JOBS.get(name) if isinstance(name, str) else None
    if spec is None:
        raise InvalidInput(f"unknown job; known: {', '.join(JOBS)}")
    return spec


@dataclass(frozen=True)
class _Run:
    done: dict[str, Any]
    details: dict[str, list[str]] = field(default_factory=dict)
    note: str | None = None


_Runner = Callable[["MemoryManager", float, bool], _Run]


def _policy(
    policy: Callable[[MemoryManager, LifecycleSettings, float, bool], retention.Outcome],
) -> _Runner:
    def run(manager: MemoryManager, now: float, dry_run: bool) -> _Run:
        outcome = policy(manager, LifecycleSettings.from_config(manager.config), now, dry_run)
        done: dict[str, Any] = dict(outcome.done)
        if outcome.skipped:
            done["skipped"] = outcome.skipped
        removed = any(isinstance(v, int) and v > 0 for v in outcome.done.values())
        if removed and not dry_run and manager.analytics.path.exists():
            # The analytics copy follows at once, not at its next export (ids, no text).
            done["analytics_removed"] = manager.analytics.after_retention().rows_removed
        return _Run(done, outcome.details)

    return run


def _optimize(manager: MemoryManager, now: float, dry_run: bool) -> _Run:
    return _Run(dict(compaction.optimize_databases(manager.store, dry_run=dry_run)))


def _index_compact(manager: MemoryManager, now: float, dry_run: bool) -> _Run:
    result = compaction.compact_indexes(
        manager,
        PerformanceSettings.from_config(manager.config),
        job="index-compact",
        dry_run=dry_run,
    )
    return _Run(result.done, note=result.rebuild_reason)


def _lmdb_compact(manager: MemoryManager, now: float, dry_run: bool) -> _Run:
    if dry_run:
        return _Run(dict(compaction.working_memory_usage(manager.store.layout)))
    if not manager.working.closed:
        return _Run({"skipped": "working memory is open (by this manager)"})
    return _Run(compaction.compact_working_memory(manager.store.layout, dry_run=False))


def _health_check(manager: MemoryManager, now: float, dry_run: bool) -> _Run:
    report = health_report(manager)
    if not dry_run:
        for alert in report.alerts:
            log.warning("health: %s", alert)
    done: dict[str, Any] = {
        "status": report.status,
        "alerts": len(report.alerts),
        "drift_ok": report.drift.ok if report.drift is not None else True,
        "took_s": round(report.took_s, 3),
        **report.sizes(),
    }
    return _Run(done, {"alerts": list(report.alerts)})


_RUNNERS: Final[Mapping[str, _Runner]] = MappingProxyType(
    {
        "expired-cleanup": _policy(retention.sweep_expired),
        "file-versions": _policy(retention.prune_file_versions),
        "optimize": _optimize,
        "index-compact": _index_compact,
        "lmdb-compact": _lmdb_compact,
        "archive-conversations": _policy(retention.archive_conversations),
        "health-check": _health_check,
    }
)


def run_job(manager: MemoryManager, name: str, *, dry_run: bool = False) -> JobReport:
    """Run one job now (see the module docstring); ``ReadOnly`` unless ``dry_run`` on a
    read-only manager. Records nothing."""
    spec = _spec(name)
    if manager.read_only and not dry_run:
        raise ReadOnly(f"job {spec.name} writes, and the data dir was opened read-only")
    started = manager.clock()
    run = _RUNNERS[spec.name](manager, started, dry_run)
    done = dict(run.done)
    skipped = done.pop("skipped", None)
    return JobReport(
        job=spec.name,
        dry_run=dry_run,
        started_at=started,
        finished_at=manager.clock(),
        done=done,
        skipped=None if skipped is None else str(skipped),
        note=run.note,
        details=run.details,
    )


def run_recorded(
    manager: MemoryManager,
    name: str,
    *,
    report: JobReport | None = None,
    keep: int = _HISTORY_KEEP,
) -> JobReport:
    """``run_job`` claimed and recorded in the tasks table as the scheduler records it.

    ``report``: a run already made elsewhere (``lmdb-compact`` before the stores opened)
    that only needs recording. A job another process is running right now is not run:
    the report says ``skipped``. A failed run is recorded (error type and aico's message,
    never content) and re-raised.
    """
    spec = _spec(name)
    if manager.read_only:
        raise ReadOnly(f"recording job {spec.name} writes, and the data dir is open read-only")
    tasks = TaskRepository(manager.store.connection("core"), clock=manager.clock)
    every = job_interval(spec.name, manager.config)
    tasks.schedule(spec.name, "maintenance", every=every)
    claimed = tasks.start(spec.name)
    if claimed is None:
        now = manager.clock()
        return JobReport(spec.name, False, now, now, skipped="running elsewhere")
    started = report.started_at if report is not None else manager.clock()
    try:
        report = report if report is not None else run_job(manager, spec.name)
    except AicoError as exc:
        error = f"{type(exc).__name__}: {exc}"
        tasks.fail(spec.name, error, next_run_at=manager.clock() + min(_RETRY_S, every))
        tasks.record_run(
            claimed,
            status="failed",
            started_at=started,
            finished_at=manager.clock(),
            error=error,
            keep=keep,
        )
        raise
    except BaseException:
        tasks.fail(spec.name, "interrupted", next_run_at=manager.clock())
        raise
    result = report.result()
    tasks.complete(spec.name, next_run_at=report.finished_at + every, result=result or None)
    tasks.record_run(
        claimed,
        status="completed",
        started_at=report.started_at,
        finished_at=report.finished_at,
        result=result,
        keep=keep,
    )
    return report
