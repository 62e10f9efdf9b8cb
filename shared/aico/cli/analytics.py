"""``aico analytics export|views|show|activity|usage|memory|system|sql|report``.

Thin wrappers over ``MemoryManager.analytics`` (``aico.analytics.Analytics``): parse,
call, format. ``export`` and ``report`` write the encrypted analytics copy (``report``
exports first unless ``--no-export``); the other verbs only read it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import click

from aico.analytics import VIEWS, Rows
from aico.cli._common import CliState, emit_json, handle_errors, pass_state
from aico.cli.admin import _output as out
from aico.cli.admin._open import open_manager

__all__ = ["register"]

AREAS: Final[dict[str, tuple[str, ...]]] = {
    "activity": ("activity_weekly", "sessions_weekly", "hour_heatmap"),
    "usage": ("usage_by_model",),
    "memory": ("contexts_daily", "feedback_daily", "facts_daily", "consolidation"),
    "system": ("store_sizes", "search_latency", "task_runs", "backups", "exports"),
}
_LIMIT = click.IntRange(1, 100_000)


def _print(name: str, rows: Rows, as_json: bool) -> None:
    if as_json:
        return
    out.line(f"{name}{' (truncated)' if rows.truncated else ''}")
    out.table(rows.columns, rows.rows)


@click.group("analytics")
def analytics_group() -> None:
    """Analytics over an encrypted DuckDB copy of ids, times and counts (no text)."""


@analytics_group.command("export")
@click.option("--json", "as_json", is_flag=True)
@pass_state
@handle_errors
def export_cmd(state: CliState, as_json: bool) -> None:
    """Bring the analytics copy up to date (only what changed since the last export)."""
    with open_manager(state, write=True) as manager:
        report = manager.analytics.export()
    if as_json:
        out.emit(report)
        return
    out.line(
        f"exported: {report.rows_added} rows added, {report.rows_removed} removed "
        f"in {report.seconds:.2f} s"
    )


@analytics_group.command("views")
@click.option("--json", "as_json", is_flag=True)
def views_cmd(as_json: bool) -> None:
    """The documented views ad-hoc SQL and ``show`` read."""
    if as_json:
        emit_json([{"name": v.name, "description": v.description} for v in VIEWS])
        return
    out.table(("view", "what"), [(v.name, v.description) for v in VIEWS])


@analytics_group.command("show")
@click.argument("view")
@click.option("--user", "user_id", default=None, help="Only this user's rows.")
@click.option("--limit", type=_LIMIT, default=200, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@pass_state
@handle_errors
def show_cmd(state: CliState, view: str, user_id: str | None, limit: int, as_json: bool) -> None:
    """The rows of one view (see ``aico analytics views``)."""
    with open_manager(state, write=False) as manager:
        rows = manager.analytics.view(view, user_id=user_id, limit=limit)
    if as_json:
        emit_json(rows.dicts())
        return
    _print(view, rows, as_json)


def _area(name: str, doc: str) -> None:
    @analytics_group.command(name, help=doc)
    @click.option("--user", "user_id", default=None, help="Only this user's rows.")
    @click.option("--json", "as_json", is_flag=True)
    @pass_state
    @handle_errors
    def cmd(state: CliState, user_id: str | None, as_json: bool) -> None:
        with open_manager(state, write=False) as manager:
            result = manager.analytics.views(AREAS[name], user_id=user_id)
        if as_json:
            emit_json({k: v.dicts() for k, v in result.items()})
            return
        for view, rows in result.items():
            _print(view, rows, as_json)


_area("activity", "Messages and sessions per week and role, and the hour-of-day heatmap.")
_area("usage", "Tokens and cost per provider and model.")
_area("memory", "Contexts, feedback, facts added/revisited/deleted, consolidation savings.")
_area("system", "Store sizes, context latency, maintenance/backup runs, exports.")


@analytics_group.command("sql")
@click.argument("query")
@click.option("--limit", type=_LIMIT, default=1000, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@pass_state
@handle_errors
def sql_cmd(state: CliState, query: str, limit: int, as_json: bool) -> None:
    """Run one read-only SELECT over the views (docs/analytics.md lists them)."""
    with open_manager(state, write=False) as manager:
        rows = manager.analytics.sql(query, limit=limit)
    if as_json:
        emit_json(rows.dicts())
        return
    _print("result", rows, as_json)


@analytics_group.command("report")
@click.option("--user", "user_id", default=None, help="Only this user's activity.")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
)
@click.option("--no-export", is_flag=True, help="Report on the copy as it is (read-only).")
@pass_state
@handle_errors
def report_cmd(state: CliState, user_id: str | None, out_dir: Path, no_export: bool) -> None:
    """Write a self-contained HTML report with charts (no script, nothing fetched)."""
    with open_manager(state, write=not no_export) as manager:
        if not no_export:
            manager.analytics.export()
        path = manager.analytics.report(out_dir, user_id=user_id)
    out.line(f"report written to {path}")


def register(cli: click.Group) -> None:
    """Add ``aico analytics`` to the ``aico`` group."""
    cli.add_command(analytics_group)
