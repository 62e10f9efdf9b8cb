"""The built-in schemas; importing this package registers them in ``default_registry``.

Each module owns one database. ``DATABASE_FILES`` maps database names to their place in
the data dir (Aircher's storage spec plus AICO's core ``aico.db``); it is a copy of
``aico.layout.DATABASE_FILES``, which owns that layout, kept here for compatibility.
Schemas that live beside their feature (``aico.ai.memory.semantic.schema``) register
themselves when their module is imported; ``aico.ai.memory.stores`` imports it before
opening a store.
"""

from aico.data.schemas import conversations, core, file_index, knowledge, memory, sessions
from aico.layout import DATABASE_FILES as _LAYOUT_FILES

__all__ = [
    "DATABASE_FILES",
    "conversations",
    "core",
    "file_index",
    "knowledge",
    "memory",
    "sessions",
]

DATABASE_FILES: dict[str, str] = dict(_LAYOUT_FILES)
