"""The functions ``aico lmdb …`` wraps: each one call on a store, returning plain data."""

from __future__ import annotations

from typing import Any

from aico.ai.memory.working._message import WorkingMessage
from aico.ai.memory.working._store import WorkingMemoryStore

__all__ = ["list_session", "status", "sweep"]


def status(store: WorkingMemoryStore) -> dict[str, Any]:
    """Entries, sessions, bytes, expired-pending entries and map size (``aico lmdb status``)."""
    return store.stats()


def sweep(store: WorkingMemoryStore, *, now: float | None = None, limit: int | None = None) -> int:
    """Remove expired entries; returns how many messages and values went (``aico lmdb sweep``)."""
    return store.sweep(now=now, limit=limit)


def list_session(
    store: WorkingMemoryStore, session_id: str, *, limit: int = 50
) -> list[WorkingMessage]:
    """The session's newest ``limit`` live messages, oldest first, decrypted (``aico lmdb ls``)."""
    return store.recent(session_id, limit, newest_first=False)

