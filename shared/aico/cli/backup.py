"""``aico backup|export|import``: encrypted backups and one user's portable archive."""

from __future__ import annotations

import click


def register(cli: click.Group) -> None:
    """Add this module's commands to the ``aico`` group."""
