"""The ``aico`` console script. Commands parse, call one public function, and format."""

from __future__ import annotations

from pathlib import Path

import click

from aico.cli import admin, analytics, backup, files, health, integrations, knowledge, service
from aico.cli._common import CliState
from aico.cli.db import db_group
from aico.cli.keys import init_cmd, keys_group
from aico.cli.lmdb import lmdb_group
from aico.cli.semantic import semantic_group


@click.group()
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Data directory (default: AICO_DATA_DIR, the config, or the platform data dir).",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="A TOML config file (default: AICO_CONFIG or the platform config dir).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
@click.option(
    "--read-only",
    is_flag=True,
    help="Write nothing to the data dir (e.g. on read-only media); writing commands refuse.",
)
@click.version_option(package_name="aico")
@click.pass_context
def cli(
    ctx: click.Context,
    data_dir: Path | None,
    config_path: Path | None,
    debug: bool,
    read_only: bool,
) -> None:
    """aico: encrypted, local-first memory for a personal AI companion."""
    ctx.obj = CliState(
        data_dir_option=data_dir, config_path=config_path, debug=debug, read_only=read_only
    )


cli.add_command(init_cmd)
cli.add_command(db_group)
cli.add_command(keys_group)
cli.add_command(lmdb_group)
cli.add_command(semantic_group)
admin.register(cli)
analytics.register(cli)
backup.register(cli)
files.register(cli)
health.register(cli)
integrations.register(cli)
knowledge.register(cli)
service.register(cli)


def main() -> None:
    cli(prog_name="aico")
