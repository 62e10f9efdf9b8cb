"""Repositories over ``file_index.db`` and the file rows of ``knowledge.db``.

``file_index.db`` (schema ``file_index`` v2): a ``files`` row per (user, root, path) with a
stat cache; ``file_changes``, ``file_relationships``, ``file_snippets``,
``file_access_patterns`` and ``file_relevance_scores`` hang off it and cascade with it.
A deleted file keeps its row (``deleted_at`` set) so that its history survives.

``knowledge.db`` (schema ``knowledge`` v1, used as it is): ``embedding_metadata`` has one row
per chunk embedded (its id is the segment id) and ``search_indexes`` one row per user
describing that user's file index (model, dimension, item count). Neither table has a user
column, so ids carry the ownership: a chunk row by its segment id (found through the
user's files), an index row as ``files/<user_id>``.

These classes take a connection and never open one; callers own transactions. Times are
unix seconds (floats).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Any

from aico.data.repositories._base import Connection, chunks, load_json, new_id

__all__ = [
    "CHANGE_TYPES",
    "RELATIONSHIP_TYPES",
    "AccessRepository",
    "ChangeRepository",
    "EmbeddingRecord",
    "FileChange",
    "FileIndexRepository",
    "FileRecord",
    "FileRelationship",
    "FileRepository",
    "RelationshipRepository",
    "RelevanceRepository",
    "SnippetRepository",
    "StoredSnippet",
]

CHANGE_TYPES = ("created", "modified", "deleted", "renamed", "moved")
RELATIONSHIP_TYPES = ("imports", "requires", "includes", "references", "tests", "documents")


@dataclass
class FileRecord:
    """One ``files`` row."""

    id: str
    user_id: str
    root_path: str
    rel_path: str
    path: str
    name: str
    extension: str | None = None
    size_bytes: int | None = None
    permissions: str | None = None
    created_at: float | None = None
    modified_at: float | None = None
    accessed_at: float | None = None
    content_hash: str | None = None
    git_status: str | None = None
    is_binary: bool = False
    language: str | None = None
    encoding: str | None = None
    line_count: int | None = None
    stat_size: int | None = None
    stat_mtime_ns: int | None = None
    stat_ctime_ns: int | None = None
    stat_inode: int | None = None
    stat_device: int | None = None
    chunk_count: int | None = 0
    indexed_at: float | None = None
    deleted_at: float | None = None

    @property
    def stat_key(self) -> tuple[int | None, ...]:
        return (
            self.stat_size,
            self.stat_mtime_ns,
            self.stat_ctime_ns,
            self.stat_inode,
            self.stat_device,
        )

    def __repr__(self) -> str:  # paths are the user's: keep them out of logs and tracebacks
        return f"FileRecord(id={self.id!r}, deleted={self.deleted_at is not None})"


_FILE_COLUMNS = tuple(f.name for f in fields(FileRecord))


def _file(row: dict[str, Any]) -> FileRecord:
    values = {name: row[name] for name in _FILE_COLUMNS}
    values["is_binary"] = bool(values["is_binary"])
    return FileRecord(**values)


class FileRepository:
    """``files`` rows of one user at a time."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def upsert(self, record: FileRecord) -> None:
        names = ", ".join(_FILE_COLUMNS)
        marks = ", ".join("?" * len(_FILE_COLUMNS))
        updates = ", ".join(f"{n} = excluded.{n}" for n in _FILE_COLUMNS if n != "id")
        self.conn.execute(
            f"INSERT INTO files ({names}) VALUES ({marks}) ON CONFLICT(id) DO UPDATE SET {updates}",
            tuple(getattr(record, n) for n in _FILE_COLUMNS),
        )

    def set_chunk_count(self, file_id: str, count: int | None) -> None:
        self.conn.execute("UPDATE files SET chunk_count = ? WHERE id = ?", (count, file_id))

    def of_root(self, user_id: str, root_path: str) -> list[FileRecord]:
        """Every row under one root, deleted ones included."""
        rows = self.conn.fetch_all(
            "SELECT * FROM files WHERE user_id = ? AND root_path = ?", (user_id, root_path)
        )
        return [_file(r) for r in rows]

    def get(self, user_id: str, file_id: str) -> FileRecord | None:
        row = self.conn.fetch_one(
            "SELECT * FROM files WHERE user_id = ? AND id = ?", (user_id, file_id)
        )
        return None if row is None else _file(row)

    def find(self, user_id: str, path: str) -> list[FileRecord]:
        """Rows of ``user_id`` at an absolute path or a path relative to a root."""
        rows = self.conn.fetch_all(
            "SELECT * FROM files WHERE user_id = ? AND (path = ? OR rel_path = ?) "
            "ORDER BY deleted_at IS NOT NULL, indexed_at DESC",
            (user_id, path, path),
        )
        return [_file(r) for r in rows]

    def list_files(
        self,
        user_id: str,
        *,
        root_path: str | None = None,
        include_deleted: bool = False,
        limit: int = 1000,
    ) -> list[FileRecord]:
        sql = "SELECT * FROM files WHERE user_id = ?"
        params: list[Any] = [user_id]
        if root_path is not None:
            sql += " AND root_path = ?"
            params.append(root_path)
        if not include_deleted:
            sql += " AND deleted_at IS NULL"
        sql += " ORDER BY root_path, rel_path LIMIT ?"
        params.append(limit)
        return [_file(r) for r in self.conn.fetch_all(sql, params)]

    def by_ids(self, user_id: str, ids: Iterable[str]) -> dict[str, FileRecord]:
        found: dict[str, FileRecord] = {}
        for part in chunks(sorted(set(ids)), 500):
            marks = ",".join("?" * len(part))
            rows = self.conn.fetch_all(
                f"SELECT * FROM files WHERE user_id = ? AND id IN ({marks})", (user_id, *part)
            )
            found.update((str(r["id"]), _file(r)) for r in rows)
        return found

    def ids_of_user(self, user_id: str) -> list[str]:
        rows = self.conn.fetch_all("SELECT id FROM files WHERE user_id = ?", (user_id,))
        return [str(r["id"]) for r in rows]

    def delete_user(self, user_id: str) -> int:
        """Delete every row of ``user_id`` (the other tables follow by cascade)."""
        count = int(
            self.conn.fetch_value("SELECT count(*) FROM files WHERE user_id = ?", (user_id,)) or 0
        )
        self.conn.execute("DELETE FROM files WHERE user_id = ?", (user_id,))
        return count


@dataclass(frozen=True)
class FileChange:
    id: str
    file_id: str
    change_type: str
    old_path: str | None
    new_path: str | None
    old_hash: str | None
    new_hash: str | None
    changed_at: float
    change_size: int | None
    git_commit: str | None

    def __repr__(self) -> str:
        return f"FileChange(id={self.id!r}, change_type={self.change_type!r})"


class ChangeRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(
        self,
        file_id: str,
        change_type: str,
        *,
        changed_at: float,
        old_path: str | None = None,
        new_path: str | None = None,
        old_hash: str | None = None,
        new_hash: str | None = None,
        change_size: int | None = None,
        git_commit: str | None = None,
    ) -> None:
        self.conn.execute(
            "INSERT INTO file_changes (id, file_id, change_type, old_path, new_path, old_hash, "
            "new_hash, changed_at, change_size, git_commit) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                new_id(),
                file_id,
                change_type,
                old_path,
                new_path,
                old_hash,
                new_hash,
                changed_at,
                change_size,
                git_commit,
            ),
        )

    def of_user(
        self, user_id: str, *, file_id: str | None = None, limit: int = 100
    ) -> list[FileChange]:
        sql = "SELECT c.* FROM file_changes c JOIN files f ON f.id = c.file_id WHERE f.user_id = ?"
        params: list[Any] = [user_id]
        if file_id is not None:
            sql += " AND c.file_id = ?"
            params.append(file_id)
        sql += " ORDER BY c.changed_at DESC, c.rowid DESC LIMIT ?"
        params.append(limit)
        return [
            FileChange(
                id=str(r["id"]),
                file_id=str(r["file_id"]),
                change_type=str(r["change_type"]),
                old_path=r["old_path"],
                new_path=r["new_path"],
                old_hash=r["old_hash"],
                new_hash=r["new_hash"],
                changed_at=float(r["changed_at"]),
                change_size=r["change_size"],
                git_commit=r["git_commit"],
            )
            for r in self.conn.fetch_all(sql, params)
        ]


@dataclass(frozen=True)
class FileRelationship:
    """A relationship; ``target_file_id`` is None while what it names is not indexed."""

    id: str
    source_file_id: str
    target_file_id: str | None
    relationship_type: str
    metadata: dict[str, Any]


class RelationshipRepository:
    """Relationships with their raw reference in ``metadata``, so they resolve without reads."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def replace_for_source(
        self, source_file_id: str, rows: Sequence[FileRelationship], *, now: float
    ) -> None:
        self.conn.execute(
            "DELETE FROM file_relationships WHERE source_file_id = ?", (source_file_id,)
        )
        for row in rows:
            self.conn.execute(
                "INSERT OR IGNORE INTO file_relationships (id, source_file_id, target_file_id, "
                "relationship_type, discovered_at, last_verified, metadata) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    new_id(),
                    source_file_id,
                    row.target_file_id,
                    row.relationship_type,
                    now,
                    now,
                    json.dumps(row.metadata, sort_keys=True),
                ),
            )

    def of_user(self, user_id: str) -> list[FileRelationship]:
        rows = self.conn.fetch_all(
            "SELECT r.* FROM file_relationships r JOIN files f ON f.id = r.source_file_id "
            "WHERE f.user_id = ?",
            (user_id,),
        )
        return [_relationship(r) for r in rows]

    def of_file(self, file_id: str) -> list[FileRelationship]:
        """Both directions: what the file names and what names it."""
        rows = self.conn.fetch_all(
            "SELECT * FROM file_relationships WHERE source_file_id = ? OR target_file_id = ? "
            "ORDER BY relationship_type",
            (file_id, file_id),
        )
        return [_relationship(r) for r in rows]

    def dependents(self, user_id: str) -> dict[str, int]:
        """For each live file of the user, how many other files relate to it."""
        rows = self.conn.fetch_all(
            "SELECT r.target_file_id AS id, count(DISTINCT r.source_file_id) AS n "
            "FROM file_relationships r JOIN files f ON f.id = r.target_file_id "
            "WHERE f.user_id = ? AND f.deleted_at IS NULL GROUP BY r.target_file_id",
            (user_id,),
        )
        return {str(r["id"]): int(r["n"]) for r in rows}


def _relationship(row: dict[str, Any]) -> FileRelationship:
    return FileRelationship(
        id=str(row["id"]),
        source_file_id=str(row["source_file_id"]),
        target_file_id=None if row["target_file_id"] is None else str(row["target_file_id"]),
        relationship_type=str(row["relationship_type"]),
        metadata=load_json(row["metadata"]),
    )


@dataclass(frozen=True)
class StoredSnippet:
    snippet_type: str
    content: str
    line_start: int
    line_end: int


class SnippetRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def replace(self, file_id: str, snippets: Sequence[StoredSnippet], *, now: float) -> None:
        self.conn.execute("DELETE FROM file_snippets WHERE file_id = ?", (file_id,))
        for s in snippets:
            self.conn.execute(
                "INSERT INTO file_snippets (id, file_id, snippet_type, content, line_start, "
                "line_end, last_updated) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (new_id(), file_id, s.snippet_type, s.content, s.line_start, s.line_end, now),
            )

    def of_file(self, file_id: str) -> list[StoredSnippet]:
        rows = self.conn.fetch_all(
            "SELECT snippet_type, content, line_start, line_end FROM file_snippets "
            "WHERE file_id = ? ORDER BY line_start, snippet_type",
            (file_id,),
        )
        return [
            StoredSnippet(
                str(r["snippet_type"]), str(r["content"] or ""), r["line_start"], r["line_end"]
            )
            for r in rows
        ]


class AccessRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(
        self,
        file_id: str,
        access_type: str,
        *,
        accessed_at: float,
        accessor: str | None,
        context_id: str | None,
        duration_ms: int | None,
        success: bool,
    ) -> None:
        self.conn.execute(
            "INSERT INTO file_access_patterns (id, file_id, access_type, accessed_at, accessor, "
            "context_id, duration_ms, success) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                new_id(),
                file_id,
                access_type,
                accessed_at,
                accessor,
                context_id,
                duration_ms,
                success,
            ),
        )

    def signals(self, user_id: str) -> dict[str, tuple[int, int, float | None]]:
        """Per file of the user: (accesses, successful accesses, last access time)."""
        rows = self.conn.fetch_all(
            "SELECT a.file_id AS id, count(*) AS n, sum(CASE WHEN a.success THEN 1 ELSE 0 END) "
            "AS ok, max(a.accessed_at) AS last FROM file_access_patterns a "
            "JOIN files f ON f.id = a.file_id WHERE f.user_id = ? GROUP BY a.file_id",
            (user_id,),
        )
        return {
            str(r["id"]): (
                int(r["n"]),
                int(r["ok"] or 0),
                None if r["last"] is None else float(r["last"]),
            )
            for r in rows
        }


class RelevanceRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def replace(
        self,
        user_id: str,
        context_type: str,
        rows: Sequence[tuple[str, Any]],
        *,
        now: float,
        expires_at: float,
    ) -> None:
        """Store one score per file (``rows``: ``(file_id, aico.files.Score)``)."""
        self.conn.execute(
            "DELETE FROM file_relevance_scores WHERE context_type = ? AND file_id IN "
            "(SELECT id FROM files WHERE user_id = ?)",
            (context_type, user_id),
        )
        for file_id, s in rows:
            self.conn.execute(
                "INSERT INTO file_relevance_scores (id, file_id, context_type, base_score, "
                "frequency_score, recency_score, dependency_score, success_correlation, "
                "final_score, calculated_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    new_id(),
                    file_id,
                    context_type,
                    s.base,
                    s.frequency,
                    s.recency,
                    s.dependency,
                    s.success_correlation,
                    s.final,
                    now,
                    expires_at,
                ),
            )


@dataclass(frozen=True)
class EmbeddingRecord:
    segment_id: str
    file_path: str
    chunk_index: int
    content_hash: str
    content_preview: str


class FileIndexRepository:
    """``knowledge.db``'s ``embedding_metadata`` and ``search_indexes`` rows for files."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def put_chunks(
        self, rows: Sequence[EmbeddingRecord], *, model: str, dimension: int, now: float
    ) -> None:
        for r in rows:
            self.conn.execute(
                "INSERT INTO embedding_metadata (id, file_path, chunk_index, embedding_model, "
                "dimension, content_hash, created_at, content_preview) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
                "file_path = excluded.file_path, embedding_model = excluded.embedding_model, "
                "dimension = excluded.dimension",
                (
                    r.segment_id,
                    r.file_path,
                    r.chunk_index,
                    model,
                    dimension,
                    r.content_hash,
                    now,
                    r.content_preview,
                ),
            )

    def set_path(self, segment_ids: Sequence[str], path: str) -> None:
        for part in chunks(list(segment_ids), 500):
            marks = ",".join("?" * len(part))
            self.conn.execute(
                f"UPDATE embedding_metadata SET file_path = ? WHERE id IN ({marks})", (path, *part)
            )

    def delete(self, segment_ids: Sequence[str]) -> int:
        deleted = 0
        for part in chunks(list(segment_ids), 500):
            marks = ",".join("?" * len(part))
            deleted += int(
                self.conn.fetch_value(
                    f"SELECT count(*) FROM embedding_metadata WHERE id IN ({marks})", part
                )
                or 0
            )
            self.conn.execute(f"DELETE FROM embedding_metadata WHERE id IN ({marks})", part)
        return deleted

    def count(self, segment_ids: Sequence[str]) -> int:
        total = 0
        for part in chunks(list(segment_ids), 500):
            marks = ",".join("?" * len(part))
            total += int(
                self.conn.fetch_value(
                    f"SELECT count(*) FROM embedding_metadata WHERE id IN ({marks})", part
                )
                or 0
            )
        return total

    def put_index(
        self, user_id: str, *, model: str, dimension: int, item_count: int, now: float
    ) -> None:
        config = json.dumps(
            {"source": "file", "user_id": user_id, "dense": "chroma", "lexical": "fts5"},
            sort_keys=True,
        )
        self.conn.execute(
            "INSERT INTO search_indexes (id, index_type, index_path, embedding_model, dimension, "
            "item_count, last_rebuilt, config) VALUES (?, 'exact', NULL, ?, ?, ?, ?, ?) "
            "ON CONFLICT(id) DO UPDATE SET embedding_model = excluded.embedding_model, "
            "dimension = excluded.dimension, item_count = excluded.item_count, "
            "last_rebuilt = excluded.last_rebuilt, config = excluded.config",
            (f"files/{user_id}", model, dimension, item_count, now, config),
        )

    def index_of(self, user_id: str) -> dict[str, Any] | None:
        return self.conn.fetch_one(
            "SELECT * FROM search_indexes WHERE id = ?", (f"files/{user_id}",)
        )

    def delete_index(self, user_id: str) -> None:
        self.conn.execute("DELETE FROM search_indexes WHERE id = ?", (f"files/{user_id}",))
