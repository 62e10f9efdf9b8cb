"""``DataDir``: every path of a data dir, in one place.

Nothing else in aico spells out where a file of a data dir lives; stores are given these
paths (or the ``DataDir``) by whoever opens them::

    <root>/
    ├── keys/master.key                  the wrapped master key (``key_file``)
    ├── db/core/aico.db                  ``database("core")``
    ├── db/core/conversations.db         ``database("conversations")``
    ├── db/core/sessions.db              ``database("sessions")``
    ├── db/knowledge/knowledge.db        ``database("knowledge")``
    ├── db/knowledge/file_index.db       ``database("file_index")``
    ├── memory/working/                  LMDB working memory (``working_memory``)
    ├── memory/semantic/chroma/          the Chroma index (``chroma``)
    ├── memory/semantic/index-rekey.pending   set while the index awaits a rebuild
    ├── analytics/                       the encrypted DuckDB copy, spill files (``analytics``)
    ├── locks/                           who has the data dir open (``aico.locking``)
    └── backups/                         backup archives (``backups``)

Building a ``DataDir`` touches nothing on disk.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Final

from aico.errors import InvalidInput

__all__ = ["DATABASE_FILES", "DataDir"]

DATABASE_FILES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "core": "db/core/aico.db",
        "conversations": "db/core/conversations.db",
        "sessions": "db/core/sessions.db",
        "knowledge": "db/knowledge/knowledge.db",
        "file_index": "db/knowledge/file_index.db",
    }
)
"""Database name -> its file, relative to the data dir (POSIX spelling)."""


@dataclass(frozen=True, init=False)
class DataDir:
    """The layout of one data dir: ``DataDir(root)``, then ask it for any path."""

    root: Path

    def __init__(self, root: str | os.PathLike[str]) -> None:
        object.__setattr__(self, "root", Path(root))

    @classmethod
    def of(cls, data_dir: DataDir | str | os.PathLike[str]) -> DataDir:
        """``data_dir`` itself if it is a ``DataDir``, else the layout rooted there."""
        return data_dir if isinstance(data_dir, DataDir) else cls(data_dir)

    # ---- keys and databases ----------------------------------------------------------

    @property
    def key_file(self) -> Path:
        """``keys/master.key``: the master key, wrapped under the passphrase."""
        return self.root / "keys" / "master.key"

    @property
    def databases(self) -> Mapping[str, Path]:
        """Every encrypted libSQL database: name -> file (read-only mapping)."""
        return MappingProxyType({name: self.root / rel for name, rel in DATABASE_FILES.items()})

    def database(self, name: str) -> Path:
        """The file of database ``name``; ``InvalidInput`` naming the known ones otherwise."""
        try:
            return self.root / DATABASE_FILES[name]
        except KeyError:
            known = ", ".join(sorted(DATABASE_FILES))
            raise InvalidInput(f"unknown database {name!r}; known: {known}") from None

    # ---- memory ------------------------------------------------------------------------

    @property
    def working_memory(self) -> Path:
        """``memory/working``: the LMDB environment of working memory."""
        return self.root / "memory" / "working"

    @property
    def semantic(self) -> Path:
        """``memory/semantic``: what semantic memory keeps outside libSQL."""
        return self.root / "memory" / "semantic"

    @property
    def chroma(self) -> Path:
        """``memory/semantic/chroma``: the local Chroma index (derived; rebuildable)."""
        return self.semantic / "chroma"

    @property
    def index_rebuild_marker(self) -> Path:
        """Present while a key rotation's Chroma index awaits its rebuild."""
        return self.semantic / "index-rekey.pending"

    @property
    def analytics(self) -> Path:
        """``analytics/``: the encrypted DuckDB copy (``aico.analytics``) and its spill files."""
        return self.root / "analytics"

    # ---- processes and operations ------------------------------------------------------

    @property
    def lock_dir(self) -> Path:
        """``locks/``: the files through which processes sharing the data dir see each other."""
        return self.root / "locks"

    @property
    def lock_file(self) -> Path:
        """``locks/data-dir.lock``: shared while a store is open, exclusive for a rotation."""
        return self.lock_dir / "data-dir.lock"

    @property
    def lock_gate(self) -> Path:
        """``locks/gate.lock``: serialises the switch to exclusive (see ``aico.locking``)."""
        return self.lock_dir / "gate.lock"

    @property
    def lock_holders(self) -> Path:
        """``locks/holders/``: one file per open store, named ``<pid>-<random>``."""
        return self.lock_dir / "holders"

    @property
    def backups(self) -> Path:
        """``backups/``: where backup archives of this data dir go."""
        return self.root / "backups"
