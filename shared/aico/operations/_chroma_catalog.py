"""The ids an embedded Chroma index holds, read from its catalog without chromadb.

Why not ask chromadb: it writes to its files even to read (so a read-only health check or
``aico doctor`` may not open it), and it loads the whole HNSW index first. Its catalog,
``chroma.sqlite3``, is a rollback-journal SQLite file that Python's ``sqlite3`` opens with
``mode=ro``: a shared lock for the read, nothing created or written. The ids are the
metadata segment's ``embeddings.embedding_id``, which for aico are the opaque ``chroma_id``
of each segment (never text). This reads chromadb's private schema, so it is pinned with
chromadb (1.5.x); any failure is reported as "not read", never as drift.
"""

from __future__ import annotations

import sqlite3
import urllib.parse
from pathlib import Path

__all__ = ["CatalogUnreadable", "catalog_ids"]

_SQLITE = "chroma.sqlite3"
_IDS = (
    "SELECT e.embedding_id FROM embeddings e JOIN segments s ON s.id = e.segment_id "
    "WHERE s.scope = 'METADATA'"
)


class CatalogUnreadable(Exception):
    """Internal: the catalog could not be read (the caller reports why, as a class name)."""


def catalog_ids(chroma_dir: Path) -> set[str]:
    """Every id the index's metadata segments hold; an empty set for no index yet."""
    path = chroma_dir / _SQLITE
    if not path.is_file():
        if chroma_dir.is_dir() and any(chroma_dir.iterdir()):
            raise CatalogUnreadable(f"{_SQLITE} is missing")
        return set()
    uri = f"file:{urllib.parse.quote(str(path.absolute()), safe='/')}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=1.0)
    except sqlite3.Error as exc:
        raise CatalogUnreadable(type(exc).__name__) from None
    try:
        return {str(row[0]) for row in conn.execute(_IDS)}
    except sqlite3.Error as exc:
        raise CatalogUnreadable(type(exc).__name__) from None
    finally:
        conn.close()
