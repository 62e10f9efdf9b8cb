"""``aico analytics``: commands for the analytics part (filled in by its issue)."""

from __future__ import annotations

import click

__all__ = ["register"]


def register(cli: click.Group) -> None:
    """Add this module's commands to the ``aico`` group."""
