"""``aico backup|export|import``: encrypted backups and one user's portable archive.

Thin verbs over ``aico.operations``: ``backup create|list|verify|restore|prune`` and
``export`` / ``import``. Passphrases come from the environment or a hidden prompt, never
from the command line: ``AICO_PASSPHRASE`` (the data dir's, which is the backup's),
``AICO_CURRENT_PASSPHRASE`` (a restore over a data dir whose passphrase changed since the
backup), ``AICO_EXPORT_PASSPHRASE`` (the one chosen for an export).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from aico.cli._common import CliState, emit_json, handle_errors, pass_state, read_passphrase
from aico.errors import InvalidInput
from aico.operations import (
    backup_directory,
    create_backup,
    find_backup,
    list_backups,
    prune_backups,
    restore_backup,
    verify_backup,
)
from aico.operations.backup import BackupSettings
from aico.operations.export import export_user, import_user
from aico.security import ENV_PASSPHRASE

EXPORT_PASSPHRASE_ENV = "AICO_EXPORT_PASSPHRASE"
CURRENT_PASSPHRASE_ENV = "AICO_CURRENT_PASSPHRASE"

_DIR_OPTION = click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Where the archives are (default: [storage.backup] backup_dir, else <data dir>/backups).",
)


@contextmanager
def _bar(label: str, *, quiet: bool) -> Iterator[Callable[[int, int], None]]:
    """A click progress bar in bytes, fed by ``progress(done, total)`` (none with --json)."""
    bar: Any = None

    def update(done: int, total: int) -> None:
        nonlocal bar
        if quiet:
            return
        if bar is None:
            bar = click.progressbar(length=max(total, 1), label=label, file=sys.stderr)
            bar.__enter__()
        bar.update(done - bar.pos)

    try:
        yield update
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)


def _directory(state: CliState, directory: Path | None) -> Path:
    return directory if directory is not None else backup_directory(state.layout, state.config)


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


@click.group("backup")
def backup_group() -> None:
    """Encrypted backups of the whole data dir (see docs/operations.md)."""


@backup_group.command("create")
@_DIR_OPTION
@click.option("--no-prune", is_flag=True, help="Keep every archive (skip the retention).")
@click.option("--json", "as_json", is_flag=True)
@pass_state
@handle_errors
def create_cmd(state: CliState, directory: Path | None, no_prune: bool, as_json: bool) -> None:
    """Back up every database and the key file into one encrypted archive."""
    with state.open_store(write=True) as store, _bar("backing up", quiet=as_json) as bar:
        report = create_backup(
            store,
            config=state.config,
            directory=directory,
            progress=bar,
            prune=not no_prune,
        )
    if as_json:
        emit_json(asdict(report))
        return
    click.echo(
        f"backup {report.info.id}: {len(report.files)} files, {_mb(report.raw_bytes)} -> "
        f"{_mb(report.archive_bytes)} in {report.total_s:.1f} s ({report.info.path})"
    )
    for gone in report.pruned:
        click.echo(f"pruned {gone.id}")


@backup_group.command("list")
@_DIR_OPTION
@click.option("--json", "as_json", is_flag=True)
@pass_state
@handle_errors
def list_cmd(state: CliState, directory: Path | None, as_json: bool) -> None:
    """The archives, newest first (needs no passphrase)."""
    found = list_backups(_directory(state, directory))
    if as_json:
        emit_json([{**asdict(b), "created": b.created_iso} for b in found])
        return
    if not found:
        click.echo("no backups")
        return
    for b in found:
        click.echo(f"{b.id}  {b.created_iso}  {_mb(b.size):>10}")


@backup_group.command("verify")
@click.argument("backup_id")
@_DIR_OPTION
@click.option("--json", "as_json", is_flag=True)
@pass_state
@handle_errors
def verify_cmd(state: CliState, backup_id: str, directory: Path | None, as_json: bool) -> None:
    """Decrypt and check a whole archive (ID, 'latest' or a path) without restoring it."""
    path = find_backup(_directory(state, directory), backup_id)
    passphrase = read_passphrase("Passphrase", confirm=False, env_name=ENV_PASSPHRASE)
    with _bar("verifying", quiet=as_json) as bar:
        report = verify_backup(path, passphrase, progress=bar)
    if as_json:
        data = asdict(report)
        data.pop("manifest", None)
        emit_json(data)
        return
    click.echo(
        f"backup {report.info.id} is intact: {len(report.files)} files, "
        f"{_mb(report.raw_bytes)}, key {report.key_id}"
    )


@backup_group.command("restore")
@click.argument("backup_id")
@_DIR_OPTION
@click.option(
    "--to",
    "to",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Restore into this new (or empty) directory instead of replacing the data dir.",
)
@click.option(
    "--keep-replaced", is_flag=True, help="Keep the replaced data dir beside it, renamed."
)
@click.option(
    "--ignore-ledger",
    is_flag=True,
    help="Restore even if the current forget ledger cannot be read (forgotten users return).",
)
@click.option(
    "--rebuild-index",
    is_flag=True,
    help="Rebuild the search index before the swap (longer restore, full search at once).",
)
@click.option("--yes", is_flag=True, help="Do not ask before replacing the data dir.")
@click.option("--json", "as_json", is_flag=True)
@pass_state
@handle_errors
def restore_cmd(
    state: CliState,
    backup_id: str,
    directory: Path | None,
    to: Path | None,
    keep_replaced: bool,
    ignore_ledger: bool,
    rebuild_index: bool,
    yes: bool,
    as_json: bool,
) -> None:
    """Restore a backup: into a fresh directory, verified, then swapped in atomically.

    Forgets recorded in the current data dir's ledger are applied again to the restored
    data, so nobody forgotten since the backup comes back.
    """
    state.require_writable()
    path = find_backup(_directory(state, directory), backup_id)
    target = to if to is not None else state.data_dir
    if to is None and not yes:
        if not sys.stdin.isatty():
            raise InvalidInput("restoring over the data dir needs --yes (or a terminal)")
        click.confirm(f"Replace the data in {target} with backup {path.stem}?", abort=True)
    passphrase = read_passphrase("Passphrase of the backup", confirm=False, env_name=ENV_PASSPHRASE)
    current = os.environ.get(CURRENT_PASSPHRASE_ENV) or None
    with _bar("restoring", quiet=as_json) as bar:
        report = restore_backup(
            path,
            passphrase,
            data_dir=state.data_dir,
            to=to,
            config=state.config,
            current_passphrase=current,
            keep_replaced=keep_replaced,
            ignore_ledger=ignore_ledger,
            rebuild_index=rebuild_index,
            progress=bar,
        )
    if as_json:
        emit_json(asdict(report))
        return
    click.echo(
        f"restored backup {report.backup.id} into {report.data_dir} ({report.total_s:.1f} s)"
    )
    if report.forgets_reapplied:
        click.echo(f"forgets applied again from the ledger: {report.forgets_reapplied}")
    if report.index_rebuild_pending:
        click.echo(
            "the search index is rebuilt from the databases after the next open "
            "(until then search uses BM25 and an exact scan)"
        )
    if report.replaced is not None:
        click.echo(f"the replaced data dir is kept at {report.replaced}")


@backup_group.command("prune")
@_DIR_OPTION
@click.option("--dry-run", is_flag=True, help="Only say what would be deleted.")
@click.option("--json", "as_json", is_flag=True)
@pass_state
@handle_errors
def prune_cmd(state: CliState, directory: Path | None, dry_run: bool, as_json: bool) -> None:
    """Apply the retention of [storage.backup] (the newest archive always stays)."""
    if not dry_run:
        state.require_writable()
    settings = BackupSettings.from_config(state.config)
    gone = prune_backups(
        _directory(state, directory),
        retain_days=settings.backup_retain_days,
        max_count=settings.backup_max_count,
        dry_run=dry_run,
    )
    if as_json:
        emit_json({"dry_run": dry_run, "deleted": [b.id for b in gone]})
        return
    verb = "would delete" if dry_run else "deleted"
    click.echo(f"{verb} {len(gone)} archive(s)" + "".join(f"\n  {b.id}" for b in gone))


@click.command("export")
@click.option("--user", "user_id", required=True, help="The user whose memory to export.")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--plaintext",
    is_flag=True,
    help="Write unencrypted JSON (readable by anyone who gets the file).",
)
@click.option("--json", "as_json", is_flag=True)
@pass_state
@handle_errors
def export_cmd(state: CliState, user_id: str, file: Path, plaintext: bool, as_json: bool) -> None:
    """Write one user's complete memory to FILE, encrypted under a passphrase you choose."""
    passphrase = None
    if plaintext:
        click.echo(
            "Warning: --plaintext writes the user's memory UNENCRYPTED; anyone who gets "
            f"{file} can read every message in it.",
            err=True,
        )
    else:
        passphrase = read_passphrase(
            "Passphrase for the export", confirm=True, env_name=EXPORT_PASSPHRASE_ENV
        )
    with state.open_store(write=False) as store:
        report = export_user(
            store, user_id, file, config=state.config, passphrase=passphrase, plaintext=plaintext
        )
    if as_json:
        emit_json(asdict(report))
        return
    kind = "encrypted" if report.encrypted else "PLAINTEXT"
    rows = ", ".join(f"{n} {t}" for t, n in report.rows.items() if n)
    click.echo(f"exported ({kind}) to {report.path}: {rows}")


@click.command("import")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--json", "as_json", is_flag=True)
@pass_state
@handle_errors
def import_cmd(state: CliState, file: Path, as_json: bool) -> None:
    """Add the user of an export FILE to the data dir, every id unchanged."""
    from aico.cli.admin._open import open_manager
    from aico.operations.archive import MAGIC

    state.require_writable()
    passphrase = None
    with open(file, "rb") as fh:
        if fh.read(len(MAGIC)) == MAGIC:
            passphrase = read_passphrase(
                "Passphrase of the export", confirm=False, env_name=EXPORT_PASSPHRASE_ENV
            )
    with open_manager(state, write=True) as manager:
        report = import_user(manager, file, passphrase=passphrase)
    if as_json:
        emit_json(asdict(report))
        return
    rows = ", ".join(f"{n} {t}" for t, n in report.rows.items() if n)
    click.echo(f"imported: {rows}")
    if report.reembedded:
        click.echo("its segments come from another embedding model: they are re-embedded")


def register(cli: click.Group) -> None:
    """Add this module's commands to the ``aico`` group."""
    cli.add_command(backup_group)
    cli.add_command(export_cmd)
    cli.add_command(import_cmd)
