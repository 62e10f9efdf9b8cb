"""Readable output for the admin verbs: rich tables, never markup read from user text.

Every cell is a ``rich.text.Text``, so a message containing ``[bold]`` or ``:smile:`` is
printed as written. Colour only on a terminal: piped or redirected output is plain text
whatever ``FORCE_COLOR`` says, so scripts and files never receive escape codes.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, is_dataclass
from datetime import datetime
from typing import Any

import click
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from aico.cli._common import emit_json


def console() -> Console:
    tty = sys.stdout.isatty()
    return Console(
        file=sys.stdout,
        color_system="auto" if tty else None,
        markup=False,
        emoji=False,
        highlight=False,
    )


def cell(value: Any) -> Text:
    """A table cell: the value's text exactly (no markup), times as local dates."""
    if value is None:
        return Text("")
    if isinstance(value, bool):
        return Text("yes" if value else "no")
    if isinstance(value, float):
        return Text(f"{value:.3f}")
    return Text(str(value))


def when(ts: float | None) -> Text:
    if ts is None:
        return Text("")
    return Text(datetime.fromtimestamp(float(ts)).strftime("%Y-%m-%d %H:%M"))


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Print one table; ids and numbers never wrap, the last column (the text) does."""
    out = Table(box=box.SIMPLE_HEAD, show_edge=False, header_style="bold")
    for index, name in enumerate(columns):
        out.add_column(name, overflow="fold", no_wrap=index < len(columns) - 1)
    for row in rows:
        out.add_row(*(v if isinstance(v, Text) else cell(v) for v in row))
    console().print(out)


def fields(pairs: Iterable[tuple[str, Any]]) -> None:
    """Print a record as a two-column key/value table."""
    out = Table(show_header=False, box=None, pad_edge=False)
    out.add_column(style="bold", no_wrap=True)
    out.add_column(overflow="fold")
    for key, value in pairs:
        out.add_row(Text(key), value if isinstance(value, Text) else cell(value))
    console().print(out)


def line(text: str) -> None:
    """One plain status line, never wrapped."""
    click.echo(text)


def as_json(value: Any) -> Any:
    """Dataclasses (facts, hits, reports) as plain dicts, recursively through lists."""
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, list | tuple):
        return [as_json(v) for v in value]
    if isinstance(value, dict):
        return {k: as_json(v) for k, v in value.items()}
    return value


def emit(value: Any) -> None:
    emit_json(as_json(value))
