"""Index drift: how far each derived index is from the log, counted from the stores.

The message log is the truth; segments are cut from it, the FTS5 index and the vectors
from the segments, Chroma from the vectors. Each link is compared here:

- **log -> segments**: consolidated (non-blank) messages that no segment was made from
  (``unsegmented``), and segments every source message of which is gone from the log
  (``orphan_segments``: a forget or a crash left them; legacy segments with no recorded
  sources are not counted);
- **segments -> FTS5**: segments with no FTS row and FTS rows with no segment, in each
  FTS5 table for the segments it indexes (by rowid, through FTS5's ``docsize`` table, one
  row per indexed document); ``fts_rows`` counts the main table's;
- **segments -> vectors**: segments with neither a vector nor queued index work;
- **vectors -> Chroma**: current vectors missing from Chroma and Chroma ids of no live
  segment. From the live index when the store has one loaded (``verify_index``), else from
  Chroma's catalog read read-only (``_chroma_catalog``), or not at all (``chroma_note``).

Everything here only reads. The id lists are for ``doctor``'s repair.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from aico.ai.memory.semantic.schema import FTS_FULL_TABLE, FTS_TABLE, FTS_TABLES
from aico.data.libsql import EncryptedLibSQLConnection
from aico.errors import AicoError
from aico.operations._chroma_catalog import CatalogUnreadable, catalog_ids

if TYPE_CHECKING:
    from aico.ai.memory import MemoryManager
    from aico.ai.memory.semantic import SemanticMemoryStore

__all__ = [
    "ChromaDrift",
    "IndexDrift",
    "chroma_dir_of",
    "compare_chroma",
    "measure_drift",
    "orphan_segments",
    "unsegmented_messages",
]


@dataclass(frozen=True)
class IndexDrift:
    """Counts along log -> segments -> FTS5 / vectors -> Chroma (see the module docstring).

    ``chroma_*`` are None when Chroma was not compared; ``chroma_note`` then says why.
    """

    messages: int
    consolidated: int
    unsegmented: int
    segments: int
    orphan_segments: int
    fts_rows: int
    fts_missing: int
    fts_extra: int
    vectors: int
    unindexed: int
    chroma_ids: int | None = None
    chroma_missing: int | None = None
    chroma_extra: int | None = None
    chroma_source: str | None = None  # "index" or "catalog"
    chroma_note: str | None = None

    @property
    def ok(self) -> bool:
        """True when every compared link agrees (Chroma counts only if it was compared)."""
        return (
            self.unsegmented == 0
            and self.orphan_segments == 0
            and self.fts_missing == 0
            and self.fts_extra == 0
            and self.unindexed == 0
            and not self.chroma_missing
            and not self.chroma_extra
        )

    @property
    def fts_ok(self) -> bool:
        return self.fts_missing == 0 and self.fts_extra == 0

    @property
    def chroma_ok(self) -> bool | None:
        """None when Chroma was not compared."""
        if self.chroma_missing is None:
            return None
        return self.chroma_missing == 0 and not self.chroma_extra


def _int(conn: EncryptedLibSQLConnection, sql: str) -> int:
    return int(conn.fetch_value(sql) or 0)


# Which segments each FTS5 table indexes (the schema's triggers): the full-text table only
# those whose ``semantic_fts`` text leaves words out.
_FTS_SCOPE = {FTS_TABLE: "1", FTS_FULL_TABLE: "s.fts_text IS NOT NULL"}


def _fts_tables(core: EncryptedLibSQLConnection) -> list[str]:
    """The FTS5 tables the core database has (``semantic_fts_full`` from schema v3)."""
    names = {
        str(r["name"])
        for r in core.fetch_all("SELECT name FROM sqlite_master WHERE type = 'table'")
    }
    return [table for table in FTS_TABLES if table in names]


def _log_ids(log: EncryptedLibSQLConnection) -> tuple[set[str], set[str]]:
    """Every message id of the log, and those consolidated with some text to segment.

    Messages of archived conversations are not expected in a segment: with
    ``archived_searchable = false`` archival removed them on purpose.
    """
    everything: set[str] = set()
    consolidated: set[str] = set()
    for row in log.fetch_all(
        "SELECT m.id, m.consolidated_at IS NOT NULL "
        "AND length(trim(m.content, ' \t\r\n')) > 0 "
        "AND coalesce(c.status, 'active') != 'archived' AS segmentable "
        "FROM messages m LEFT JOIN conversations c ON c.id = m.conversation_id"
    ):
        everything.add(str(row["id"]))
        if row["segmentable"]:
            consolidated.add(str(row["id"]))
    return everything, consolidated


def _sources(core: EncryptedLibSQLConnection) -> dict[int, list[str]]:
    by_segment: dict[int, list[str]] = {}
    for row in core.fetch_all("SELECT segment_rowid, message_id FROM semantic_segment_messages"):
        by_segment.setdefault(int(row["segment_rowid"]), []).append(str(row["message_id"]))
    return by_segment


def orphan_segments(core: EncryptedLibSQLConnection, log: EncryptedLibSQLConnection) -> list[str]:
    """Segment ids whose every recorded source message is gone from the log."""
    known, _ = _log_ids(log)
    orphans = [rowid for rowid, ids in _sources(core).items() if not any(i in known for i in ids)]
    if not orphans:
        return []
    found: list[str] = []
    for start in range(0, len(orphans), 500):
        chunk = orphans[start : start + 500]
        marks = ",".join("?" * len(chunk))
        found += [
            str(r["segment_id"])
            for r in core.fetch_all(
                f"SELECT segment_id FROM semantic_segments WHERE id IN ({marks})", chunk
            )
        ]
    return sorted(found)


def unsegmented_messages(
    core: EncryptedLibSQLConnection, log: EncryptedLibSQLConnection
) -> list[str]:
    """Consolidated messages with text that no segment records as a source."""
    _, consolidated = _log_ids(log)
    sourced = {m for ids in _sources(core).values() for m in ids}
    return sorted(consolidated - sourced)


def measure_drift(
    core: EncryptedLibSQLConnection,
    log: EncryptedLibSQLConnection,
    *,
    semantic: SemanticMemoryStore | None = None,
    chroma_dir: Path | None = None,
    read_catalog: bool = True,
) -> IndexDrift:
    """Compare every link (see the module docstring); reads only.

    ``semantic``: a writable store is asked (``verify_index``, only while its index serves);
    its chromadb owns the files, so they are never read beside it. Otherwise (no store, or
    a read-only one, which never opens chromadb) Chroma's catalog in ``chroma_dir`` is read
    read-only when ``read_catalog`` (the caller passes False while another process has
    the data dir open, so no read lock can get in a writer's way).
    """
    known, consolidated = _log_ids(log)
    sources = _sources(core)
    sourced = {m for ids in sources.values() for m in ids}
    orphans = sum(1 for ids in sources.values() if not any(i in known for i in ids))
    fingerprint = core.fetch_value("SELECT fingerprint FROM semantic_model WHERE id = 1")
    segments = _int(core, "SELECT count(*) FROM semantic_segments")
    vectors = int(
        core.fetch_value(
            "SELECT count(*) FROM semantic_segments WHERE vector_fingerprint = ?", (fingerprint,)
        )
        or 0
    )
    unindexed = _int(
        core,
        "SELECT count(*) FROM semantic_segments s WHERE s.vector IS NULL AND NOT EXISTS "
        "(SELECT 1 FROM semantic_outbox o WHERE o.op = 'index' AND o.segment_rowid = s.id)",
    )
    fts_rows = _int(core, f"SELECT count(*) FROM {FTS_TABLE}_docsize")
    fts_missing = fts_extra = 0
    for table in _fts_tables(core):
        scope = _FTS_SCOPE[table]
        fts_missing += _int(
            core,
            f"SELECT count(*) FROM semantic_segments s WHERE {scope} AND NOT EXISTS "
            f"(SELECT 1 FROM {table}_docsize d WHERE d.id = s.id)",
        )
        fts_extra += _int(
            core,
            f"SELECT count(*) FROM {table}_docsize d WHERE NOT EXISTS "
            f"(SELECT 1 FROM semantic_segments s WHERE s.id = d.id AND {scope})",
        )
    drift = IndexDrift(
        messages=len(known),
        consolidated=len(consolidated),
        unsegmented=len(consolidated - sourced),
        segments=segments,
        orphan_segments=orphans,
        fts_rows=fts_rows,
        fts_missing=fts_missing,
        fts_extra=fts_extra,
        vectors=vectors,
        unindexed=unindexed,
    )
    chroma = compare_chroma(
        core, semantic=semantic, chroma_dir=chroma_dir, read_catalog=read_catalog
    )
    return replace(
        drift,
        chroma_ids=chroma.ids,
        chroma_missing=chroma.missing,
        chroma_extra=chroma.extra,
        chroma_source=chroma.source,
        chroma_note=chroma.note,
    )


@dataclass(frozen=True)
class ChromaDrift:
    """Chroma against the libSQL vectors; counts None (and ``note`` why) when not compared."""

    ids: int | None = None
    missing: int | None = None
    extra: int | None = None
    source: str | None = None  # "index" or "catalog"
    note: str | None = None

    @property
    def ok(self) -> bool | None:
        return None if self.missing is None else self.missing == 0 and not self.extra


def chroma_dir_of(manager: MemoryManager) -> Path | None:
    """The embedded index's directory, None for a Chroma server."""
    if manager.config.get("memory.semantic.chroma_url"):
        return None
    return manager.store.layout.chroma


def compare_chroma(
    core: EncryptedLibSQLConnection,
    *,
    semantic: SemanticMemoryStore | None,
    chroma_dir: Path | None,
    read_catalog: bool,
) -> ChromaDrift:
    """Chroma's ids against the current libSQL vectors (see ``measure_drift``)."""
    if semantic is not None and not semantic.read_only:
        # This process's chromadb owns the files: ask it, never read them beside it.
        health = semantic.index_health()
        if not health.serving:
            return ChromaDrift(note=f"the index is not serving ({health.state})")
        try:
            report = semantic.verify_index(sample_limit=0)
        except AicoError as exc:
            return ChromaDrift(note=f"the index failed to answer ({type(exc).__name__})")
        if not report.chroma_checked:
            return ChromaDrift(note=f"the index was not read ({report.index_state})")
        return ChromaDrift(report.chroma_count, report.missing_count, report.extra_count, "index")
    if chroma_dir is None:
        return ChromaDrift(note="a Chroma server: compared only by a store serving it")
    if not read_catalog:
        return ChromaDrift(note="not read: the data dir is open in another process")
    try:
        have = catalog_ids(chroma_dir)
    except CatalogUnreadable as exc:
        return ChromaDrift(note=f"the catalog could not be read ({exc})")
    fingerprint = core.fetch_value("SELECT fingerprint FROM semantic_model WHERE id = 1")
    want = {
        str(r["chroma_id"])
        for r in core.fetch_all(
            "SELECT chroma_id FROM semantic_segments WHERE vector_fingerprint = ?", (fingerprint,)
        )
    }
    # Work still queued in the outbox is not drift: it will reach Chroma.
    queued = {"index": set[str](), "delete": set[str]()}
    for row in core.fetch_all("SELECT op, chroma_id FROM semantic_outbox"):
        queued[str(row["op"])].add(str(row["chroma_id"]))
    return ChromaDrift(
        len(have),
        len(want - have - queued["index"]),
        len(have - want - queued["delete"]),
        "catalog",
    )
