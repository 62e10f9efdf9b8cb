"""``aico health|doctor|maintenance``: the state of a data dir, its repair and its jobs.

- ``aico health [--json] [--no-drift]``: ``aico.operations.health.health_report`` on a
  manager opened read-only (it writes nothing, with or without ``--read-only``); exit 1
  when the status is ``critical``.
- ``aico doctor [--repair] [--yes] [--json]``: ``aico.operations.doctor.doctor``; exit 1
  while a problem stands (after the repair, with ``--repair``).
- ``aico maintenance run [JOB] [--dry-run] [--json]``: one job or all of them, recorded in
  the tasks table like the service's scheduler records them; ``--dry-run`` opens the data
  dir read-only and reports what each would do. ``aico maintenance list``: the jobs.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any

import click
from rich.text import Text

from aico.ai.memory import MemoryManager
from aico.ai.memory.stores import (
    configured_encoder,
    open_data_store,
    open_semantic,
    open_working,
)
from aico.ai.memory.upgrade import upgrade_store
from aico.cli._common import CliState, emit_json, handle_errors, pass_state
from aico.cli.admin._output import fields, line, table, when
from aico.operations.compaction import compact_working_memory
from aico.operations.doctor import DoctorReport, Finding, doctor
from aico.operations.health import HealthReport, health_report
from aico.operations.jobs import JOBS, JobReport, job_interval, run_job, run_recorded


@contextmanager
def _read_manager(state: CliState) -> Iterator[MemoryManager]:
    """A manager that writes nothing: every store read-only, no repair, and no model check
    (a report on a data dir whose vectors need a re-embedding is still a report)."""
    config = state.config
    store = open_data_store(state.layout, config=config, read_only=True)
    try:
        working = open_working(store, config, read_only=True)
        try:
            semantic = open_semantic(
                store, config, configured_encoder(config), check_model=False, read_only=True
            )
        except BaseException:
            working.close()
            raise
        manager = MemoryManager(
            store, working, semantic, config=config, repair=False, read_only=True
        )
    except BaseException:
        store.close()
        raise
    try:
        yield manager
    finally:
        manager.close()


def _size(n: float | None) -> str:
    if n is None:
        return ""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"  # pragma: no cover


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


# ---- health -----------------------------------------------------------------------------


def _print_health(report: HealthReport) -> None:
    line(f"status     {report.status}" + (" (read-only)" if report.read_only else ""))
    for alert in report.alerts:
        line(f"  - {alert}")
    table(
        ["store", "size", "files", "growth/day"],
        [(s.name, _size(s.bytes), s.files, _size(s.growth_bytes_per_day)) for s in report.stores],
    )
    disk, backlog, expired = report.disk, report.backlog, report.expired
    drift, cache, errors = report.drift, report.cache, report.errors
    pairs: list[tuple[str, Any]] = [
        (
            "disk",
            f"{disk.used_fraction:.0%} used of {_size(disk.total_bytes)} "
            f"(alert at {disk.threshold:.0%})",
        ),
        (
            "backlog",
            f"semantic outbox {backlog.semantic_outbox} "
            f"({backlog.semantic_outbox_failing} failing), working outbox "
            f"{backlog.working_outbox}, forgets {backlog.forgets_pending}, "
            f"consolidations {backlog.consolidations_pending}",
        ),
        (
            "expired",
            f"working entries {expired.working_entries}, sessions {expired.sessions}, "
            f"file scores {expired.file_scores} (swept by expired-cleanup)",
        ),
        (
            "index",
            f"{report.index['state']}"
            + (f" ({report.index['reason']})" if report.index["reason"] else ""),
        ),
    ]
    if drift is not None:
        chroma = (
            f"{drift.chroma_ids} Chroma ids ({drift.chroma_missing} missing, "
            f"{drift.chroma_extra} extra)"
            if drift.chroma_ids is not None
            else f"Chroma not compared: {drift.chroma_note}"
        )
        pairs.append(
            (
                "drift",
                f"{drift.messages} messages, {drift.segments} segments "
                f"({drift.unsegmented} messages unsegmented, "
                f"{drift.orphan_segments} orphaned), {drift.fts_rows} FTS5 rows "
                f"({drift.fts_missing} missing, {drift.fts_extra} extra), "
                f"{drift.vectors} vectors ({drift.unindexed} unindexed), "
                f"{chroma}",
            )
        )
    coverage = "-" if cache.working_coverage is None else f"{cache.working_coverage:.0%}"
    pairs += [
        (
            "cache",
            f"working memory holds {cache.working_held} of {cache.working_expected} "
            f"recent messages of live sessions ({coverage})",
        ),
        (
            "errors",
            f"{errors.failed_runs_24h} failed job runs (24 h), {errors.outbox_errors} "
            f"outbox errors, {errors.log_errors_24h} logged errors (24 h); this "
            f"process: {errors.process.errors} errors, {errors.process.warnings} "
            "warnings",
        ),
        ("slow", _slow_line(report)),
        (
            "backup",
            f"{report.backup.count} archives, newest {_age(report.backup.age_s)} ago"
            if report.backup.count
            else "no backup",
        ),
    ]
    fields(pairs)
    if report.maintenance:
        table(
            ["job", "status", "last run", "took", "next run", "last error"],
            [
                (
                    j.name,
                    j.status,
                    when(j.last_run_at),
                    "" if j.last_duration_s is None else f"{j.last_duration_s:.2f}s",
                    when(j.next_run_at),
                    Text(j.last_error or ""),
                )
                for j in report.maintenance
            ],
        )


def _slow_line(report: HealthReport) -> str:
    slow = report.slow_queries
    if not slow.active:
        return "not logged in this process (the service logs them: /v1/health)"
    text = f"{slow.total} statements over {slow.threshold_s:g}s"
    if slow.slowest:
        worst = slow.slowest[0]
        text += f"; slowest {worst.max_s * 1e3:.0f} ms: {worst.shape}"
    return text


@click.command("health")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--no-drift", is_flag=True, help="Skip the drift count (reads every id).")
@pass_state
@handle_errors
def health_cmd(state: CliState, as_json: bool, no_drift: bool) -> None:
    """Sizes, disk, backlog, drift, slow statements, errors, backups, jobs. Writes nothing."""
    with _read_manager(state) as manager:
        report = health_report(manager, drift=not no_drift)
    if as_json:
        emit_json(report.to_dict())
    else:
        _print_health(report)
    if report.status == "critical":
        sys.exit(1)


# ---- doctor -----------------------------------------------------------------------------


def _finding_rows(findings: tuple[Finding, ...], *, all_rows: bool) -> list[tuple[Any, ...]]:
    return [
        (f.status, f.store, f.check, Text(f.detail), Text(f.repair or ""))
        for f in findings
        if all_rows or f.status != "ok"
    ]


def _print_doctor(report: DoctorReport, *, verbose: bool) -> None:
    columns = ["status", "store", "check", "found", "remedy"]
    table(columns, _finding_rows(report.findings, all_rows=verbose))
    if report.repaired:
        line("repair:")
        for action in report.repaired:
            mark = "done" if action.done else "to do"
            line(f"  [{mark}] {action.store}: {action.detail}")
    if report.after is not None:
        line("after the repair:")
        rows = _finding_rows(report.after, all_rows=False)
        if rows:
            table(columns, rows)
        else:
            line("  nothing left to report")
    line(f"doctor: {report.status} ({report.took_s:.1f}s)")


@click.command("doctor")
@click.option("--repair", is_flag=True, help="Repair what can be repaired from the log.")
@click.option("--yes", is_flag=True, help="Restore a verified backup without asking.")
@click.option("--verbose", "-v", is_flag=True, help="Show the checks that passed too.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_state
@handle_errors
def doctor_cmd(state: CliState, repair: bool, yes: bool, verbose: bool, as_json: bool) -> None:
    """Check every store (integrity, seals, LMDB, FTS5, Chroma, drift, sessions).

    Without --repair nothing is written. --repair rebuilds FTS5 and Chroma from libSQL,
    working memory from the log, replays the outboxes, and for a damaged database offers
    the newest backup that verifies (AICO_PASSPHRASE is needed to verify one).
    """
    if repair:
        state.require_writable()

    def choose(databases: str, backup: Any) -> bool:
        if yes:
            return True
        if not sys.stdin.isatty():
            return False
        return bool(
            click.confirm(
                f"{databases} damaged: restore backup {backup.id} over the whole data dir?"
            )
        )

    report = doctor(
        state.layout,
        repair=repair,
        config=state.config,
        passphrase=os.environ.get("AICO_PASSPHRASE") or None,
        choose=choose,
    )
    if as_json:
        emit_json(report.to_dict())
    else:
        _print_doctor(report, verbose=verbose)
    if report.status == "problem":
        sys.exit(1)


# ---- maintenance ------------------------------------------------------------------------


@click.group("maintenance")
def maintenance_group() -> None:
    """Scheduled upkeep and retention policies (docs/operations.md)."""


@maintenance_group.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_state
@handle_errors
def list_cmd(state: CliState, as_json: bool) -> None:
    """Every job, its period and what it does."""
    rows = [(s.name, job_interval(s.name, state.config), s.summary) for s in JOBS.values()]
    if as_json:
        emit_json([{"job": n, "every_s": every, "summary": what} for n, every, what in rows])
        return
    table(["job", "every", "what"], [(n, _age(every), what) for n, every, what in rows])


def _print_runs(reports: list[JobReport]) -> None:
    for r in reports:
        verb = "would" if r.dry_run else "did"
        state = f"skipped: {r.skipped}" if r.skipped else verb
        counts = ", ".join(f"{k} {v}" for k, v in r.done.items())
        line(f"{r.job}: {state}" + (f" ({counts})" if counts else ""))
        if r.note:
            line(f"  {r.note}")
        for name, ids in r.details.items():
            if ids:
                line(f"  {name}: {', '.join(ids)}")


@maintenance_group.command("run")
@click.argument("job", required=False, type=click.Choice(list(JOBS)))
@click.option("--dry-run", is_flag=True, help="Report what would change; change nothing.")
@click.option("--json", "as_json", is_flag=True)
@pass_state
@handle_errors
def run_cmd(state: CliState, job: str | None, dry_run: bool, as_json: bool) -> None:
    """Run JOB (default: every job, in order) now and record the run."""
    names = [job] if job else list(JOBS)
    if dry_run:
        with _read_manager(state) as manager:
            reports = [run_job(manager, name, dry_run=True) for name in names]
    else:
        reports = _run_writable(state, names)
    if as_json:
        emit_json([asdict(r) for r in reports])
    else:
        _print_runs(reports)


def _run_writable(state: CliState, names: list[str]) -> list[JobReport]:
    state.require_writable()
    store = open_data_store(state.layout, config=state.config)
    try:
        compacted: JobReport | None = None
        if "lmdb-compact" in names:
            # Before any store opens working memory: the copy needs it closed.
            started = time.time()
            if store.other_holders():
                done: dict[str, Any] = {"skipped": "the data dir is open in another process"}
            else:
                done = compact_working_memory(store.layout, dry_run=False)
            skipped = done.pop("skipped", None)
            compacted = JobReport("lmdb-compact", False, started, time.time(), done, skipped)
        upgrade_store(store)
        manager = MemoryManager.from_store(
            store, config=state.config, encoder=configured_encoder(state.config)
        )
    except BaseException:
        store.close()
        raise
    try:
        return [
            run_recorded(manager, name, report=compacted if name == "lmdb-compact" else None)
            for name in names
        ]
    finally:
        manager.close()


def register(cli: click.Group) -> None:
    """Add this module's commands to the ``aico`` group."""
    cli.add_command(health_cmd)
    cli.add_command(doctor_cmd)
    cli.add_command(maintenance_group)
