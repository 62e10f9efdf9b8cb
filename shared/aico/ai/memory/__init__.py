"""Memory: working (LMDB, 24 h), semantic (FTS5 + Chroma) and the MemoryManager over both.

``AsyncMemoryManager`` is its async face (one core: each call runs on a worker thread).

Attributes load lazily (PEP 562) so that ``aico lmdb`` does not import Chroma and an
embedding-free command does not import the model runtime.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aico.ai.memory.async_manager import AsyncMemoryManager
    from aico.ai.memory.manager import (
        ContextBundle,
        ForgetReport,
        MaintenanceReport,
        MemoryManager,
        RepairReport,
        RotationReport,
    )
    from aico.ai.memory.semantic import SearchHit, SemanticMemoryStore
    from aico.ai.memory.working import WorkingMemoryStore, WorkingMessage
    from aico.data.repositories.conversations import Attachment

__all__ = [
    "AsyncMemoryManager",
    "Attachment",
    "ContextBundle",
    "ForgetReport",
    "MaintenanceReport",
    "MemoryManager",
    "RepairReport",
    "RotationReport",
    "SearchHit",
    "SemanticMemoryStore",
    "WorkingMemoryStore",
    "WorkingMessage",
]

_HOMES = {
    "AsyncMemoryManager": "aico.ai.memory.async_manager",
    "Attachment": "aico.data.repositories.conversations",
    "ContextBundle": "aico.ai.memory.manager",
    "ForgetReport": "aico.ai.memory.manager",
    "MaintenanceReport": "aico.ai.memory.manager",
    "MemoryManager": "aico.ai.memory.manager",
    "RepairReport": "aico.ai.memory.manager",
    "RotationReport": "aico.ai.memory.manager",
    "SearchHit": "aico.ai.memory.semantic",
    "SemanticMemoryStore": "aico.ai.memory.semantic",
    "WorkingMemoryStore": "aico.ai.memory.working",
    "WorkingMessage": "aico.ai.memory.working",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'aico.ai.memory' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
