"""``Guard``: the outermost checks every HTTP request passes, as one pure ASGI middleware.

In order: the ``Host`` header must name the bound address (a page on another site that
made a browser resolve its own name to 127.0.0.1, DNS rebinding, is refused); the body
may not exceed ``max_body_bytes`` (413, by ``Content-Length`` up front or while it
streams); every response gets headers that keep private data out of caches and frames;
an exception nothing handled becomes a 500 with a fixed message. Access is logged by
method, route *template* and status: never the path itself, a query string or a header,
which may hold ids, search text or the token.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.exceptions import HTTPException

from aico_backend.errors import error_body, log_unexpected

__all__ = ["Guard"]

log = logging.getLogger("aico_backend.access")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_SECURITY_HEADERS = [
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),  # a POST keeps its Origin header
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
_HTML_CSP = (
    b"default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    b"frame-ancestors 'none'; base-uri 'none'"
)


class _BodyTooLarge(HTTPException):
    """Raised from ``receive``: an ``HTTPException``, so FastAPI's body parsing re-raises it
    (and the handlers answer 413) instead of calling it a malformed body."""

    def __init__(self) -> None:
        super().__init__(413)


class Guard:
    """Host check, body limit, security headers, last-resort 500 and the access log.

    ``hosts`` is the set of accepted ``Host`` values, or None to accept any (a Unix
    socket: no browser can be made to reach one).
    """

    def __init__(self, app: ASGIApp, *, hosts: frozenset[str] | None, max_body: int) -> None:
        self.app = app
        self.hosts = hosts
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 0}
        headers = dict(scope.get("headers") or [])
        if self.hosts is not None:
            host = headers.get(b"host", b"").decode("latin-1").lower()
            if host not in self.hosts:
                await _reply(send, 400, "InvalidHost", "this Host is not served here")
                self._log(scope, 400, started)
                return
        length = headers.get(b"content-length")
        if length is not None:
            try:
                too_big = int(length) > self.max_body
            except ValueError:
                too_big = True
            if too_big:
                await _reply(send, 413, "PayloadTooLarge", self._too_large())
                self._log(scope, 413, started)
                return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                extra = list(_SECURITY_HEADERS)
                content_type = dict(message.get("headers") or []).get(b"content-type", b"")
                if content_type.startswith(b"text/html"):
                    extra.append((b"content-security-policy", _HTML_CSP))
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _BodyTooLarge:
            if not status["code"]:
                status["code"] = 413
                await _reply(send, 413, "PayloadTooLarge", self._too_large())
        except Exception as exc:
            log_unexpected(exc, f"{scope.get('method')} {_route(scope)}")
            if not status["code"]:
                status["code"] = 500
                await _reply(
                    send, 500, "InternalError", "the server failed; the details are in its log"
                )
        self._log(scope, status["code"], started)

    def _too_large(self) -> str:
        return f"the request body exceeds {self.max_body} bytes"

    @staticmethod
    def _log(scope: Scope, status: int, started: float) -> None:
        if log.isEnabledFor(logging.INFO):
            ms = (time.perf_counter() - started) * 1000.0
            log.info("%s %s %d %.1fms", scope.get("method"), _route(scope), status, ms)


def _route(scope: Scope) -> str:
    route = scope.get("route")
    return str(getattr(route, "path", "-"))


async def _reply(send: Send, status: int, kind: str, message: str) -> None:
    body = json.dumps(error_body(kind, message)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *_SECURITY_HEADERS,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
