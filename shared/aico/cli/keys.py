"""``aico init`` and ``aico keys …``: create, re-wrap, rotate and remember the master key."""

from __future__ import annotations

import click

from aico.ai.memory.manager import MemoryManager
from aico.ai.memory.stores import initialize_data_store, open_data_store
from aico.cli._common import (
    NEW_PASSPHRASE_ENV,
    CliState,
    handle_errors,
    pass_state,
    read_passphrase,
)
from aico.data.store import kdf_params_from_config
from aico.security import (
    ENV_PASSPHRASE,
    KeyFile,
    forget_from_keyring,
    remember_in_keyring,
)


@click.command("init")
@pass_state
@handle_errors
def init_cmd(state: CliState) -> None:
    """Create a new encrypted store: key file + every database at its latest schema."""
    state.require_writable()
    passphrase = read_passphrase("New passphrase", confirm=True, env_name=ENV_PASSPHRASE)
    with initialize_data_store(state.layout, passphrase, config=state.config) as store:
        key_id = store.master_key.key_id
    click.echo(f"created encrypted store in {state.data_dir} (key id {key_id})")


@click.group("keys")
def keys_group() -> None:
    """The master key: change passphrase, rotate (libSQL, working memory, index), keyring."""


@keys_group.command("change-passphrase")
@pass_state
@handle_errors
def change_passphrase_cmd(state: CliState) -> None:
    """Re-wrap the master key under a new passphrase (O(1): no data is rewritten)."""
    state.require_writable()
    path = state.layout.key_file
    old = read_passphrase("Current passphrase", confirm=False, env_name=ENV_PASSPHRASE)
    new = read_passphrase("New passphrase", confirm=True, env_name=NEW_PASSPHRASE_ENV)
    KeyFile.change_passphrase(path, old, new, kdf_params_from_config(state.config))
    click.echo("passphrase changed")


@keys_group.command("rotate")
@pass_state
@handle_errors
def rotate_cmd(state: CliState) -> None:
    """Generate a new master key and move every store to it.

    Covers every libSQL database (rekeyed), working memory (every LMDB entry re-sealed,
    nothing dropped) and the Chroma index (old vectors deleted, rebuilt from libSQL under
    the new keys). Crash-safe: an interrupted run is finished by running it again or by
    the next open with the passphrase. Refused, with the pids of the holders, while any
    other process has the data dir open.
    """
    state.require_writable()
    passphrase = read_passphrase("Passphrase", confirm=False, env_name=ENV_PASSPHRASE)
    service = state.config.get("security.keyring_service")
    # The rotation below resumes an interrupted one itself.
    store = open_data_store(
        state.layout, passphrase=passphrase, config=state.config, resume_rotation=False
    )
    try:
        report = MemoryManager.rotate_store(store, passphrase, config=state.config)
        if forget_from_keyring(report.old_key_id, service):
            remember_in_keyring(store.master_key, service)
    finally:
        store.close()
    click.echo(f"master key rotated: {report.old_key_id} -> {report.new_key_id}")
    wm = report.steps.get("working_memory", {})
    if wm.get("messages") or wm.get("values") or wm.get("sessions"):
        click.echo(
            f"working memory re-sealed: {wm['messages']} messages, {wm['values']} values, "
            f"{wm['sessions']} sessions"
        )
    dropped = wm.get("dropped_unreadable", 0) + wm.get("dropped_legacy_values", 0)
    if dropped:
        click.echo(
            f"working memory: dropped {wm.get('dropped_unreadable', 0)} unreadable entries and "
            f"{wm.get('dropped_legacy_values', 0)} old-format session values",
            err=True,
        )
    if report.index_vectors is not None:
        click.echo(f"semantic index rebuilt under the new key: {report.index_vectors} vectors")
    elif report.index_rebuild_pending:
        click.echo(
            "semantic index: the configured embedding model differs from the stored vectors'; "
            "it is rebuilt under the new key once 'aico semantic reembed' has run"
        )


@keys_group.command("remember")
@pass_state
@handle_errors
def remember_cmd(state: CliState) -> None:
    """Store the master key (never the passphrase) in the OS keyring."""
    passphrase = read_passphrase("Passphrase", confirm=False, env_name=ENV_PASSPHRASE)
    master = KeyFile.unlock(state.layout.key_file, passphrase)
    if remember_in_keyring(master, state.config.get("security.keyring_service")):
        click.echo("master key stored in the OS keyring")
    else:
        click.echo("Error: no usable OS keyring backend on this machine", err=True)
        raise SystemExit(1)


@keys_group.command("forget")
@pass_state
@handle_errors
def forget_cmd(state: CliState) -> None:
    """Remove the master key from the OS keyring."""
    key_id = KeyFile.load(state.layout.key_file).key_id
    removed = forget_from_keyring(key_id, state.config.get("security.keyring_service"))
    click.echo("removed from the OS keyring" if removed else "nothing stored in the OS keyring")
