"""``aico health|doctor|maintenance``: the state of a data dir, its repair and its jobs."""

from __future__ import annotations

import click


def register(cli: click.Group) -> None:
    """Add this module's commands to the ``aico`` group."""
