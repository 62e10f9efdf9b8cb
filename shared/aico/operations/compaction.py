"""The storage specification's periodic upkeep: statistics, free pages, indexes, LMDB.

- **optimize** (weekly): every database gets ``PRAGMA optimize`` (fresh planner statistics
  where they are stale) and ``PRAGMA incremental_vacuum`` (the databases are created with
  ``auto_vacuum = INCREMENTAL``, so free pages are returned to the file system instead of
  waiting in the file), in one counted transaction, then a ``TRUNCATE`` checkpoint so the
  file shrinks now. With ``secure_delete`` the freed pages were zeroed already.
- **index-compact** (monthly): FTS5 ``optimize`` (merges its b-trees, so a deleted
  segment's terms leave the live pages) and, when the index disagrees with libSQL, is
  damaged, or ``index_rebuild_threshold`` segments were deleted since the last rebuild, a
  Chroma rebuild from the libSQL vectors (Chroma keeps deleted vectors in its files until
  then). Deletions are counted from what the last run recorded (the segment count and the
  database's time): that count, plus the segments created since, minus the count now.
- **lmdb-compact** (monthly): a compact copy of the working-memory environment replaces it
  (LMDB never shrinks its file; free pages are only reused). Only while nothing has the
  environment open, in this process or another: the copy is made from the closed file
  under its open lock held exclusively, then swapped in by two renames. The copy has no
  close seal, so the next open walks it and authenticates every record, as after an
  unclean close; a crash between the renames leaves no environment, which the next open
  creates empty and the repair refills from the log (working memory is a cache).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import lmdb

from aico.data.libsql.sidecar import OpenLock
from aico.data.repositories import TaskRepository
from aico.data.store import DataStore
from aico.errors import DatabaseBusy
from aico.layout import DataDir
from aico.operations.drift import chroma_dir_of, compare_chroma
from aico.operations.settings import PerformanceSettings
from aico.security._atomic import fsync_dir

if TYPE_CHECKING:
    from aico.ai.memory import MemoryManager

__all__ = [
    "IndexCompaction",
    "compact_indexes",
    "compact_working_memory",
    "optimize_databases",
    "working_memory_usage",
]

# Below this much reclaimable space a compact copy of LMDB is not worth the swap.
LMDB_MIN_RECLAIM: Final = 1 << 20
_LMDB_LOCK: Final = "aico"
_LOAD_WAIT_S: Final = 120.0
_CHILD_TIMEOUT_S: Final = 120.0  # working memory's open lock is aico.lock in its directory


def _file_bytes(path: Path) -> int:
    total = 0
    for name in (path.name, path.name + "-wal"):
        with contextlib.suppress(OSError):
            total += (path.parent / name).stat().st_size
    return total


def optimize_databases(store: DataStore, *, dry_run: bool) -> dict[str, int]:
    """``PRAGMA optimize`` + incremental vacuum + checkpoint on each database (see above)."""
    done: dict[str, int] = {"databases": 0, "free_pages": 0, "bytes_reclaimed": 0}
    for name, path in store.databases.items():
        if not path.exists():
            continue
        conn = store.connection(name)
        page = int(conn.fetch_value("PRAGMA page_size") or 0)
        free = int(conn.fetch_value("PRAGMA freelist_count") or 0)
        done["databases"] += 1
        done["free_pages"] += free
        done[f"{name}.free_bytes"] = free * page
        if dry_run:
            continue
        before = _file_bytes(path)
        with conn.transaction():
            conn.execute("PRAGMA optimize")
            conn.execute_script("PRAGMA incremental_vacuum")
        conn.checkpoint("TRUNCATE")
        reclaimed = max(before - _file_bytes(path), 0)
        done[f"{name}.bytes_reclaimed"] = reclaimed
        done["bytes_reclaimed"] += reclaimed
    return done


@dataclass(frozen=True)
class IndexCompaction:
    """What ``index-compact`` decided: the counts, and why Chroma was (or was not) rebuilt."""

    done: dict[str, Any]
    rebuild_reason: str | None


def _baseline(manager: MemoryManager, job: str) -> tuple[float, int] | None:
    """(database time, segment count) of the last rebuild, from the job's last runs."""
    runs = TaskRepository(manager.store.connection("core")).history(job, limit=10)
    for run in runs:
        result = run.payload.get("result") or {}
        if "baseline_at" in result and "baseline_segments" in result:
            return float(result["baseline_at"]), int(result["baseline_segments"])
    return None


def compact_indexes(
    manager: MemoryManager, settings: PerformanceSettings, *, job: str, dry_run: bool
) -> IndexCompaction:
    """FTS5 optimize, and a Chroma rebuild when needed (see the module docstring)."""
    core = manager.store.connection("core")
    semantic = manager.semantic
    row = core.fetch_one("SELECT count(*) AS n, unixepoch('subsec') AS at FROM semantic_segments")
    count, at = (int(row["n"]), float(row["at"])) if row else (0, 0.0)
    baseline = _baseline(manager, job)
    deleted = None
    if baseline is not None:
        inserted = int(
            core.fetch_value(
                "SELECT count(*) FROM semantic_segments WHERE created_at > ?", (baseline[0],)
            )
            or 0
        )
        deleted = max(baseline[1] + inserted - count, 0)
    if not semantic.read_only:
        semantic.wait_ready(_LOAD_WAIT_S)  # the load's file checks tell whether it is damaged
    health = semantic.index_health()
    reason: str | None = None
    if health.state == "damaged":
        reason = "the index is damaged"
    elif health.state == "ok":
        chroma = compare_chroma(
            core,
            semantic=semantic,
            chroma_dir=chroma_dir_of(manager),
            read_catalog=not manager.store.other_holders(),
        )
        if chroma.ok is False:
            reason = "the index disagrees with libSQL"
    threshold = settings.index_rebuild_threshold
    if reason is None and deleted is not None and threshold and deleted >= threshold:
        reason = f"{deleted} segments were deleted since the last rebuild"
    done: dict[str, Any] = {
        "segments": count,
        "deleted_since_rebuild": -1 if deleted is None else deleted,
        "fts_optimized": not dry_run,
        "chroma_rebuilt": False,
        "vectors": 0,
    }
    rebuilt = False
    if not dry_run:
        semantic.optimize_fts()
        if reason is not None and health.state != "unavailable":
            done["vectors"] = semantic.rebuild()
            rebuilt = True
    done["chroma_rebuilt"] = rebuilt
    if rebuilt or baseline is None:
        done["baseline_at"], done["baseline_segments"] = at, count
    else:
        done["baseline_at"], done["baseline_segments"] = baseline
    return IndexCompaction(done, reason)


def _used_bytes(env: lmdb.Environment) -> int:
    """Bytes of the pages in use: the meta pages and every database's b-tree.

    ``info()["last_pgno"]`` is only the high-water mark (free pages lie below it); the
    free list's own pages are not counted, so this is a slight underestimate.
    """
    page = int(env.stat()["psize"])
    used = 2 + sum(int(env.stat()[k]) for k in ("branch_pages", "leaf_pages", "overflow_pages"))
    with env.begin() as txn:
        names = [bytes(key) for key, _ in txn.cursor()]
    for name in names:
        try:
            db = env.open_db(name, create=False)
        except lmdb.Error:
            continue  # a plain key of the main database, not a named one
        with env.begin(db=db) as txn:
            stat = txn.stat(db)
        used += sum(int(stat[k]) for k in ("branch_pages", "leaf_pages", "overflow_pages"))
    return used * page


_USAGE_CHILD: Final = """
import json, sys, lmdb
env = lmdb.open(sys.argv[1], readonly=True, lock=False, max_dbs=16, subdir=True)
page = env.stat()["psize"]
keys = ("branch_pages", "leaf_pages", "overflow_pages")
used = 2 + sum(env.stat()[k] for k in keys)
with env.begin() as txn:
    names = [bytes(k) for k, _ in txn.cursor()]
    for name in names:
        try:
            db = env.open_db(name, txn=txn, create=False)
        except lmdb.Error:
            continue
        used += sum(txn.stat(db)[k] for k in keys)
print(json.dumps(used * page))
"""


def working_memory_usage(layout: DataDir) -> dict[str, int]:
    """File size and the bytes in use of working memory, read-only (for a dry run).

    Counted in a child process (LMDB allows one handle per environment and process, and
    this one may have it open): a read-only handle without LMDB's lock (``lock=False``),
    which reads pages only and never touches ``lock.mdb``. What it reads may lag a
    concurrent writer: an estimate. ``used_bytes`` is -1 if it could not be counted.
    """
    directory = layout.working_memory
    data = directory / "data.mdb"
    if not data.is_file():
        return {"file_bytes": 0, "used_bytes": 0, "reclaimable_bytes": 0}
    file_bytes = data.stat().st_size
    try:
        out = subprocess.run(
            [sys.executable, "-I", "-c", _USAGE_CHILD, str(directory)],
            capture_output=True,
            text=True,
            timeout=_CHILD_TIMEOUT_S,
            check=True,
        )
        used = int(json.loads(out.stdout))
    except (OSError, subprocess.SubprocessError, ValueError):
        return {"file_bytes": file_bytes, "used_bytes": -1, "reclaimable_bytes": 0}
    return {
        "file_bytes": file_bytes,
        "used_bytes": used,
        "reclaimable_bytes": max(file_bytes - used, 0),
    }


def compact_working_memory(layout: DataDir, *, dry_run: bool) -> dict[str, Any]:
    """Replace working memory by a compact copy (module docstring); counts, or ``skipped``.

    Refuses (``skipped``) while anything has the environment open; that includes the
    ``MemoryManager`` of this process, so the CLI runs it before opening one and a running
    service reports it skipped.
    """
    directory = layout.working_memory
    data = directory / "data.mdb"
    if not data.is_file():
        return {"skipped": "there is no working-memory environment"}
    try:
        lock = OpenLock(directory / _LMDB_LOCK)
    except OSError as exc:
        return {"skipped": f"its open lock cannot be taken ({type(exc).__name__})"}
    try:
        try:
            alone = lock.acquire(0.0)
        except DatabaseBusy:
            alone = False
        if not alone:
            return {"skipped": "the environment is open (close the service or manager first)"}
        return _compact_locked(directory, dry_run=dry_run)
    finally:
        lock.close()


def _compact_locked(directory: Path, *, dry_run: bool) -> dict[str, Any]:
    file_bytes = (directory / "data.mdb").stat().st_size
    try:
        env = lmdb.open(str(directory), readonly=True, lock=False, max_dbs=16, subdir=True)
    except lmdb.Error as exc:
        return {"skipped": f"the environment does not open ({type(exc).__name__})"}
    try:
        used = _used_bytes(env)
        done: dict[str, Any] = {
            "file_bytes": file_bytes,
            "used_bytes": used,
            "reclaimable_bytes": max(file_bytes - used, 0),
        }
        if dry_run:
            return done
        if file_bytes - used < max(LMDB_MIN_RECLAIM, file_bytes // 10):
            return {**done, "skipped": "too little to reclaim"}
        copy = directory.with_name(f"{directory.name}.compact-{secrets.token_hex(4)}")
        copy.mkdir(mode=0o700)
        try:
            env.copy(str(copy), compact=True)
            _fsync(copy / "data.mdb")
        except (lmdb.Error, OSError):
            shutil.rmtree(copy, ignore_errors=True)
            raise
    finally:
        env.close()
    old = directory.with_name(f"{directory.name}.old-{secrets.token_hex(4)}")
    os.rename(directory, old)
    os.rename(copy, directory)
    fsync_dir(directory.parent)
    shutil.rmtree(old, ignore_errors=True)
    after = (directory / "data.mdb").stat().st_size
    return {**done, "bytes_reclaimed": max(file_bytes - after, 0), "file_bytes_after": after}


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
