"""The knowledge store in use (``knowledge.db``): decisions, components, patterns, feedback.

Filled in by the knowledge issue (#11); ``MemoryManager.knowledge`` returns one per manager.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aico.ai.memory.manager import MemoryManager

__all__ = ["Knowledge"]


class Knowledge:
    """The knowledge repositories of one manager's data dir."""

    def __init__(self, manager: MemoryManager) -> None:
        self._manager = manager
