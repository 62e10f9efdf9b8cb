"""Analytics over aico's stores with DuckDB (filled in by the analytics issue, #14).

``MemoryManager.analytics`` returns one ``Analytics`` per manager.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aico.ai.memory.manager import MemoryManager

__all__ = ["Analytics"]


class Analytics:
    """The analytical side of one manager's data dir."""

    def __init__(self, manager: MemoryManager) -> None:
        self._manager = manager
