"""The Model Context Protocol server behind ``aico mcp`` (needs the ``mcp`` extra, SDK 2.x).

Tools named and shaped like the memory servers MCP clients already use (mem0's):
``add_memory``, ``search_memories``, ``get_memories``, ``update_memory``, ``delete_memory``,
``delete_all_memories``, plus ``recall_context`` (the context aico assembles for a message:
facts, relevant memories, recent turns) and ``forget_conversation``. Memories are the
mem0-style ones of ``aico.integrations.mem0`` (facts of category ``mem0``), so the MCP
server, the Python API and the backend's mem0 routes see the same memories.

Every tool acts for one aico user: over stdio the one the server was started for
(``aico mcp --user ID``), over streamable HTTP the owner of the bearer token (an aico user
token, ``aico tokens create --user ID``; checked against its keyed hash, admin tokens
refused). A ``user_id`` argument may be given for mem0 compatibility and must then name
that user. Inputs are checked by the tool schemas and by aico's own validation; every
failure is a tool error naming the error type and the rule, never the input (argument
errors name the field only: the SDK's own message would quote the value) and never a
traceback. Nothing here writes a file or logs content.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import ValidationError

from aico.ai.memory.manager import MemoryManager
from aico.data.repositories import TOKEN_HASH_PURPOSE, TokenRepository
from aico.errors import AicoError, InvalidInput
from aico.integrations.mem0 import Memory, MemoryNotFound
from aico.validation import check_id

__all__ = [
    "AicoMCPServer",
    "TokenVerifier",
    "build_server",
    "http_base",
    "serve_http",
    "serve_stdio",
]

T = TypeVar("T")

INSTRUCTIONS = (
    "Long-term memory of one person, kept encrypted on their machine by aico. "
    "search_memories before answering questions about them; add_memory for facts worth "
    "keeping; recall_context gives the assembled context for a message."
)


class AicoMCPServer(MCPServer[Any]):
    """``MCPServer`` whose argument errors name the fields, never the values given."""

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> Any:
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            cause = exc.__cause__
            if not isinstance(cause, ValidationError):
                raise
            fields = sorted(
                {
                    ".".join(str(p) for p in err["loc"]) + f" ({err['msg']})"
                    for err in cause.errors()
                }
            )
            raise ToolError(
                f"Error executing tool {name}: invalid arguments: {'; '.join(fields)}"
            ) from cause


class TokenVerifier:
    """Bearer tokens of aico users (``TokenRepository``); the subject is the token's user."""

    def __init__(self, memory: MemoryManager) -> None:
        self._repo = TokenRepository(
            memory.store.connection("core"), memory.store.master_key.subkey(TOKEN_HASH_PURPOSE)
        )

    async def verify_token(self, token: str) -> AccessToken | None:
        found = await anyio.to_thread.run_sync(self._repo.verify, token)
        if found is None or found.user_id is None:
            return None  # unknown, revoked, or the admin token (which acts for no one user)
        # The secret itself is not kept in the request context: the token's id stands for it.
        return AccessToken(
            token=found.token_id, client_id=found.token_id, scopes=[], subject=found.user_id
        )


def _as_tool_error(exc: AicoError) -> ToolError:
    return ToolError(f"{type(exc).__name__}: {exc}")


def build_server(
    memory: MemoryManager,
    *,
    user_id: str | None = None,
    session_id: str = "mcp",
    base_url: str | None = None,
) -> AicoMCPServer:
    """The server over ``memory``, acting for ``user_id``; or, with ``base_url`` (the HTTP
    origin it is served at) instead, for the owner of each request's bearer token.

    ``session_id`` is the working-memory session ``recall_context`` reads when not told one.
    """
    if (user_id is None) == (base_url is None):
        raise InvalidInput("give user_id (stdio) or base_url (HTTP with tokens), not both")
    fixed = None if user_id is None else check_id(user_id, "user_id")
    default_session = check_id(session_id, "session_id")
    mem0 = Memory(memory)
    auth: dict[str, Any] = {}
    if base_url is not None:
        auth = {
            "auth": AuthSettings(
                issuer_url=base_url,  # type: ignore[arg-type]
                resource_server_url=f"{base_url}/mcp",  # type: ignore[arg-type]
                validate_token_resource=False,
            ),
            "token_verifier": TokenVerifier(memory),
        }
    server = AicoMCPServer("aico", instructions=INSTRUCTIONS, log_level="WARNING", **auth)

    def acting(given: str | None) -> str:
        token = get_access_token()
        user = fixed if fixed is not None else (None if token is None else token.subject)
        if user is None:
            raise ToolError("PermissionError: this request is not authenticated")
        if given is not None and given != user:
            raise ToolError(
                "InvalidInput: this server acts for one user: omit user_id or give that user's"
            )
        return user

    def owned(memory_id: str, user: str) -> None:
        found = mem0.get(memory_id)
        if found is None or found["user_id"] != user:
            raise MemoryNotFound("no memory with this memory_id")

    async def run(func: Callable[[], T]) -> T:
        try:
            return await anyio.to_thread.run_sync(func)
        except AicoError as exc:
            raise _as_tool_error(exc) from None

    tool = server.tool

    @tool()
    async def add_memory(
        text: str,
        metadata: dict[str, Any] | None = None,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
    ) -> dict[str, Any]:
        """Store a memory about the user, verbatim (a fact, a preference, an event)."""
        user = acting(user_id)
        return await run(
            lambda: mem0.add(
                text, user_id=user, agent_id=agent_id, run_id=run_id, metadata=metadata
            )
        )

    @tool()
    async def search_memories(
        query: str,
        limit: int = 10,
        filters: dict[str, Any] | None = None,
        threshold: float | None = None,
        user_id: str | None = None,
    ) -> dict[str, Any]:
        """The user's memories most related to a query, best first, with a score."""
        user = acting(user_id)
        return await run(
            lambda: mem0.search(
                query, user_id=user, top_k=limit, filters=filters, threshold=threshold
            )
        )

    @tool()
    async def get_memories(
        filters: dict[str, Any] | None = None,
        limit: int = 100,
        user_id: str | None = None,
    ) -> dict[str, Any]:
        """The user's memories, newest first (optionally filtered by metadata)."""
        user = acting(user_id)
        return await run(lambda: mem0.get_all(user_id=user, filters=filters, top_k=limit))

    @tool()
    async def update_memory(memory_id: str, text: str) -> dict[str, Any]:
        """Replace the text of one of the user's memories."""
        user = acting(None)

        def work() -> dict[str, Any]:
            owned(memory_id, user)
            return dict(mem0.update(memory_id, text))

        return await run(work)

    @tool()
    async def delete_memory(memory_id: str) -> dict[str, Any]:
        """Delete one of the user's memories (its history keeps only that it was deleted)."""
        user = acting(None)

        def work() -> dict[str, Any]:
            owned(memory_id, user)
            return dict(mem0.delete(memory_id))

        return await run(work)

    @tool()
    async def delete_all_memories(
        user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None
    ) -> dict[str, Any]:
        """Delete all of the user's memories (or those of one agent or run)."""
        user = acting(user_id)
        return await run(
            lambda: dict(mem0.delete_all(user_id=user, agent_id=agent_id, run_id=run_id))
        )

    @tool()
    async def recall_context(
        message: str, session_id: str | None = None, max_tokens: int | None = None
    ) -> dict[str, Any]:
        """What aico knows that bears on a message: facts, related memories, recent turns,
        trimmed to a token budget, and the same as one block of text (``context``)."""
        user = acting(None)

        def work() -> dict[str, Any]:
            bundle = memory.assemble_context(
                user, session_id or default_session, message, max_tokens=max_tokens
            )
            return {
                "context": bundle.render(),
                "facts": [{"id": f.fact_id, "text": f.content} for f in bundle.facts],
                "memories": [
                    {
                        "text": h.text,
                        "score": round(h.score, 6),
                        "conversation_id": h.conversation_id,
                    }
                    for h in bundle.memories
                ],
                "recent": [{"role": w.role, "content": w.content} for w in bundle.working],
                "token_estimate": bundle.token_estimate,
                "max_tokens": bundle.max_tokens,
                "dropped": bundle.dropped,
            }

        return await run(work)

    @tool()
    async def forget_conversation(conversation_id: str) -> dict[str, Any]:
        """Forget one of the user's conversations everywhere: its messages, the memories made
        from them, their facts and feedback. Cannot be undone."""
        user = acting(None)

        def work() -> dict[str, Any]:
            report = memory.forget(user, conversation_id=conversation_id)
            return {
                "forgotten": True,
                "messages": report.messages,
                "segments": report.segments,
                "facts": report.facts,
                "index_purge_pending": report.index_purge_pending,
            }

        return await run(work)

    return server


def serve_stdio(server: MCPServer[Any]) -> None:
    """Serve over this process's stdin and stdout until the client closes them."""
    server.run("stdio")


def http_base(host: str, port: int) -> str:
    """``http://host:port`` for a loopback ``host``; ``InvalidInput`` for any other."""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        raise InvalidInput("aico mcp serves HTTP on loopback only (127.0.0.1, ::1, localhost)")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise InvalidInput("port must be 1-65535")
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


def serve_http(
    memory: MemoryManager, *, host: str = "127.0.0.1", port: int = 8765, session_id: str = "mcp"
) -> None:
    """Serve streamable HTTP at ``http://host:port/mcp`` until stopped, each request
    authenticated by an aico user token; loopback addresses only."""
    import uvicorn

    base = http_base(host, port)
    app = build_server(memory, base_url=base, session_id=session_id).streamable_http_app(host=host)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
    uvicorn.Server(config).run()
