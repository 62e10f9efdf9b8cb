"""The analytical copy's tables: what each holds, where it comes from, how it is kept current.

Ids, times and counts only: no message, segment, fact or feedback text is ever copied
(a message contributes its length in characters, a segment too). Each ``Table`` is read from
one libSQL database in keyset batches through the read pool (never the writer) and is kept
current one of two ways:

- ``append`` (large, insert-mostly tables): rows above the last exported rowid are added;
  then a per-user fingerprint (row count, summed ``fingerprint`` column, highest rowid) is
  compared on both sides, and any user whose fingerprint differs is copied again. A delete
  of any origin (forget, retention, a rowid SQLite reused after one) shows up there.
- ``full`` (small tables whose rows change in place): replaced by a fresh copy each run.

The SQL is literal text here, in one place, so the documented views (``views``) and this
copy cannot disagree about a column.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

__all__ = ["EXTRA_TABLES", "FORMAT", "TABLES", "USER_TABLES", "Table"]

FORMAT: Final = 2
"""The copy's layout version: a file of another version is rebuilt from scratch."""


@dataclass(frozen=True)
class Table:
    """One table of the copy. ``columns``: (name, DuckDB type, libSQL expression)."""

    name: str
    database: str
    source: str
    columns: tuple[tuple[str, str, str], ...]
    mode: Literal["append", "full"]
    key: str = "rowid"
    user: str | None = "user_id"
    fingerprint: str | None = None
    where: str | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c[0] for c in self.columns)

    def ddl(self, catalog: str) -> str:
        cols = ", ".join(f"{name} {kind}" for name, kind, _ in self.columns)
        return f"CREATE TABLE IF NOT EXISTS {catalog}.{self.name} ({cols})"

    def select(self, extra_where: str = "") -> str:
        """Keyset batch: ``? `` is the last key read, the second ``?`` the batch size."""
        exprs = ", ".join(f"{expr} AS {name}" for name, _, expr in self.columns)
        conds = [f"{self.key} > ?"]
        if self.where:
            conds.append(self.where)
        if extra_where:
            conds.append(extra_where)
        return (
            f"SELECT {self.key} AS _k, {exprs} FROM {self.source} "
            f"WHERE {' AND '.join(conds)} ORDER BY {self.key} LIMIT ?"
        )


TABLES: Final[tuple[Table, ...]] = (
    Table(
        "users",
        "core",
        "users",
        (
            ("user_id", "VARCHAR", "user_id"),
            ("user_type", "VARCHAR", "user_type"),
            ("is_active", "BOOLEAN", "is_active"),
            ("created_at", "DOUBLE", "created_at"),
        ),
        "full",
    ),
    Table(
        "messages",
        "conversations",
        "messages",
        (
            ("rid", "BIGINT", "rowid"),
            ("id", "VARCHAR", "id"),
            ("user_id", "VARCHAR", "user_id"),
            ("session_id", "VARCHAR", "session_id"),
            ("conversation_id", "VARCHAR", "conversation_id"),
            ("role", "VARCHAR", "role"),
            ("ts", "DOUBLE", "CAST(timestamp AS REAL)"),
            ("tokens", "BIGINT", "coalesce(tokens, 0)"),
            ("cost", "DOUBLE", "coalesce(cost, 0.0)"),
            ("chars", "BIGINT", "length(content)"),
        ),
        "append",
        fingerprint="CAST(timestamp AS REAL)",
    ),
    Table(
        "conversations",
        "conversations",
        "conversations",
        (
            ("id", "VARCHAR", "id"),
            ("user_id", "VARCHAR", "user_id"),
            ("provider", "VARCHAR", "provider"),
            ("model", "VARCHAR", "model"),
            ("total_tokens", "BIGINT", "coalesce(total_tokens, 0)"),
            ("total_cost", "DOUBLE", "coalesce(total_cost, 0.0)"),
            ("status", "VARCHAR", "status"),
            ("created_at", "DOUBLE", "CAST(created_at AS REAL)"),
            ("updated_at", "DOUBLE", "CAST(updated_at AS REAL)"),
        ),
        "full",
    ),
    Table(
        "sessions",
        "conversations",
        "session_metadata",
        (
            ("session_id", "VARCHAR", "session_id"),
            ("user_id", "VARCHAR", "user_id"),
            ("conversation_id", "VARCHAR", "conversation_id"),
            ("started_at", "DOUBLE", "started_at"),
            ("last_activity_at", "DOUBLE", "last_activity_at"),
            ("message_count", "BIGINT", "message_count"),
            ("status", "VARCHAR", "status"),
        ),
        "full",
    ),
    Table(
        "compactions",
        "conversations",
        "compaction_history",
        (
            ("id", "VARCHAR", "id"),
            ("user_id", "VARCHAR", "user_id"),
            ("session_id", "VARCHAR", "session_id"),
            ("trigger_type", "VARCHAR", "trigger_type"),
            ("messages_in", "BIGINT", "coalesce(original_message_count, 0)"),
            ("segments_out", "BIGINT", "coalesce(compacted_message_count, 0)"),
            ("tokens_saved", "BIGINT", "coalesce(tokens_saved, 0)"),
            ("performed_at", "DOUBLE", "CAST(performed_at AS REAL)"),
            ("status", "VARCHAR", "status"),
        ),
        "full",
    ),
    Table(
        "segments",
        "core",
        "semantic_segments",
        (
            ("rid", "BIGINT", "id"),
            ("segment_id", "VARCHAR", "segment_id"),
            ("user_id", "VARCHAR", "user_id"),
            ("conversation_id", "VARCHAR", "conversation_id"),
            ("start_ts", "DOUBLE", "start_ts"),
            ("end_ts", "DOUBLE", "end_ts"),
            ("created_at", "DOUBLE", "created_at"),
            ("chars", "BIGINT", "length(text)"),
            ("indexed", "BOOLEAN", "vector IS NOT NULL"),
        ),
        "append",
        key="id",
        fingerprint="start_ts",
    ),
    Table(
        "facts",
        "core",
        "facts",
        (
            ("fact_id", "VARCHAR", "fact_id"),
            ("user_id", "VARCHAR", "user_id"),
            ("category", "VARCHAR", "category"),
            ("confidence", "DOUBLE", "confidence"),
            ("revisit_count", "BIGINT", "revisit_count"),
            ("last_revisited_at", "DOUBLE", "last_revisited_at"),
            ("created_at", "DOUBLE", "created_at"),
            ("updated_at", "DOUBLE", "updated_at"),
        ),
        "full",
    ),
    Table(
        "feedback",
        "core",
        "feedback_events",
        (
            ("rid", "BIGINT", "rowid"),
            ("event_id", "VARCHAR", "event_id"),
            ("user_id", "VARCHAR", "user_id"),
            ("event_type", "VARCHAR", "event_type"),
            ("rating", "BIGINT", "rating"),
            ("conversation_id", "VARCHAR", "conversation_id"),
            ("created_at", "DOUBLE", "created_at"),
        ),
        "append",
        fingerprint="created_at",
    ),
    Table(
        "context_events",
        "core",
        "analytics_context_events",
        (
            ("rid", "BIGINT", "id"),
            ("user_id", "VARCHAR", "user_id"),
            ("ts", "DOUBLE", "at"),
            ("latency_ms", "DOUBLE", "latency_ms"),
            ("working", "BIGINT", "working"),
            ("memories", "BIGINT", "memories"),
            ("facts", "BIGINT", "facts"),
            ("tokens", "BIGINT", "tokens"),
        ),
        "append",
        key="id",
        fingerprint="at",
    ),
    Table(
        "context_items",
        "core",
        "analytics_context_items AS i JOIN analytics_context_events AS e ON e.id = i.event_id",
        (
            ("rid", "BIGINT", "i.id"),
            ("event_id", "BIGINT", "i.event_id"),
            ("user_id", "VARCHAR", "e.user_id"),
            ("ts", "DOUBLE", "e.at"),
            ("segment_id", "VARCHAR", "i.segment_id"),
            ("fact_id", "VARCHAR", "i.fact_id"),
            ("rank", "BIGINT", "i.rank"),
            ("score", "DOUBLE", "i.score"),
        ),
        "append",
        key="i.id",
        user="e.user_id",
        fingerprint="i.event_id",
    ),
    Table(
        "task_runs",
        "core",
        "tasks",
        (
            ("task_id", "VARCHAR", "task_id"),
            ("task_type", "VARCHAR", "task_type"),
            ("status", "VARCHAR", "status"),
            ("started_at", "DOUBLE", "last_run_at"),
            ("finished_at", "DOUBLE", "updated_at"),
            ("duration_s", "DOUBLE", "CAST(json_extract(payload, '$.duration_s') AS REAL)"),
            ("failed", "BOOLEAN", "last_error IS NOT NULL"),
            # The job's counts (a maintenance or retention report: counts only, no ids).
            ("result", "VARCHAR", "json_extract(payload, '$.result')"),
        ),
        "full",
        user=None,
        where="schedule IS NULL",
    ),
)

EXTRA_TABLES: Final[tuple[str, ...]] = (
    # Kept by the export itself (what a snapshot alone cannot tell):
    "CREATE TABLE IF NOT EXISTS {c}._meta (key VARCHAR PRIMARY KEY, value VARCHAR)",
    # A fact gone since the previous export (its user still exists).
    """CREATE TABLE IF NOT EXISTS {c}.fact_deletions (
        user_id VARCHAR, category VARCHAR, created_at DOUBLE, seen_at DOUBLE)""",
    # revisit_count grew by ``delta`` between two exports.
    """CREATE TABLE IF NOT EXISTS {c}.fact_revisits (
        user_id VARCHAR, fact_id VARCHAR, delta BIGINT, seen_at DOUBLE)""",
    # File sizes of each store at each export (growth over time).
    "CREATE TABLE IF NOT EXISTS {c}.store_sizes (ts DOUBLE, store VARCHAR, bytes BIGINT)",
    # The backup archives on disk at the last export.
    """CREATE TABLE IF NOT EXISTS {c}.backups (
        backup_id VARCHAR, created_at DOUBLE, size BIGINT)""",
    # One row per export run.
    """CREATE TABLE IF NOT EXISTS {c}.exports (
        ts DOUBLE, duration_s DOUBLE, rows_added BIGINT, rows_removed BIGINT)""",
)

USER_TABLES: Final[tuple[str, ...]] = (
    *(t.name for t in TABLES if t.user is not None),
    "fact_deletions",
    "fact_revisits",
)
"""Every table with a ``user_id`` column: what ``purge_user`` clears."""
