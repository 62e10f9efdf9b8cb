"""``aico mcp``: the Model Context Protocol server over the encrypted store.

A thin wrapper over ``aico.integrations.mcp`` (imported inside the command, so the rest of
the CLI works without the ``mcp`` extra). Over stdio, stdout is the protocol's: everything
this command says goes to stderr, and the data dir is unlocked without a prompt (keyring,
``AICO_PASSPHRASE`` or ``AICO_PASSPHRASE_FILE``), since stdin is the protocol's too.
"""

from __future__ import annotations

import sys

import click

import aico.integrations.schema  # noqa: F401  (the CLI's status and migrate know the tables)
from aico.cli._common import CliState, handle_errors, pass_state
from aico.errors import InvalidInput, NotFound

__all__ = ["register"]


@click.command("mcp")
@click.option("--user", "user_id", default=None, help="The aico user the tools act for (stdio).")
@click.option(
    "--http",
    "http",
    is_flag=True,
    help="Serve streamable HTTP on loopback instead of stdio; each request then needs an "
    "aico user token ('aico tokens create --user ID'), whose user the tools act for.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="With --http: loopback.")
@click.option(
    "--port", type=click.IntRange(1, 65535), default=8765, show_default=True, help="With --http."
)
@click.option(
    "--session",
    "session_id",
    default="mcp",
    show_default=True,
    help="The working-memory session recall_context reads when a call names none.",
)
@pass_state
@handle_errors
def mcp_cmd(
    state: CliState, user_id: str | None, http: bool, host: str, port: int, session_id: str
) -> None:
    """Serve aico's memory to MCP clients (stdio by default; --http for streamable HTTP).

    Tools: add_memory, search_memories, get_memories, update_memory, delete_memory,
    delete_all_memories, recall_context, forget_conversation. With --read-only the
    writing tools answer ReadOnly. See docs/integrations.md for client configuration.
    """
    try:
        from aico.integrations import mcp as server
    except ImportError:
        raise InvalidInput("aico mcp needs the mcp extra: pip install 'aico[mcp]'") from None
    from aico.ai.memory import MemoryManager
    from aico.data.repositories import UserService

    if http == (user_id is not None):
        raise InvalidInput("give --user ID (stdio), or --http (the token names the user), not both")
    base = server.http_base(host, port) if http else None
    memory = MemoryManager.open(
        state.layout.root,
        config=state.config,
        read_only=state.read_only,
        interactive=None if http else False,
    )
    try:
        if user_id is not None:
            if not UserService(memory.store.connection("core")).exists(user_id):
                raise NotFound("no user with this user_id; create it with 'aico users create'")
            click.echo(f"aico mcp: serving over stdio (data dir {state.data_dir})", err=True)
            server.serve_stdio(server.build_server(memory, user_id=user_id, session_id=session_id))
        else:
            click.echo(f"aico mcp: serving {base}/mcp (data dir {state.data_dir})", err=True)
            server.serve_http(memory, host=host, port=port, session_id=session_id)
    except KeyboardInterrupt:
        sys.exit(0)
    finally:
        memory.close()


def register(cli: click.Group) -> None:
    """Add this module's commands to the ``aico`` group."""
    cli.add_command(mcp_cmd)
