"""aico's companion backend: a local HTTP service over ``AsyncMemoryManager``.

``open_memory`` unlocks a data dir, ``create_app`` builds the FastAPI app over it and
``serve`` runs it with uvicorn (``aico serve``). See docs/backend.md.
"""

from aico_backend.app import create_app
from aico_backend.auth import Principal
from aico_backend.scheduler import Job, Scheduler, default_jobs
from aico_backend.server import open_memory, serve, uvicorn_config
from aico_backend.service import Service
from aico_backend.settings import BackendSettings, SchedulerSettings

__all__ = [
    "BackendSettings",
    "Job",
    "Principal",
    "Scheduler",
    "SchedulerSettings",
    "Service",
    "create_app",
    "default_jobs",
    "open_memory",
    "serve",
    "uvicorn_config",
]
