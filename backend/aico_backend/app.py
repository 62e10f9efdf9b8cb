"""``create_app``: the FastAPI application over one open ``AsyncMemoryManager``.

The manager is opened (and unlocked) before the app exists, by ``open_memory`` or by the
caller (tests pass one opened with a fast encoder): a request can never unlock anything.
The app's lifespan starts the scheduler, and on shutdown stops it, then closes every store
so each database is sealed; uvicorn runs that after the in-flight requests finished.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from aico.ai.memory import AsyncMemoryManager
from aico_backend import errors
from aico_backend.middleware import Guard
from aico_backend.page import router as page_router
from aico_backend.routes import analytics, conversations, facts, feedback, health, mem0, users
from aico_backend.routes import memory as memory_routes
from aico_backend.service import Service
from aico_backend.settings import BackendSettings

__all__ = ["create_app"]

_DESCRIPTION = (
    "The companion backend of aico: an encrypted, local-first memory manager. Every request "
    "carries `Authorization: Bearer <token>` (see `aico tokens create`). Errors are "
    '`{"error": {"type", "message"}}`.'
)


def create_app(
    memory: AsyncMemoryManager,
    settings: BackendSettings | None = None,
    *,
    clock: Callable[[], float] = time.time,
    owns_memory: bool = True,
) -> FastAPI:
    """The service's ASGI app over ``memory`` (closed on shutdown when ``owns_memory``).

    ``settings`` default to the ``[backend]`` section of the manager's config; its host
    and port are what the ``Host`` check accepts, so they must be where the server listens.
    """
    settings = settings or BackendSettings.from_config(memory.config)
    service = Service(memory, settings, clock=clock, owns_memory=owns_memory)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    app = FastAPI(
        title="aico companion backend",
        version="1",
        description=_DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # Swagger UI and ReDoc load scripts from a CDN: not served
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.service = service
    errors.install(app)
    for module in (users, conversations, memory_routes, facts, feedback, health, mem0, analytics):
        app.include_router(module.router)
    app.include_router(page_router)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
            allow_credentials=False,
        )
    hosts = None if settings.uds is not None else settings.host_names(settings.port)
    app.add_middleware(Guard, hosts=hosts, max_body=settings.max_body_bytes)
    return app
