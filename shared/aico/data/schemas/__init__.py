"""The built-in schemas; importing this package registers them in ``default_registry``.

Each module owns one database. ``DATABASE_FILES`` maps database names to their place in
the data dir (the layout of Aircher's storage spec, plus AICO's core ``aico.db``).
"""

from aico.data.schemas import conversations, core, file_index, knowledge, memory, sessions

__all__ = [
    "DATABASE_FILES",
    "conversations",
    "core",
    "file_index",
    "knowledge",
    "memory",
    "sessions",
]

DATABASE_FILES: dict[str, str] = {
    "core": "db/core/aico.db",
    "conversations": "db/core/conversations.db",
    "sessions": "db/core/sessions.db",
    "knowledge": "db/knowledge/knowledge.db",
    "file_index": "db/knowledge/file_index.db",
}
