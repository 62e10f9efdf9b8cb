"""``aico db …``: the migration runner's verbs (Alembic's, on a decorator registry)."""

from __future__ import annotations

import sys
from dataclasses import asdict
from typing import Any

import click

from aico.ai.memory.upgrade import upgrade_store
from aico.cli._common import CliState, emit_json, handle_errors, pass_state
from aico.data.store import DatabaseStatus, DataStore
from aico.errors import InvalidInput


def _open(state: CliState, *, write: bool = False) -> DataStore:
    return state.open_store(write=write)


def _status_rows(statuses: list[DatabaseStatus]) -> list[dict[str, Any]]:
    rows = []
    for db in statuses:
        for s in db.schemas:
            row = asdict(s)
            row["pending"] = list(s.pending)
            row["mismatched"] = list(s.mismatched)
            row["file_exists"] = db.exists
            rows.append(row)
    return rows


@click.group("db")
def db_group() -> None:
    """Schema versions of the encrypted databases: status, migrate, rollback, verify."""


@db_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--check", is_flag=True, help="Exit 1 unless every schema is at its latest version.")
@pass_state
@handle_errors
def status_cmd(state: CliState, as_json: bool, check: bool) -> None:
    """Per schema: current and latest version, pending versions, checksum state. Read-only."""
    with _open(state) as store:
        statuses = store.status()
    rows = _status_rows(statuses)
    if as_json:
        emit_json({"data_dir": str(state.data_dir), "schemas": rows})
    else:
        click.echo(f"data dir: {state.data_dir}")
        click.echo(
            f"{'database':<14}{'schema':<16}{'current':>8}{'latest':>8}  {'pending':<12}state"
        )
        for r in rows:
            pending = ",".join(str(n) for n in r["pending"]) or "-"
            click.echo(
                f"{r['database']!s:<14}{r['schema']!s:<16}{r['current']!s:>8}{r['latest']!s:>8}"
                f"  {pending:<12}{r['checksum_state']}"
            )
    if check and not all(r["checksum_state"] == "ok" and not r["pending"] for r in rows):
        click.echo("Error: not every schema is at its latest version", err=True)
        sys.exit(1)


@db_group.command("migrate")
@click.option("--to", "to", type=int, default=None, help="Target version (needs --schema).")
@click.option("--schema", default=None, help="Only this schema.")
@click.option("--database", default=None, help="Only this database.")
@click.option("--dry-run", is_flag=True, help="Show what would run; change nothing.")
@click.option("--json", "as_json", is_flag=True)
@pass_state
@handle_errors
def migrate_cmd(
    state: CliState,
    to: int | None,
    schema: str | None,
    database: str | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Apply pending versions, each in its own transaction."""
    with _open(state, write=not dry_run) as store:
        if database is None and schema is None and to is None and not dry_run:
            steps = upgrade_store(store)  # also moves a legacy message log
        else:
            steps = store.migrate(database=database, schema=schema, to=to, dry_run=dry_run)
    if as_json:
        emit_json(
            [
                {"database": db, "schema": s.schema, "version": s.version, "name": s.name}
                for db, s in steps
            ]
        )
        return
    verb = "would apply" if dry_run else "applied"
    for db, s in steps:
        click.echo(f"{verb} {db}/{s.schema} v{s.version}: {s.name}")
    if not steps:
        click.echo("nothing to do: every schema is at its latest version")


@db_group.command("rollback")
@click.option("--schema", required=True, help="The schema to roll back.")
@click.option("--to", "to", type=int, required=True, help="Version to end at (0 = none).")
@click.option("--dry-run", is_flag=True)
@pass_state
@handle_errors
def rollback_cmd(state: CliState, schema: str, to: int, dry_run: bool) -> None:
    """Run the code's rollback statements down to version --to."""
    with _open(state, write=not dry_run) as store:
        steps = store.rollback(schema=schema, to=to, dry_run=dry_run)
    verb = "would roll back" if dry_run else "rolled back"
    for db, s in steps:
        click.echo(f"{verb} {db}/{s.schema} v{s.version}: {s.name}")
    if not steps:
        click.echo("nothing to do")


@db_group.command("verify")
@pass_state
@handle_errors
def verify_cmd(state: CliState) -> None:
    """Check every applied version's checksum and every database's integrity."""
    with _open(state) as store:
        statuses = store.verify()
    for db in statuses:
        behind = [s.schema for s in db.schemas if s.pending]
        note = f" (pending: {', '.join(behind)})" if behind else ""
        click.echo(f"ok {db.database}{note}")


@db_group.command("accept-loss")
@click.argument("database")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_state
@handle_errors
def accept_loss_cmd(state: CliState, database: str, yes: bool) -> None:
    """Take DATABASE as it is after its write-ahead log was lost in a crash.

    Only for the refusal "is missing N committed transaction(s)": restoring a backup keeps
    those transactions; this drops them for good. Structural damage is still refused.
    """
    state.require_writable()
    if not yes:
        click.confirm(
            f"Committed transactions of '{database}' are lost for good. Go on?", abort=True
        )
    with _open(state, write=True) as store:
        if database not in store.databases:
            raise InvalidInput(f"no database named {database!r} in this data dir")
        store.accept_wal_loss(database)
    click.echo(f"accepted: {database} opens as it is from now on")
