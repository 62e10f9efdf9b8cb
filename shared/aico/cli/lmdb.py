"""``aico lmdb …``: the working-memory cache (status, sweep, ls)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager

import click

from aico.ai.memory.stores import open_working
from aico.ai.memory.working import WorkingMemoryStore, list_session, status, sweep
from aico.cli._common import CliState, emit_json, handle_errors, pass_state


@contextmanager
def _open(state: CliState, *, write: bool = False) -> Iterator[WorkingMemoryStore]:
    with state.open_store(write=write) as store:
        wm = open_working(store, state.config, read_only=state.read_only)
        try:
            yield wm
        finally:
            wm.close()


@click.group("lmdb")
def lmdb_group() -> None:
    """Working memory: the sealed 24-hour LMDB cache."""


@lmdb_group.command("status")
@click.option("--json", "as_json", is_flag=True)
@pass_state
@handle_errors
def status_cmd(state: CliState, as_json: bool) -> None:
    """Entries, sessions, bytes and expired entries waiting for the sweeper."""
    with _open(state) as wm:
        info = status(wm)
    if as_json:
        emit_json(info)
        return
    for key in sorted(info):
        click.echo(f"{key:<16}{info[key]}")


@lmdb_group.command("sweep")
@click.option("--limit", type=int, default=None, help="Remove at most this many entries.")
@pass_state
@handle_errors
def sweep_cmd(state: CliState, limit: int | None) -> None:
    """Remove expired entries now (reads the expiry index, not every entry)."""
    with _open(state, write=True) as wm:
        removed = sweep(wm, limit=limit)
    click.echo(f"removed {removed} expired entries")


@lmdb_group.command("ls")
@click.option("--session", "session_id", required=True, help="Session id.")
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@pass_state
@handle_errors
def ls_cmd(state: CliState, session_id: str, limit: int, as_json: bool) -> None:
    """A session's live messages, decrypted (needs the key: for the key holder only)."""
    with _open(state) as wm:
        messages = list_session(wm, session_id, limit=limit)
    if as_json:
        emit_json(
            [
                {
                    "id": m.id,
                    "role": m.role,
                    "content": m.content,
                    "created_at": m.created_at,
                    "expires_at": m.expires_at,
                }
                for m in messages
            ]
        )
        return
    for m in messages:
        when = dt.datetime.fromtimestamp(m.created_at).isoformat(timespec="seconds")
        click.echo(f"{when} {m.role:<9} {m.content}")
