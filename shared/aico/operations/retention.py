"""Retention policies of ``[storage.lifecycle]``: what each would delete, and doing it.

Every policy is one function ``policy(manager, settings, now, dry_run) -> Outcome``: with
``dry_run`` it only reads (so it works on a read-only manager) and reports what it would
change; without, it changes exactly that. Counts go into the job's record; ``details``
(ids, for the key holder's eyes in ``aico maintenance run --dry-run --json``) never do.

- **archive-conversations**: a conversation not updated for ``conversation_archive_days``,
  and a user's oldest active conversations beyond ``conversation_max_per_project`` (read
  per user), get ``status = 'archived'`` and ``metadata.aico_archived_at``. Nothing of the
  log is deleted. With ``archived_searchable = false`` their segments leave long-term
  memory (segments, FTS5 rows, Chroma vectors; the messages stay in the log, marked
  consolidated, so they are not segmented again). A conversation that gets a new message
  after it was archived is active again.
- **file-versions**: ``file_index.file_changes`` rows older than
  ``file_version_retention_days`` and beyond the newest ``file_version_max_count`` per file.
- **expired-cleanup** (the expired cache): working-memory entries past their time, active
  sessions whose working memory ran out (marked ``expired``, so maintenance consolidates
  them), ``file_relevance_scores`` past ``expires_at``, and leftovers: working-memory copies
  quarantined as damaged more than ``DAMAGED_COPY_RETAIN_S`` ago (they hold sealed entries
  of whoever was in working memory then) and interrupted compactions.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from aico.data.repositories._base import chunks
from aico.operations.settings import LifecycleSettings

if TYPE_CHECKING:
    from aico.ai.memory import MemoryManager

__all__ = [
    "DAMAGED_COPY_RETAIN_S",
    "Outcome",
    "archive_conversations",
    "prune_file_versions",
    "sweep_expired",
]

DAMAGED_COPY_RETAIN_S: Final = 7 * 86_400.0
_DAY: Final = 86_400.0
_MAX_DETAILS: Final = 200
# SQL for a TIMESTAMP column that aico writes as unix seconds and SQLite's defaults as text.
_EPOCH = "CASE WHEN typeof({c}) IN ('integer', 'real') THEN {c} ELSE unixepoch({c}) END"


@dataclass(frozen=True)
class Outcome:
    """What a policy did (or, in a dry run, would do): counts, plus ids for display only."""

    done: dict[str, int] = field(default_factory=dict)
    details: dict[str, list[str]] = field(default_factory=dict)
    skipped: str | None = None


def _capped(ids: list[str]) -> list[str]:
    return ids[:_MAX_DETAILS]


# ---- archive-conversations --------------------------------------------------------------


def archive_conversations(
    manager: MemoryManager, settings: LifecycleSettings, now: float, dry_run: bool
) -> Outcome:
    """See the module docstring; returns archived / reactivated / segments_removed."""
    log = manager.store.connection("conversations")
    updated = _EPOCH.format(c="updated_at")
    by_age: list[dict[str, Any]] = []
    if settings.conversation_archive_days:
        cutoff = now - settings.conversation_archive_days * _DAY
        by_age = log.fetch_all(
            "SELECT id, user_id FROM conversations WHERE coalesce(status, 'active') = 'active' "
            f"AND {updated} < ? ORDER BY id",
            (cutoff,),
        )
    by_cap: list[dict[str, Any]] = []
    if settings.conversation_max_per_project:
        by_cap = log.fetch_all(
            "SELECT id, user_id FROM (SELECT id, user_id, row_number() OVER "
            f"(PARTITION BY user_id ORDER BY {updated} DESC, id DESC) AS n FROM conversations "
            "WHERE coalesce(status, 'active') = 'active' AND user_id IS NOT NULL) "
            "WHERE n > ? ORDER BY id",
            (settings.conversation_max_per_project,),
        )
    targets = {str(r["id"]): r["user_id"] for r in by_age + by_cap}
    returning = [
        str(r["id"])
        for r in log.fetch_all(
            "SELECT id FROM conversations WHERE status = 'archived' "
            f"AND {updated} > coalesce(json_extract(metadata, '$.aico_archived_at'), 0) "
            "ORDER BY id"
        )
    ]
    returning = [i for i in returning if i not in targets]
    # Unsearchable: the segments of every archived conversation (new and old) leave memory.
    unsearchable: dict[str, Any] = {}
    if not settings.archived_searchable:
        unsearchable = dict(targets)
        for row in log.fetch_all(
            "SELECT id, user_id FROM conversations WHERE status = 'archived' ORDER BY id"
        ):
            if str(row["id"]) not in returning:
                unsearchable.setdefault(str(row["id"]), row["user_id"])
    segments: list[tuple[str, list[str]]] = []
    for conversation_id, user_id in sorted(unsearchable.items()):
        if user_id is None:
            continue
        ids = manager.semantic.segments_of_conversation(str(user_id), conversation_id)
        if ids:
            segments.append((str(user_id), ids))
    removed = sum(len(ids) for _, ids in segments)
    done = {
        "archived_by_age": len(by_age),
        "archived_by_cap": len({str(r["id"]) for r in by_cap} - {str(r["id"]) for r in by_age}),
        "reactivated": len(returning),
        "segments_removed": removed,
    }
    details = {
        "archive": _capped(sorted(targets)),
        "reactivate": _capped(returning),
    }
    if dry_run:
        return Outcome(done, details)
    with log.transaction():
        for chunk in chunks(sorted(targets), 500):
            marks = ",".join("?" * len(chunk))
            log.execute(
                "UPDATE conversations SET status = 'archived', metadata = json_set("
                "CASE WHEN json_valid(metadata) THEN metadata ELSE '{}' END, "
                f"'$.aico_archived_at', ?) WHERE id IN ({marks})",
                (now, *chunk),
            )
        for chunk in chunks(returning, 500):
            marks = ",".join("?" * len(chunk))
            log.execute(f"UPDATE conversations SET status = 'active' WHERE id IN ({marks})", chunk)
    for user_id, ids in segments:
        manager.semantic.delete_segments(ids, user_id=user_id)
    return Outcome(done, details)


# ---- file-versions ----------------------------------------------------------------------


def prune_file_versions(
    manager: MemoryManager, settings: LifecycleSettings, now: float, dry_run: bool
) -> Outcome:
    """Delete ``file_changes`` rows past the age and count limits; returns versions_deleted."""
    conn = manager.store.connection("file_index")
    changed = _EPOCH.format(c="changed_at")
    doomed: set[str] = set()
    if settings.file_version_retention_days:
        cutoff = now - settings.file_version_retention_days * _DAY
        doomed |= {
            str(r["id"])
            for r in conn.fetch_all(f"SELECT id FROM file_changes WHERE {changed} < ?", (cutoff,))
        }
    if settings.file_version_max_count:
        doomed |= {
            str(r["id"])
            for r in conn.fetch_all(
                "SELECT id FROM (SELECT id, row_number() OVER (PARTITION BY file_id "
                f"ORDER BY {changed} DESC, id DESC) AS n FROM file_changes) WHERE n > ?",
                (settings.file_version_max_count,),
            )
        }
    ids = sorted(doomed)
    if not dry_run and ids:
        with conn.transaction():
            for chunk in chunks(ids, 500):
                marks = ",".join("?" * len(chunk))
                conn.execute(f"DELETE FROM file_changes WHERE id IN ({marks})", chunk)
    return Outcome({"versions_deleted": len(ids)}, {"versions": _capped(ids)})


# ---- expired-cleanup --------------------------------------------------------------------


def _leftovers(manager: MemoryManager, now: float) -> list[Path]:
    """Quarantined working-memory copies past their retention, and interrupted compactions."""
    working = manager.store.layout.working_memory
    found: list[Path] = []
    for path in sorted(working.parent.glob(working.name + ".*")):
        if not path.is_dir():
            continue
        suffix = path.name[len(working.name) + 1 :]
        if suffix.startswith(("compact-", "old-")):
            found.append(path)
        elif suffix.startswith("damaged-"):
            try:
                if now - path.stat().st_mtime >= DAMAGED_COPY_RETAIN_S:
                    found.append(path)
            except OSError:
                continue
    return found


def sweep_expired(
    manager: MemoryManager, settings: LifecycleSettings, now: float, dry_run: bool
) -> Outcome:
    """Expired working memory, sessions, file scores and leftovers (module docstring)."""
    del settings  # the expiry times are the entries' own
    log = manager.store.connection("conversations")
    files = manager.store.connection("file_index")
    expires = _EPOCH.format(c="expires_at")
    sessions = int(
        log.fetch_value(
            "SELECT count(*) FROM session_metadata WHERE status = 'active' "
            "AND working_memory_expires_at <= ?",
            (now,),
        )
        or 0
    )
    scores = int(
        files.fetch_value(
            f"SELECT count(*) FROM file_relevance_scores WHERE expires_at IS NOT NULL "
            f"AND {expires} <= ?",
            (now,),
        )
        or 0
    )
    leftovers = _leftovers(manager, now)
    # Expired records of the expiry index: messages and values, and session records.
    expired = int(manager.working.stats()["expired_pending"])
    if dry_run:
        return Outcome(
            {
                "working_expired": expired,
                "sessions_expired": sessions,
                "file_scores": scores,
                "leftovers": len(leftovers),
            },
            {"leftovers": [p.name for p in leftovers]},
        )
    removed = manager.working.sweep(now=now)  # counts the messages and values
    with log.transaction():
        sessions = manager.log.expire_sessions(now)
    if scores:
        files.execute(
            f"DELETE FROM file_relevance_scores WHERE expires_at IS NOT NULL AND {expires} <= ?",
            (now,),
        )
    for path in leftovers:
        shutil.rmtree(path, ignore_errors=True)
    return Outcome(
        {
            "working_expired": expired,
            "working_removed": removed,
            "sessions_expired": sessions,
            "file_scores": scores,
            "leftovers": sum(1 for p in leftovers if not p.exists()),
        },
        {"leftovers": [p.name for p in leftovers]},
    )
