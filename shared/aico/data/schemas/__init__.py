"""The built-in schemas; importing this package registers them in ``default_registry``.

Each module owns one database. ``DATABASE_FILES`` maps database names to their place in
the data dir (the layout of Aircher's storage spec, plus AICO's core ``aico.db``).
"""

from aico.data.schemas import conversations, core, file_index, knowledge, memory, sessions

__all__ = [
    "DATABASE_FILES",
    "FEATURE_SCHEMA_MODULES",
    "conversations",
    "core",
    "file_index",
    "knowledge",
    "load_feature_schemas",
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

# Schemas that live beside the feature that owns them. They are imported on demand (not at
# import time of this package) so that ``aico.data`` does not import the memory packages.
FEATURE_SCHEMA_MODULES: tuple[str, ...] = ("aico.ai.memory.semantic.schema",)


def load_feature_schemas() -> None:
    """Register every feature schema, so status and migrations always see all of them."""
    import importlib

    for name in FEATURE_SCHEMA_MODULES:
        importlib.import_module(name)
