"""The admin verbs: users, facts, conversations, messages, context, search, forget."""

from __future__ import annotations

import click


def register(cli: click.Group) -> None:
    """Add this module's commands to the ``aico`` group."""
