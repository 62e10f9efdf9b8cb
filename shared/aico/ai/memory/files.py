"""The file index in use: files indexed into ``file_index.db`` and into semantic memory.

Filled in by the file-index issue (#11); ``MemoryManager.files`` returns one per manager.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aico.ai.memory.manager import MemoryManager

__all__ = ["FileMemory"]


class FileMemory:
    """Coordinates ``file_index.db`` and the semantic store for one manager."""

    def __init__(self, manager: MemoryManager) -> None:
        self._manager = manager
