"""The file index in use: folders indexed into ``file_index.db`` and into semantic memory.

``FileMemory`` is the coordinator of the file part (``MemoryManager.files``): the pure logic
lives in ``aico.files`` (walk, ignore rules, stat cache, detection, relationships, snippets,
chunks, relevance); the rows in ``aico.data.repositories.files``. What one ``index`` writes,
in this order, so that a crash anywhere is finished by the next ``index`` of the same root:

1. ``file_index.db``, one transaction: ``files`` rows (stat cache, hash, language...),
   ``file_changes``, ``file_snippets``, ``file_relationships``. A file whose chunks must be
   (re)written gets ``chunk_count = NULL``: "chunks pending".
2. semantic memory: the file's chunks as segments (``source="file"``, ``source_ref`` =
   ``files.id``, deterministic ids, ``skip_existing``), then its other segments deleted;
   ``knowledge.db``'s ``embedding_metadata`` rows likewise.
3. ``file_index.db``: ``chunk_count`` set. A row still pending is re-read by the next index
   (the stat cache is not trusted for it), so its chunks are never left half written.

A rename or move is detected by hash and keeps the row (and so ``source_ref``): only paths
change, no segment is rewritten. File contents and paths are stored only in the encrypted
databases; nothing here logs either, and errors name arguments, not values.
"""

from __future__ import annotations

import contextlib
import hashlib
import posixpath
import stat as stat_mod
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aico.data.repositories.files import (
    AccessRepository,
    ChangeRepository,
    EmbeddingRecord,
    FileChange,
    FileIndexRepository,
    FileRecord,
    FileRelationship,
    FileRepository,
    RelationshipRepository,
    RelevanceRepository,
    SnippetRepository,
    StoredSnippet,
)
from aico.data.repositories.users import UserService
from aico.errors import InvalidInput, NotFound, ReadOnly, SemanticMemoryError
from aico.files import (
    DEFAULT_IGNORES,
    FileSignals,
    IgnoreRules,
    Reference,
    Score,
    chunk_text,
    git_state,
    is_test_file,
    language_of,
    references,
    resolve,
    score,
    snippets,
    stat_key,
)
from aico.files.scan import Plan, Read, ScanResult, plan, scan
from aico.validation import MAX_QUERY, check_count, check_id, check_text

if TYPE_CHECKING:
    from aico.ai.memory.manager import MemoryManager
    from aico.ai.memory.semantic import SearchHit, SearchMode

__all__ = ["FileDetails", "FileHit", "FileMemory", "IndexReport", "RankedFile"]

ACCESS_TYPES = ("read", "write", "execute", "context_inclusion")
_SCORE_TTL_S = 86_400.0
_PREVIEW_CHARS = 80
_CHUNK_BATCH = 256  # files per semantic write


def _batches(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


@dataclass(frozen=True)
class IndexReport:
    """What one ``index`` pass found and did (counts only: no path or content)."""

    files: int = 0
    read: int = 0
    unchanged: int = 0
    created: int = 0
    modified: int = 0
    deleted: int = 0
    renamed: int = 0
    moved: int = 0
    binary: int = 0
    ignored: int = 0
    symlinks_skipped: int = 0
    unreadable: int = 0
    unstable: int = 0
    chunks_added: int = 0
    chunks_deleted: int = 0
    relationships: int = 0
    snippets: int = 0
    git: bool = False
    seconds: float = 0.0


@dataclass(frozen=True)
class FileHit:
    """A search hit of a file chunk, with the file it came from (``None`` if gone since)."""

    hit: SearchHit
    file: FileRecord | None


@dataclass(frozen=True)
class RankedFile:
    file: FileRecord
    score: Score


@dataclass(frozen=True)
class FileDetails:
    file: FileRecord
    snippets: list[StoredSnippet]
    relationships: list[tuple[str, str, FileRecord | None, dict[str, Any]]]  # type, dir, other
    changes: list[FileChange] = field(default_factory=list)


def segment_id(user_id: str, file_id: str, content_hash: str, index: int) -> str:
    """A chunk's segment id: the same chunk of the same content always gets the same id."""
    raw = f"file\0{user_id}\0{file_id}\0{content_hash}\0{index}".encode()
    return "f-" + hashlib.sha256(raw).hexdigest()[:40]


class FileMemory:
    """Coordinates ``file_index.db``, ``knowledge.db``'s file rows and the semantic store."""

    def __init__(self, manager: MemoryManager) -> None:
        self._manager = manager
        self._lock = threading.Lock()  # one index pass at a time per manager

    # ---- connections and checks ---------------------------------------------------------

    @property
    def _conn(self) -> Any:
        return self._manager.store.connection("file_index")

    @property
    def _knowledge(self) -> Any:
        return self._manager.store.connection("knowledge")

    def _writable(self, verb: str) -> None:
        self._manager._check_open()
        if self._manager.read_only:
            raise ReadOnly(f"files.{verb} writes, and this memory manager was opened read-only")

    def _require_user(self, user_id: str) -> str:
        check_id(user_id, "user_id")
        if not UserService(self._manager.store.connection("core")).exists(user_id):
            raise NotFound("no user with this user_id")
        return user_id

    @staticmethod
    def _root(path: str | Path) -> Path:
        if not isinstance(path, str | Path):
            raise InvalidInput("path must be a string or a path")
        check_text(str(path), "path", required=True, limit=4096)
        try:
            root = Path(path).expanduser().resolve(strict=True)
        except (OSError, RuntimeError):
            raise InvalidInput("path must be an existing folder") from None
        if not root.is_dir():
            raise InvalidInput("path must be an existing folder")
        return root

    # ---- indexing -----------------------------------------------------------------------

    def index(
        self,
        user_id: str,
        path: str | Path,
        *,
        ignore: Sequence[str] | None = None,
        use_gitignore: bool = True,
        embed: bool = True,
    ) -> IndexReport:
        """Index the folder ``path`` for ``user_id``; a re-index reads only changed files.

        ``ignore``: git-style patterns skipped everywhere (default ``DEFAULT_IGNORES``);
        ``.gitignore`` files apply too unless ``use_gitignore=False``. With ``embed`` the
        semantic outbox is processed afterwards (dense search at once); without, chunks are
        searchable by BM25 at once and densely after the next maintenance.
        """
        self._writable("index")
        self._require_user(user_id)
        root = self._root(path)
        patterns = tuple(DEFAULT_IGNORES if ignore is None else ignore)
        for pattern in patterns:
            check_text(pattern, "ignore pattern", required=True, limit=1024)
        started = time.perf_counter()
        with self._lock:
            report = self._index(user_id, root, IgnoreRules(patterns, use_gitignore), embed)
        return _with(report, seconds=time.perf_counter() - started)

    def _index(self, user_id: str, root: Path, rules: IgnoreRules, embed: bool) -> IndexReport:
        files = FileRepository(self._conn)
        root_s = str(root)
        known = {r.rel_path: r for r in files.of_root(user_id, root_s)}
        found = scan(root, rules, known)
        todo = plan(found, known)
        git = git_state(root)
        now = self._manager.clock()
        written = self._write_index(user_id, root_s, known, found, todo, git, now)
        added, removed = self._write_chunks(user_id, written, todo, known, root_s, now)
        if embed and added:
            # Segments are committed and BM25-searchable already; maintenance retries.
            with contextlib.suppress(SemanticMemoryError):
                self._manager.semantic.process_outbox()
        binary = sum(1 for r in found.read.values() if r.detected.is_binary)
        return IndexReport(
            files=len(found.seen),
            read=len(found.read),
            unchanged=len(found.unchanged),
            created=len(todo.created),
            modified=len(todo.modified),
            deleted=len(todo.deleted),
            renamed=len(todo.renamed),
            moved=len(todo.moved),
            binary=binary,
            ignored=found.walk.ignored,
            symlinks_skipped=found.walk.symlinks_skipped,
            unreadable=found.walk.unreadable + found.unreadable,
            unstable=sum(1 for r in found.read.values() if not r.result.stable),
            chunks_added=added,
            chunks_deleted=removed,
            relationships=written.relationships,
            snippets=written.snippets,
            git=git.in_repo,
        )

    def _write_index(
        self,
        user_id: str,
        root: str,
        known: dict[str, FileRecord],
        found: ScanResult,
        todo: Plan,
        git: Any,
        now: float,
    ) -> _Written:
        conn = self._conn
        files = FileRepository(conn)
        changes = ChangeRepository(conn)
        out = _Written()
        with conn.transaction():
            for old, new in [*todo.renamed.items(), *todo.moved.items()]:
                row = known[old]
                kind = "renamed" if old in todo.renamed else "moved"
                stale = known.get(new)
                if stale is not None:  # a tombstone at the new path: the moved row wins
                    conn.execute("DELETE FROM files WHERE id = ?", (stale.id,))
                record = _record(row.id, user_id, root, found.read[new], git, now, row)
                record.chunk_count = row.chunk_count
                files.upsert(record)
                changes.add(
                    row.id,
                    kind,
                    changed_at=now,
                    old_path=row.path,
                    new_path=record.path,
                    old_hash=row.content_hash,
                    new_hash=record.content_hash,
                    git_commit=git.head,
                )
                out.repathed[row.id] = record.path
                out.paths[new] = record
            for rel in todo.deleted:
                row = known[rel]
                row.deleted_at, row.chunk_count = now, None
                files.upsert(row)
                changes.add(
                    row.id,
                    "deleted",
                    changed_at=now,
                    old_path=row.path,
                    old_hash=row.content_hash,
                    git_commit=git.head,
                )
                out.emptied.append(row)
            for rel in [*todo.created, *todo.modified, *todo.touched]:
                read = found.read[rel]
                prior = known.get(rel)
                file_id = prior.id if prior is not None else _new_file_id()
                record = _record(file_id, user_id, root, read, git, now, prior)
                if rel in todo.touched:
                    assert prior is not None
                    record.chunk_count = prior.chunk_count
                else:
                    record.chunk_count = None  # chunks pending until step 3
                files.upsert(record)
                out.paths[rel] = record
                if rel not in todo.touched:
                    kind = "modified" if rel in todo.modified else "created"
                    changes.add(
                        file_id,
                        kind,
                        changed_at=now,
                        old_hash=None if prior is None or kind == "created" else prior.content_hash,
                        new_hash=record.content_hash,
                        new_path=record.path,
                        change_size=record.size_bytes - (prior.size_bytes or 0)
                        if prior is not None and record.size_bytes is not None
                        else record.size_bytes,
                        git_commit=git.head,
                    )
                    out.rechunk.append((record, read))
            for rel in found.unchanged:  # git status moves without the file changing
                kept = known[rel]
                out.paths[rel] = kept
                status = git.status(rel)
                if status != kept.git_status:
                    conn.execute("UPDATE files SET git_status = ? WHERE id = ?", (status, kept.id))
            self._write_parts(out, now)
            out.relationships = self._resolve_relationships(user_id, root, out, now)
        return out

    def _write_parts(self, out: _Written, now: float) -> None:
        """Snippets and raw references of every file that was (re)read."""
        snip = SnippetRepository(self._conn)
        rels = RelationshipRepository(self._conn)
        for record, read in out.rechunk:
            text = read.detected.text
            found = [] if text is None else snippets(record.language, text)
            snip.replace(
                record.id,
                [StoredSnippet(s.snippet_type, s.content, s.line_start, s.line_end) for s in found],
                now=now,
            )
            out.snippets += len(found)
            refs = [] if text is None else references(record.language, text)
            rows = []
            for ref in refs:
                meta = {"kind": ref.kind, "spec": ref.spec, "level": ref.level}
                kind = "documents" if ref.kind == "markdown" else "imports"
                rows.append(FileRelationship("", record.id, None, kind, meta))
                if kind == "imports" and is_test_file(record.rel_path):
                    rows.append(FileRelationship("", record.id, None, "tests", meta))
            rels.replace_for_source(record.id, rows, now=now)

    def _resolve_relationships(self, user_id: str, root: str, out: _Written, now: float) -> int:
        """Point every relationship of the root at the file it names now (no file is read)."""
        by_rel = {rel: rec for rel, rec in out.paths.items()}
        live = set(by_rel)
        ids = {rec.id: rel for rel, rec in by_rel.items()}
        resolved = 0
        for row in RelationshipRepository(self._conn).of_user(user_id):
            source = ids.get(row.source_file_id)
            if source is None:
                continue  # another root's, or a deleted file's
            meta = row.metadata
            ref = Reference(
                meta.get("kind", "python"), str(meta.get("spec", "")), int(meta.get("level", 0))
            )
            target_rel = resolve(source, ref, live)
            target = None if target_rel is None or target_rel == source else by_rel[target_rel].id
            if target is not None:
                resolved += 1
            if target != row.target_file_id:
                self._conn.execute(
                    "UPDATE OR IGNORE file_relationships SET target_file_id = ?, last_verified = ? "
                    "WHERE id = ?",
                    (target, now, row.id),
                )
        return resolved

    def _write_chunks(
        self,
        user_id: str,
        written: _Written,
        todo: Plan,
        known: dict[str, FileRecord],
        root: str,
        now: float,
    ) -> tuple[int, int]:
        """Steps 2 and 3: each file's chunks, then its ``chunk_count``."""
        semantic = self._manager.semantic
        from aico.ai.memory.semantic import Segment

        model = semantic.model
        index = FileIndexRepository(self._knowledge)
        files = FileRepository(self._conn)
        added = removed = 0
        known_ids = {r.id for r in known.values()}
        for file_id, new_path in written.repathed.items():
            ids = semantic.segments_of_source(user_id, "file", file_id)
            with self._knowledge.transaction():
                index.set_path(ids, new_path)
        for batch in _batches(written.rechunk, _CHUNK_BATCH):
            # One semantic write and one transaction per database for a batch of files:
            # a commit per file made a first index about 10x slower.
            segments: list[Segment] = []
            rows: list[EmbeddingRecord] = []
            counts: list[tuple[str, int]] = []
            stale: list[str] = []
            for record, read in batch:
                text = None if read.detected.is_binary else read.detected.text
                pieces = chunk_text(text) if text else []
                assert record.content_hash is not None
                ids = [segment_id(user_id, record.id, record.content_hash, c.index) for c in pieces]
                segments.extend(
                    Segment(
                        user_id=user_id,
                        text=c.text,
                        start_ts=record.modified_at or now,
                        source="file",
                        source_ref=record.id,
                        segment_id=sid,
                    )
                    for c, sid in zip(pieces, ids, strict=True)
                )
                rows.extend(
                    EmbeddingRecord(
                        sid, record.path, c.index, record.content_hash, c.text[:_PREVIEW_CHARS]
                    )
                    for c, sid in zip(pieces, ids, strict=True)
                )
                keep = set(ids)
                if record.chunk_count is None and record.id in known_ids:
                    stale.extend(
                        s
                        for s in semantic.segments_of_source(user_id, "file", record.id)
                        if s not in keep
                    )
                counts.append((record.id, len(pieces)))
            if segments:
                added += len(semantic.add_segments(segments, index=False, skip_existing=True))
            removed += self._drop_segments(user_id, stale)
            with self._knowledge.transaction():
                index.put_chunks(rows, model=model.name, dimension=model.dimension, now=now)
            with self._conn.transaction():
                for file_id, n in counts:
                    files.set_chunk_count(file_id, n)
        for row in written.emptied:
            removed += self._drop_segments(
                user_id, semantic.segments_of_source(user_id, "file", row.id)
            )
            with self._conn.transaction():
                files.set_chunk_count(row.id, 0)
        if written.rechunk or written.emptied:
            total = int(
                self._conn.fetch_value(
                    "SELECT coalesce(sum(chunk_count), 0) FROM files "
                    "WHERE user_id = ? AND deleted_at IS NULL",
                    (user_id,),
                )
                or 0
            )
            with self._knowledge.transaction():
                index.put_index(
                    user_id, model=model.name, dimension=model.dimension, item_count=total, now=now
                )
        del todo, root
        return added, removed

    def _drop_segments(self, user_id: str, ids: list[str]) -> int:
        if not ids:
            return 0
        n = self._manager.semantic.delete_segments(ids, user_id=user_id)
        with self._knowledge.transaction():
            FileIndexRepository(self._knowledge).delete(ids)
        return n

    # ---- watching -----------------------------------------------------------------------

    def watch(
        self,
        user_id: str,
        path: str | Path,
        *,
        on_report: Callable[[IndexReport], None] | None = None,
        stop: threading.Event | None = None,
        debounce_s: float = 0.5,
        **options: Any,
    ) -> IndexReport:
        """Index, then re-index after every change under ``path`` until ``stop`` is set.

        (Or until ``KeyboardInterrupt``, which ends the watch quietly.) Changes within
        ``debounce_s`` of each other make one pass. Returns the last pass's report.
        """
        from watchdog.events import FileSystemEvent, FileSystemEventHandler
        from watchdog.observers import Observer

        report = self.index(user_id, path, **options)
        if on_report is not None:
            on_report(report)
        root = self._root(path)
        stop = stop or threading.Event()
        changed = threading.Event()

        class _Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                if event.event_type not in ("opened", "closed_no_write"):
                    changed.set()

        observer = Observer()
        observer.schedule(_Handler(), str(root), recursive=True)
        observer.start()
        try:
            while not stop.is_set():
                if not changed.wait(0.2):
                    continue
                time.sleep(debounce_s)
                changed.clear()
                report = self.index(user_id, root, **options)
                if on_report is not None:
                    on_report(report)
        except KeyboardInterrupt:
            pass
        finally:
            observer.stop()
            observer.join(timeout=5)
        return report

    # ---- reading ------------------------------------------------------------------------

    def list_files(
        self,
        user_id: str,
        *,
        root: str | Path | None = None,
        include_deleted: bool = False,
        limit: int = 1000,
    ) -> list[FileRecord]:
        """``user_id``'s indexed files (under ``root`` if given), by root and path."""
        self._manager._check_open()
        check_id(user_id, "user_id")
        check_count(limit, "limit", minimum=1, maximum=100_000)
        root_s = None if root is None else str(self._root(root))
        return FileRepository(self._conn).list_files(
            user_id, root_path=root_s, include_deleted=include_deleted, limit=limit
        )

    def get(self, user_id: str, file: str) -> FileRecord:
        """One file by id, absolute path or path relative to its root (``NotFound``)."""
        self._manager._check_open()
        check_id(user_id, "user_id")
        check_text(file, "file", required=True, limit=4096)
        repo = FileRepository(self._conn)
        row = repo.get(user_id, file) if len(file) <= 128 else None
        if row is None:
            candidates = repo.find(user_id, file)
            if not candidates and not file.startswith("/"):
                candidates = repo.find(user_id, str(Path(file).expanduser().resolve()))
            row = candidates[0] if candidates else None
        if row is None:
            raise NotFound("no indexed file with this id or path for this user")
        return row

    def show(self, user_id: str, file: str, *, changes: int = 20) -> FileDetails:
        """A file with its snippets, relationships (both directions) and latest changes."""
        row = self.get(user_id, file)
        return FileDetails(
            row,
            SnippetRepository(self._conn).of_file(row.id),
            self._related(user_id, row),
            ChangeRepository(self._conn).of_user(user_id, file_id=row.id, limit=changes),
        )

    def related(
        self, user_id: str, file: str
    ) -> list[tuple[str, str, FileRecord | None, dict[str, Any]]]:
        """``(type, "out"|"in", other file or None if unresolved, raw reference)``."""
        return self._related(user_id, self.get(user_id, file))

    def _related(
        self, user_id: str, row: FileRecord
    ) -> list[tuple[str, str, FileRecord | None, dict[str, Any]]]:
        rels = RelationshipRepository(self._conn).of_file(row.id)
        others = {r.target_file_id for r in rels} | {r.source_file_id for r in rels}
        by_id = FileRepository(self._conn).by_ids(user_id, {o for o in others if o})
        out = []
        for r in rels:
            if r.source_file_id == row.id:
                other = by_id.get(r.target_file_id) if r.target_file_id else None
                out.append((r.relationship_type, "out", other, r.metadata))
            else:
                out.append((r.relationship_type, "in", by_id.get(r.source_file_id), r.metadata))
        return out

    def changes(
        self, user_id: str, *, file: str | None = None, limit: int = 100
    ) -> list[FileChange]:
        """``file_changes`` of ``user_id`` (of one file if given), newest first."""
        self._manager._check_open()
        check_id(user_id, "user_id")
        check_count(limit, "limit", minimum=1, maximum=100_000)
        file_id = None if file is None else self.get(user_id, file).id
        return ChangeRepository(self._conn).of_user(user_id, file_id=file_id, limit=limit)

    def search(
        self, user_id: str, query: str, k: int = 10, *, mode: SearchMode = "hybrid"
    ) -> list[FileHit]:
        """The ``k`` best chunks of ``user_id``'s files for ``query``, with their files."""
        self._manager._check_open()
        check_text(query, "query", limit=MAX_QUERY)
        hits = self._manager.search(user_id, query, k, mode=mode, source="file")
        return self.with_files(user_id, hits)

    def with_files(self, user_id: str, hits: Sequence[SearchHit]) -> list[FileHit]:
        """Resolve the file hits among ``hits`` (of ``MemoryManager.search``) to their files."""
        refs = {h.source_ref for h in hits if h.source == "file" and h.source_ref}
        by_id = FileRepository(self._conn).by_ids(user_id, refs)
        return [FileHit(h, by_id.get(h.source_ref or "")) for h in hits if h.source == "file"]

    # ---- context ------------------------------------------------------------------------

    def record_access(
        self,
        user_id: str,
        file: str,
        *,
        access_type: str = "context_inclusion",
        context_id: str | None = None,
        accessor: str | None = "companion",
        duration_ms: int | None = None,
        success: bool = True,
    ) -> None:
        """Note that ``file`` was read (by default: rendered into the companion's context)."""
        self._writable("record_access")
        if access_type not in ACCESS_TYPES:
            raise InvalidInput(f"access_type must be one of {ACCESS_TYPES}")
        if context_id is not None:
            check_id(context_id, "context_id")
        if accessor is not None:
            check_id(accessor, "accessor")
        if duration_ms is not None:
            check_count(duration_ms, "duration_ms")
        if not isinstance(success, bool):
            raise InvalidInput("success must be a boolean")
        row = self.get(user_id, file)
        with self._conn.transaction():
            AccessRepository(self._conn).add(
                row.id,
                access_type,
                accessed_at=self._manager.clock(),
                accessor=accessor,
                context_id=context_id,
                duration_ms=duration_ms,
                success=success,
            )

    def context(
        self, user_id: str, query: str, k: int = 5, *, context_id: str | None = None
    ) -> list[FileHit]:
        """File chunks to render into the companion's context; each file's access recorded.

        The chunks are ranked by ``rank_for_context`` (search score plus the file's history),
        so what was useful before comes first among equally good matches.
        """
        self._writable("context")
        check_count(k, "k", minimum=1, maximum=1000)
        hits = self.search(user_id, query, k * 3)
        ranked = {r.file.id: r.score.final for r in self._rank(user_id, hits, "query")}
        hits.sort(key=lambda h: ranked.get(h.file.id, 0.0) if h.file else -1.0, reverse=True)
        chosen = [h for h in hits if h.file is not None][:k]
        for file_id in dict.fromkeys(h.file.id for h in chosen if h.file):
            self.record_access(user_id, file_id, context_id=context_id)
        return chosen

    def rank_for_context(
        self,
        user_id: str,
        query: str | None = None,
        *,
        k: int = 20,
        context_type: str = "general",
        store: bool = True,
    ) -> list[RankedFile]:
        """Files ranked for the context: frequency, recency, dependency, success (+ match).

        With a ``query``, a file's best chunk score is its ``base_score``. With ``store``
        the scores are written to ``file_relevance_scores`` (a day's ``expires_at``).
        """
        if store:
            self._writable("rank_for_context")
        else:
            self._manager._check_open()
        check_id(user_id, "user_id")
        check_count(k, "k", minimum=1, maximum=100_000)
        check_id(context_type, "context_type")
        hits = [] if query is None else self.search(user_id, query, max(k * 3, 30))
        ranked = self._rank(user_id, hits, context_type if query is None else "query")
        if query is not None:
            ranked = [r for r in ranked if r.score.base > 0]
        ranked = ranked[:k]
        if store:
            now = self._manager.clock()
            with self._conn.transaction():
                RelevanceRepository(self._conn).replace(
                    user_id,
                    context_type,
                    [(r.file.id, r.score) for r in ranked],
                    now=now,
                    expires_at=now + _SCORE_TTL_S,
                )
        return ranked

    def _rank(self, user_id: str, hits: Sequence[FileHit], context_type: str) -> list[RankedFile]:
        del context_type
        base: dict[str, float] = {}
        for h in hits:
            if h.file is not None:
                base[h.file.id] = max(base.get(h.file.id, 0.0), h.hit.score)
        signals = AccessRepository(self._conn).signals(user_id)
        dependents = RelationshipRepository(self._conn).dependents(user_id)
        now = self._manager.clock()
        files = FileRepository(self._conn).list_files(user_id, limit=100_000)
        out = []
        for f in files:
            n, ok, last = signals.get(f.id, (0, 0, None))
            s = score(
                FileSignals(n, ok, last, dependents.get(f.id, 0)), now, base=base.get(f.id, 0.0)
            )
            out.append(RankedFile(f, s))
        out.sort(key=lambda r: (-r.score.final, r.file.path))
        return out

    # ---- forgetting ---------------------------------------------------------------------

    def purge_user(self, user_id: str) -> int:
        """Delete every file row and file segment of ``user_id``; returns files deleted.

        Segments first, then ``knowledge.db``'s rows, then ``file_index.db`` (the map from
        files to segment ids goes last, so a purge cut short is finished by running it
        again). Then both databases are checkpointed, so no deleted page stays in a WAL.
        """
        self._writable("purge_user")
        check_id(user_id, "user_id")
        semantic = self._manager.semantic
        files = FileRepository(self._conn)
        ids: set[str] = set()
        for row in files.list_files(user_id, include_deleted=True, limit=10_000_000):
            ids.update(semantic.segments_of_source(user_id, "file", row.id))
            if row.content_hash and row.chunk_count:
                ids.update(
                    segment_id(user_id, row.id, row.content_hash, i) for i in range(row.chunk_count)
                )
        if ids:
            semantic.delete_segments(sorted(ids), user_id=user_id)
        with self._knowledge.transaction():
            FileIndexRepository(self._knowledge).delete(sorted(ids))
            FileIndexRepository(self._knowledge).delete_index(user_id)
        with self._conn.transaction():
            count = files.delete_user(user_id)
        for conn in (self._conn, self._knowledge):
            conn.checkpoint("TRUNCATE")
        return count


@dataclass
class _Written:
    rechunk: list[tuple[FileRecord, Read]] = field(default_factory=list)
    emptied: list[FileRecord] = field(default_factory=list)
    repathed: dict[str, str] = field(default_factory=dict)  # file id -> new absolute path
    paths: dict[str, FileRecord] = field(default_factory=dict)  # live rel_path -> row
    relationships: int = 0
    snippets: int = 0


def _new_file_id() -> str:
    import uuid

    return uuid.uuid4().hex


def _record(
    file_id: str,
    user_id: str,
    root: str,
    read: Read,
    git: Any,
    now: float,
    previous: FileRecord | None,
) -> FileRecord:
    st = read.stat
    name = posixpath.basename(read.rel_path)
    dot = name.rfind(".")
    cache = stat_key(read.result.stat) if read.result.stable else (None,) * 5
    return FileRecord(
        id=file_id,
        user_id=user_id,
        root_path=root,
        rel_path=read.rel_path,
        path=read.path,
        name=name,
        extension=name[dot + 1 :].lower() if dot > 0 else None,
        size_bytes=read.result.size,
        permissions=stat_mod.filemode(st.st_mode),
        created_at=getattr(st, "st_birthtime", st.st_ctime),
        modified_at=read.result.stat.st_mtime,
        accessed_at=st.st_atime,
        content_hash=read.result.content_hash,
        git_status=git.status(read.rel_path),
        is_binary=read.detected.is_binary,
        language=None if read.detected.is_binary else language_of(name),
        encoding=read.detected.encoding,
        line_count=read.detected.line_count,
        stat_size=cache[0],
        stat_mtime_ns=cache[1],
        stat_ctime_ns=cache[2],
        stat_inode=cache[3],
        stat_device=cache[4],
        chunk_count=previous.chunk_count if previous is not None else None,
        indexed_at=now,
        deleted_at=None,
    )


def _with(report: IndexReport, **changes: Any) -> IndexReport:
    from dataclasses import replace

    return replace(report, **changes)
