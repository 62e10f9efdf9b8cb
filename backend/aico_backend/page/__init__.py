"""The memory page (``/``): server-rendered HTML over the same token auth as the API."""

from aico_backend.page.routes import COOKIE, router

__all__ = ["COOKIE", "router"]
