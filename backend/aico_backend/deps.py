"""FastAPI dependencies: the running ``Service`` and the request's ``Principal``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from aico_backend.auth import Principal, parse_authorization
from aico_backend.service import Service

__all__ = ["Auth", "Svc", "client_of", "get_principal", "get_service", "service_of"]


def service_of(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


async def get_service(request: Request) -> Service:
    """Async on purpose: FastAPI runs a plain ``def`` dependency on a worker thread."""
    return service_of(request)


def client_of(request: Request) -> str:
    """The address failed attempts are counted against (one bucket for a Unix socket)."""
    return request.client.host if request.client and request.client.host else "local"


async def get_principal(request: Request) -> Principal:
    token = parse_authorization(request.headers.get("authorization"))
    return await service_of(request).authenticate(token, client_of(request))


Svc = Annotated[Service, Depends(get_service)]
Auth = Annotated[Principal, Depends(get_principal)]
