"""Every error the service answers with: ``{"error": {"type", "message"}}`` and a status.

One seam (``install``) maps exceptions to responses:

- ``aico.errors`` types keep their class name as ``type``. A 4xx carries aico's message
  (aico's messages name arguments and rules, never user content); a 5xx carries a fixed
  sentence per type instead, since its message may name files of the data dir.
- The HTTP layer's own conditions are ``ApiError`` subclasses (``Unauthorized``,
  ``Forbidden``, ``RateLimited``, ``PayloadTooLarge``, ``InvalidHost``).
- Request validation (a body or parameter of the wrong shape) is ``InvalidInput``, 422,
  naming the field and the rule, never the value sent.
- Anything else is ``InternalError``, 500, with a fixed message; the log gets the type and
  the traceback's frames, not the exception's message (it could quote a value).
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Mapping
from types import MappingProxyType
from typing import ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from aico import errors as E

__all__ = [
    "STATUS",
    "ApiError",
    "Forbidden",
    "InvalidHost",
    "PayloadTooLarge",
    "RateLimited",
    "Unauthorized",
    "error_body",
    "install",
    "log_unexpected",
    "status_of",
]

log = logging.getLogger("aico_backend")


class ApiError(Exception):
    """An HTTP-layer refusal: its class name is the ``type``, its message is safe to show."""

    status: ClassVar[int] = 400
    headers: Mapping[str, str] = MappingProxyType({})


class Unauthorized(ApiError):
    status = 401
    headers = MappingProxyType({"WWW-Authenticate": 'Bearer realm="aico"'})


class Forbidden(ApiError):
    status = 403


class RateLimited(ApiError):
    status = 429

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.headers = {"Retry-After": str(max(1, retry_after))}


class PayloadTooLarge(ApiError):
    status = 413


class InvalidHost(ApiError):
    status = 400


# Most specific first: the first class an error is an instance of decides.
STATUS: tuple[tuple[type[E.AicoError], int], ...] = (
    (E.InvalidInput, 422),
    (E.NotFound, 404),
    (E.ConstraintViolation, 409),
    (E.ReadOnly, 409),
    (E.StoreClosed, 503),
    (E.DatabaseBusy, 503),
    (E.StoreBusy, 503),
    (E.StorageFull, 507),
    (E.ModelMismatch, 503),
    (E.IndexDamaged, 503),
    (E.AicoError, 500),
)

# What a 5xx says instead of the exception's message.
_FIXED = {
    503: "the memory store is busy or unavailable; retry shortly",
    507: "the disk is full; nothing of this request was stored",
}
_FIXED_500 = "the server failed; the details are in its log"
_RETRY = {"Retry-After": "1"}


def status_of(exc: E.AicoError) -> int:
    for kind, status in STATUS:
        if isinstance(exc, kind):
            return status
    return 500  # pragma: no cover - AicoError is last in STATUS


def error_body(kind: str, message: str) -> dict[str, dict[str, str]]:
    return {"error": {"type": kind, "message": message}}


def _response(
    status: int, kind: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(kind, message), status_code=status, headers=dict(headers or {}))


def log_unexpected(exc: BaseException, where: str) -> None:
    """Log an unexpected exception by type and frames only (its message may quote data)."""
    frames = "".join(traceback.format_tb(exc.__traceback__))
    log.error("%s: unexpected %s\n%s", where, type(exc).__name__, frames)


async def _aico_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, E.AicoError)
    status = status_of(exc)
    kind = type(exc).__name__
    if status < 500:
        return _response(status, kind, str(exc))
    log.warning("%s %s: %s (%d)", request.method, _route(request), kind, status)
    return _response(
        status, kind, _FIXED.get(status, _FIXED_500), _RETRY if status == 503 else None
    )


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return _response(exc.status, type(exc).__name__, str(exc), exc.headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for item in exc.errors()[:5]:
        where = ".".join(str(part) for part in item.get("loc", ()) if part != "body")
        problems.append(f"{where or 'body'}: {item.get('msg', 'invalid')}")
    return _response(422, "InvalidInput", "; ".join(problems) or "invalid request")


_HTTP_TYPES = {404: "NotFound", 405: "MethodNotAllowed", 413: "PayloadTooLarge"}


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    kind = _HTTP_TYPES.get(exc.status_code, "HTTPError")
    message = {404: "no such resource", 405: "method not allowed"}.get(
        exc.status_code, "request refused"
    )
    return _response(exc.status_code, kind, message, exc.headers)


def _route(request: Request) -> str:
    route = request.scope.get("route")
    return str(getattr(route, "path", "-"))


def install(app: FastAPI) -> None:
    """Register the handlers on ``app`` (the 500 of last resort is in ``middleware``)."""
    app.add_exception_handler(E.AicoError, _aico_error)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
