"""``aico mcp``: the Model Context Protocol server over the encrypted store."""

from __future__ import annotations

import click


def register(cli: click.Group) -> None:
    """Add this module's commands to the ``aico`` group."""
