"""Opening the stores and serving the app: what ``aico serve`` runs.

``open_memory`` unlocks the data dir before any server exists, from the usual sources
(keyring, ``AICO_PASSPHRASE``/``AICO_PASSPHRASE_FILE``, or a prompt on this terminal),
never from a request. ``serve`` runs uvicorn; SIGTERM or Ctrl-C stop it gracefully: no new
connections, the in-flight requests finish (up to ``graceful_shutdown_s``), then the app's
lifespan stops the scheduler and closes every store, which seals each database.

uvicorn's own access log is off: it would write request paths and query strings (ids,
search words). ``aico_backend.access`` logs method, route template, status and time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

import uvicorn

from aico.ai.embeddings import Encoder
from aico.ai.memory import AsyncMemoryManager, MemoryManager
from aico.config import Config
from aico_backend.app import create_app
from aico_backend.settings import BackendSettings

__all__ = ["open_memory", "serve", "uvicorn_config"]


def open_memory(
    config: Config,
    data_dir: str | Path | None = None,
    *,
    passphrase: str | None = None,
    encoder: Encoder | None = None,
    clock: Callable[[], float] = time.time,
    interactive: bool | None = None,
) -> AsyncMemoryManager:
    """Unlock and open every store of the data dir, here (a prompt, if any, runs here)."""
    settings = BackendSettings.from_config(config)
    manager = MemoryManager.open(
        data_dir,
        passphrase=passphrase,
        config=config,
        encoder=encoder,
        clock=clock,
        interactive=interactive,
    )
    return AsyncMemoryManager.from_manager(manager, max_workers=settings.workers)


def uvicorn_config(
    memory: AsyncMemoryManager,
    settings: BackendSettings,
    *,
    clock: Callable[[], float] = time.time,
    log_level: str = "info",
) -> uvicorn.Config:
    """The uvicorn config serving ``create_app(memory, settings)`` where ``settings`` say."""
    app = create_app(memory, settings, clock=clock)
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        uds=settings.uds,
        lifespan="on",
        access_log=False,
        server_header=False,
        proxy_headers=False,
        timeout_graceful_shutdown=int(settings.graceful_shutdown_s),
        log_level=log_level,
        log_config=None,
    )


def serve(
    memory: AsyncMemoryManager, settings: BackendSettings, *, log_level: str = "info"
) -> None:
    """Serve until SIGTERM/SIGINT; the stores are closed and sealed before this returns."""
    _configure_logging(log_level)
    server = uvicorn.Server(uvicorn_config(memory, settings, log_level=log_level))
    try:
        server.run()
    finally:
        # The lifespan closed them; this covers a start that failed before it ran.
        if not memory.closed:
            asyncio.run(memory.aclose())


def _configure_logging(level: str) -> None:
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(
            level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
