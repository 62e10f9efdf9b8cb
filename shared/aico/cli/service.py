"""``aico serve`` / ``aico tokens`` / ``aico tasks``: the companion backend's commands."""

from __future__ import annotations

import click


def register(cli: click.Group) -> None:
    """Add this module's commands to the ``aico`` group."""
