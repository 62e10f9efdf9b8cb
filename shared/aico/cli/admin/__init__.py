"""The admin verbs: users, facts, conversations, messages, context, search, forget.

Thin wrappers over the calls the backend's endpoints make (``MemoryManager``, the
repositories), one module per noun: each verb parses, calls, and prints a rich table, or
JSON with ``--json``. Verbs that write refuse ``--read-only``; read verbs honour it.
"""

from __future__ import annotations

import click

from aico.cli.admin.conversations import conversations_group, messages_group
from aico.cli.admin.facts import facts_group
from aico.cli.admin.forget import forget_cmd
from aico.cli.admin.recall import context_cmd, search_cmd
from aico.cli.admin.users import users_group


def register(cli: click.Group) -> None:
    """Add this module's commands to the ``aico`` group."""
    for command in (
        users_group,
        facts_group,
        conversations_group,
        messages_group,
        context_cmd,
        search_cmd,
        forget_cmd,
    ):
        cli.add_command(command)
