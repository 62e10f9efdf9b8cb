"""What every command shares: the context object, error mapping, and output helpers.

sqlite-utils conventions: library errors print ``Error: …`` and exit 1, usage errors exit 2
(click's own), ``--debug`` shows the traceback, ``--json`` is for machines.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

import click

from aico.ai.memory.stores import open_data_store
from aico.config import Config, load_config, resolve_data_dir
from aico.data.store import DataStore
from aico.errors import AicoError, InvalidInput, ReadOnly
from aico.layout import DataDir

F = TypeVar("F", bound=Callable[..., Any])

NEW_PASSPHRASE_ENV = "AICO_NEW_PASSPHRASE"


@dataclass
class CliState:
    """Options given before the sub-command; resolved lazily so ``--help`` touches nothing."""

    data_dir_option: Path | None = None
    config_path: Path | None = None
    debug: bool = False
    read_only: bool = False
    _config: Config | None = field(default=None, repr=False)

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_path)
        return self._config

    @property
    def data_dir(self) -> Path:
        if self.data_dir_option is not None:
            return self.data_dir_option
        return resolve_data_dir(self.config)

    @property
    def layout(self) -> DataDir:
        return DataDir(self.data_dir)

    def require_writable(self) -> None:
        """Refuse a writing command under ``--read-only``, before anything is opened."""
        if self.read_only:
            raise ReadOnly("this command writes, and --read-only was given")

    def open_store(self, *, write: bool) -> DataStore:
        """The data dir's ``DataStore`` for a verb that writes (``write``) or only reads.

        ``--read-only`` opens every database without writing a byte (for a data dir on
        read-only media) and refuses the verbs that write, before anything is opened.
        """
        if write:
            self.require_writable()
        return open_data_store(self.layout, config=self.config, read_only=self.read_only)


pass_state = click.make_pass_decorator(CliState, ensure=True)


def handle_errors(func: F) -> F:
    """Turn ``AicoError`` into ``Error: …`` + exit 1 (traceback with ``--debug``)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except AicoError as exc:
            ctx = click.get_current_context(silent=True)
            state = ctx.find_object(CliState) if ctx else None
            if state is not None and state.debug:
                raise
            click.echo(f"Error: {exc}", err=True)
            sys.exit(1)

    return cast(F, wrapper)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def read_passphrase(prompt: str, *, confirm: bool, env_name: str) -> str:
    """A passphrase from ``env_name`` or a hidden prompt on a terminal; never from argv."""
    value = os.environ.get(env_name)
    if value:
        return value
    if not sys.stdin.isatty():
        raise InvalidInput(f"no passphrase: set {env_name} or run on a terminal")
    answer: str = click.prompt(prompt, hide_input=True, confirmation_prompt=confirm)
    return answer
