"""``aico serve`` / ``aico tokens`` / ``aico tasks``: the companion backend's commands.

``aico_backend`` (FastAPI, uvicorn) is imported inside the commands, so the rest of the CLI
does not pay for it. Tokens are printed once, by ``tokens create``, and never again.
"""

from __future__ import annotations

import datetime as dt
import sys
from typing import Any

import click

from aico.cli._common import CliState, emit_json, handle_errors, pass_state
from aico.data.store import DataStore
from aico.errors import InvalidInput, SchemaError

__all__ = ["register"]


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _open(state: CliState, *, write: bool) -> DataStore:
    """The data dir's store; a writing verb first brings its schemas to head."""
    from aico.ai.memory.upgrade import upgrade_store

    store = state.open_store(write=write)
    try:
        if write:
            upgrade_store(store)
    except BaseException:
        store.close()
        raise
    return store


def _require_table(store: DataStore, table: str) -> None:
    found = store.connection("core").fetch_value(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
    )
    if found is None:
        raise SchemaError(f"the core database has no {table} table yet; run 'aico db migrate'")


def _table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    Console().print(table)


# ---- serve ---------------------------------------------------------------------------


@click.command("serve")
@click.option("--host", default=None, help="Address to bind (default: backend.host).")
@click.option(
    "--port", type=click.IntRange(1, 65535), default=None, help="Port (default: backend.port)."
)
@click.option(
    "--uds",
    type=click.Path(dir_okay=False),
    default=None,
    help="Listen on this Unix socket instead of TCP.",
)
@click.option("--log-level", default="info", show_default=True)
@pass_state
@handle_errors
def serve_cmd(
    state: CliState, host: str | None, port: int | None, uds: str | None, log_level: str
) -> None:
    """Run the companion backend until SIGTERM or Ctrl-C (stores are sealed on the way out).

    The data dir is unlocked here, before the server starts (keyring, AICO_PASSPHRASE,
    AICO_PASSPHRASE_FILE or a prompt); no request can unlock it.
    """
    from aico_backend import BackendSettings, open_memory, serve

    settings = BackendSettings.from_config(state.config).bound(host=host, port=port)
    if uds is not None:
        settings = settings.with_uds(uds)
    if not settings.loopback and settings.uds is None:
        click.echo(
            f"warning: listening on {settings.host}, beyond this machine; every request "
            "still needs a token",
            err=True,
        )
    memory = open_memory(state.config, state.data_dir)
    where = f"unix:{settings.uds}" if settings.uds else f"http://{settings.host}:{settings.port}"
    click.echo(f"aico backend on {where} (data dir {state.data_dir})", err=True)
    try:
        serve(memory, settings, log_level=log_level)
    except KeyboardInterrupt:
        sys.exit(0)


# ---- tokens --------------------------------------------------------------------------


def _token_repo(store: DataStore) -> Any:
    from aico.data.repositories import TOKEN_HASH_PURPOSE, TokenRepository

    return TokenRepository(
        store.connection("core"),
        store.master_key.subkey(TOKEN_HASH_PURPOSE),
        key_id=store.master_key.key_id,
    )


@click.group("tokens")
def tokens_group() -> None:
    """Bearer tokens of the backend: one per user device, and one admin token."""


@tokens_group.command("create")
@click.option("--user", "user_id", default=None, help="The user this token acts for.")
@click.option("--admin", is_flag=True, help="The admin token (acts for every user).")
@click.option("--label", default=None, help="A name for the device, e.g. 'phone'.")
@click.option("--replace", is_flag=True, help="With --admin: revoke the current admin token.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_state
@handle_errors
def tokens_create_cmd(
    state: CliState,
    user_id: str | None,
    admin: bool,
    label: str | None,
    replace: bool,
    as_json: bool,
) -> None:
    """Create a token and print it once: it is stored only as a keyed hash."""
    if admin == (user_id is not None):
        raise InvalidInput("give exactly one of --user ID or --admin")
    if replace and not admin:
        raise InvalidInput("--replace goes with --admin")
    with _open(state, write=True) as store:
        row, token = _token_repo(store).create(user_id, admin=admin, label=label, replace=replace)
    if as_json:
        emit_json(
            {"token_id": row.token_id, "scope": row.scope, "user_id": row.user_id, "token": token}
        )
        return
    who = "admin" if admin else f"user {user_id}"
    click.echo(f"token {row.token_id} for {who} (shown once; keep it safe):")
    click.echo(token)


@tokens_group.command("revoke")
@click.argument("token_id")
@pass_state
@handle_errors
def tokens_revoke_cmd(state: CliState, token_id: str) -> None:
    """Revoke a token by its id (``aico tokens list`` shows the ids)."""
    with _open(state, write=True) as store:
        row = _token_repo(store).revoke(token_id)
    click.echo(f"revoked token {row.token_id} at {_when(row.revoked_at)} UTC")


@tokens_group.command("list")
@click.option("--user", "user_id", default=None, help="Only this user's tokens.")
@click.option("--all", "include_revoked", is_flag=True, help="Include revoked tokens.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_state
@handle_errors
def tokens_list_cmd(
    state: CliState, user_id: str | None, include_revoked: bool, as_json: bool
) -> None:
    """Tokens by id, scope, user and use (never the tokens themselves)."""
    with _open(state, write=False) as store:
        _require_table(store, "api_tokens")
        current = store.master_key.key_id
        rows = _token_repo(store).list(user_id=user_id, include_revoked=include_revoked)
    if as_json:
        emit_json(
            {
                "tokens": [
                    {
                        "token_id": r.token_id,
                        "scope": r.scope,
                        "user_id": r.user_id,
                        "label": r.label,
                        "created_at": r.created_at,
                        "last_used_at": r.last_used_at,
                        "revoked_at": r.revoked_at,
                        "valid_under_current_key": r.key_id == current,
                    }
                    for r in rows
                ]
            }
        )
        return
    _table(
        "tokens",
        ["id", "scope", "user", "label", "created (UTC)", "last used", "state"],
        [
            [
                r.token_id,
                r.scope,
                r.user_id or "-",
                r.label or "-",
                _when(r.created_at),
                _when(r.last_used_at),
                "revoked"
                if r.revoked_at is not None
                else ("active" if r.key_id == current else "void (master key rotated)"),
            ]
            for r in rows
        ],
    )


# ---- tasks ---------------------------------------------------------------------------


@click.group("tasks")
def tasks_group() -> None:
    """The backend scheduler's jobs (the core tasks table)."""


@tasks_group.command("list")
@click.option(
    "--history",
    type=click.IntRange(0, 1000),
    default=10,
    show_default=True,
    help="Also show this many of the latest finished runs.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_state
@handle_errors
def tasks_list_cmd(state: CliState, history: int, as_json: bool) -> None:
    """Each job's schedule, status, attempts, last and next run, last error; recent runs."""
    from aico.data.repositories import TaskRepository

    with _open(state, write=False) as store:
        repo = TaskRepository(store.connection("core"))
        jobs = repo.jobs()
        runs = repo.history(limit=history) if history else []
    if as_json:
        from dataclasses import asdict

        emit_json({"jobs": [asdict(j) for j in jobs], "history": [asdict(r) for r in runs]})
        return
    _table(
        "jobs",
        ["job", "schedule", "status", "attempts", "last run (UTC)", "next run", "last error"],
        [
            [
                j.task_id,
                j.schedule or "-",
                j.status,
                str(j.attempts),
                _when(j.last_run_at),
                _when(j.next_run_at),
                j.last_error or "-",
            ]
            for j in jobs
        ],
    )
    if runs:
        _table(
            "recent runs",
            ["job", "status", "started (UTC)", "seconds", "error"],
            [
                [
                    r.task_type,
                    r.status,
                    _when(r.last_run_at),
                    f"{r.payload.get('duration_s', 0):.3f}",
                    r.last_error or "-",
                ]
                for r in runs
            ],
        )


def register(cli: click.Group) -> None:
    """Add this module's commands to the ``aico`` group."""
    cli.add_command(serve_cmd)
    cli.add_command(tokens_group)
    cli.add_command(tasks_group)
