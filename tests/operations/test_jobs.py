"""Maintenance jobs and retention policies: each does its job, a dry run changes nothing.

Real data dirs throughout; time is a settable clock given to the manager, so "400 days
later" is one assignment. A dry run is checked by hashing every file of the data dir
before and after, on a manager opened read-only (as ``aico maintenance run --dry-run``).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from ops_support import (
    ALICE,
    BOB,
    PASSPHRASE,
    Clock,
    config,
    create,
    open_manager,
    search_markers,
    tree_hashes,
)

from aico.ai.embeddings import HashingEncoder
from aico.ai.memory import MemoryManager
from aico.data.repositories import TaskRepository, UserService
from aico.errors import InvalidInput, ReadOnly
from aico.operations.compaction import compact_working_memory
from aico.operations.health import health_report
from aico.operations.jobs import JOBS, run_job, run_recorded

DAY = 86_400.0
T0 = 1_700_000_000.0


@pytest.fixture
def data(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    create(root)
    return root


def timed(tmp_path: Path, cfg=None) -> tuple[Path, Clock]:
    """A data dir whose messages were written at ``T0`` (alice: c1 at T0, c2 at T0 + 1 day;
    bob: c3 at T0 + 2 days), closed; and the clock it was written with."""
    root = tmp_path / "timed"
    clock = Clock(T0)
    cfg = cfg or config()
    with MemoryManager.initialize(
        root, PASSPHRASE, config=cfg, encoder=HashingEncoder(), clock=clock
    ) as manager:
        users = UserService(manager.store.connection("core"))
        users.create_user("Alice", user_id=ALICE)
        users.create_user("Bob", user_id=BOB)
        for offset, (user, conv, session) in enumerate(
            [(ALICE, "c1", "s1"), (ALICE, "c2", "s2"), (BOB, "c3", "s3")]
        ):
            clock.now = T0 + offset * DAY
            for i in range(3):
                manager.store_message(
                    user, session, "user", f"note zq{conv}m{i} about harbours", conversation_id=conv
                )
            manager.end_session(session)
        manager.semantic.process_outbox()
    return root, clock


def status_of(manager: MemoryManager) -> dict[str, str]:
    log = manager.store.connection("conversations")
    return {
        str(r["id"]): str(r["status"])
        for r in log.fetch_all("SELECT id, status FROM conversations")
    }


def read_only(data: Path, clock: Clock | None = None, cfg=None) -> MemoryManager:
    return open_manager(data, cfg, read_only=True, **({"clock": clock} if clock else {}))


# ---- every job ----------------------------------------------------------------------------


def test_every_dry_run_changes_nothing(data):
    with open_manager(data) as manager:  # make every policy have something to report
        manager.store.connection("file_index").execute(
            "INSERT INTO file_changes (id, file_id, change_type, changed_at) "
            "VALUES ('v1', NULL, 'modified', 1.0)"
        )
    before = tree_hashes(data)
    with read_only(data, Clock(time.time() + 400 * DAY)) as manager:
        reports = [run_job(manager, name, dry_run=True) for name in JOBS]
    assert tree_hashes(data) == before
    by_job = {r.job: r for r in reports}
    assert set(by_job) == set(JOBS)
    assert all(r.dry_run for r in reports)
    assert by_job["archive-conversations"].done["archived_by_age"] == 3
    assert by_job["file-versions"].done["versions_deleted"] == 1
    assert by_job["expired-cleanup"].done["working_expired"] > 0


def test_jobs_that_write_refuse_a_read_only_manager(data):
    with read_only(data) as manager:
        for name in JOBS:
            with pytest.raises(ReadOnly):
                run_job(manager, name)
        with pytest.raises(ReadOnly):
            run_recorded(manager, "optimize")


def test_an_unknown_job_names_the_known_ones(data):
    with read_only(data) as manager, pytest.raises(InvalidInput, match="expired-cleanup"):
        run_job(manager, "vacuum-everything", dry_run=True)


def test_a_recorded_run_is_in_the_tasks_table_and_shown_by_health(data):
    with open_manager(data) as manager:
        report = run_recorded(manager, "optimize")
        assert report.done["databases"] == 5
        tasks = TaskRepository(manager.store.connection("core"))
        job = tasks.get("optimize")
        assert job.schedule == "every 604800s" and job.status == "completed"
        assert job.next_run_at == pytest.approx(report.finished_at + 7 * DAY)
        runs = tasks.history("optimize")
        assert len(runs) == 1 and runs[0].payload["result"]["databases"] == 5
        shown = {j.name: j for j in health_report(manager, drift=False).maintenance}
        assert shown["optimize"].status == "completed"
        assert shown["optimize"].last_result["databases"] == 5


def test_a_job_running_elsewhere_is_not_run_twice(data):
    with open_manager(data) as manager:
        tasks = TaskRepository(manager.store.connection("core"))
        tasks.schedule("optimize", "maintenance", every=7 * DAY)
        assert tasks.start("optimize") is not None  # another process holds the claim
        report = run_recorded(manager, "optimize")
        assert report.skipped == "running elsewhere" and report.done == {}


# ---- archive-conversations ----------------------------------------------------------------


def test_conversations_are_archived_by_age_and_by_the_per_user_cap(tmp_path):
    cfg = config(
        {
            "storage": {
                "lifecycle": {"conversation_archive_days": 30, "conversation_max_per_project": 1}
            }
        }
    )
    root, clock = timed(tmp_path, cfg)
    clock.now = T0 + 20 * DAY  # younger than 30 days: only alice's cap applies
    with open_manager(root, cfg, clock=clock) as manager:
        report = run_job(manager, "archive-conversations")
        assert report.done["archived_by_cap"] == 1 and report.done["archived_by_age"] == 0
        assert status_of(manager) == {"c1": "archived", "c2": "active", "c3": "active"}
        assert "zqc1m0" in search_markers(manager, ALICE, "harbours")  # still searchable
    clock.now = T0 + 40 * DAY
    with open_manager(root, cfg, clock=clock) as manager:
        report = run_job(manager, "archive-conversations")
        assert report.done["archived_by_age"] == 2
        assert set(status_of(manager).values()) == {"archived"}


def test_a_conversation_with_a_new_message_is_active_again(tmp_path):
    cfg = config({"storage": {"lifecycle": {"conversation_archive_days": 30}}})
    root, clock = timed(tmp_path, cfg)
    clock.now = T0 + 40 * DAY
    with open_manager(root, cfg, clock=clock) as manager:
        run_job(manager, "archive-conversations")
        clock.now += 60
        manager.store_message(ALICE, "s9", "user", "back again", conversation_id="c1")
        report = run_job(manager, "archive-conversations")
        assert report.done["reactivated"] == 1
        assert status_of(manager)["c1"] == "active"


def test_archived_conversations_leave_search_when_not_searchable(tmp_path):
    cfg = config(
        {"storage": {"lifecycle": {"conversation_archive_days": 30, "archived_searchable": False}}}
    )
    root, clock = timed(tmp_path, cfg)
    clock.now = T0 + 31.5 * DAY  # c1 and c2 are older than 30 days, c3 is not
    with read_only(root, clock, cfg) as manager:
        before = tree_hashes(root)
        dry = run_job(manager, "archive-conversations", dry_run=True)
        assert tree_hashes(root) == before
        assert dry.done["segments_removed"] == 6 and dry.details["archive"] == ["c1", "c2"]
    with open_manager(root, cfg, clock=clock) as manager:
        report = run_job(manager, "archive-conversations")
        assert report.done == dry.done
        assert not search_markers(manager, ALICE, "harbours")
        assert search_markers(manager, BOB, "harbours") == {"zqc3m0", "zqc3m1", "zqc3m2"}
        assert len(manager.log.messages_of_conversation("c1")) == 3  # the log keeps them
    from ops_support import run_doctor

    assert not [f for f in run_doctor(root, config=cfg).findings if f.status == "problem"]


# ---- file-versions ------------------------------------------------------------------------


def test_file_versions_past_the_age_and_count_limits_are_deleted(data):
    cfg = config(
        {"storage": {"lifecycle": {"file_version_retention_days": 10, "file_version_max_count": 2}}}
    )
    now = time.time()
    with open_manager(data, cfg) as manager:
        files = manager.store.connection("file_index")
        files.execute("INSERT INTO files (id, path, name) VALUES ('f1', '/a', 'a')")
        rows = [(f"v{i}", "f1", "modified", now - i * DAY) for i in range(5)]
        rows.append(("old", "f1", "modified", "2001-01-01 00:00:00"))  # SQLite's default form
        files.execute_many(
            "INSERT INTO file_changes (id, file_id, change_type, changed_at) VALUES (?, ?, ?, ?)",
            rows,
        )
        report = run_job(manager, "file-versions")
        assert report.done["versions_deleted"] == 4
        left = {r["id"] for r in files.fetch_all("SELECT id FROM file_changes")}
        assert left == {"v0", "v1"}


# ---- expired-cleanup ----------------------------------------------------------------------


def test_expired_cache_entries_sessions_scores_and_leftovers_are_swept(data):
    later = Clock(time.time() + 2 * DAY)
    working = data / "memory" / "working"
    old_copy = working.with_name("working.damaged-20000101T000000Z")
    new_copy = working.with_name("working.damaged-29990101T000000Z")
    for copy in (old_copy, new_copy):
        copy.mkdir()
        (copy / "data.mdb").write_bytes(b"sealed")
    os.utime(old_copy, (0, 0))
    with open_manager(data, clock=later) as manager:
        manager.store.connection("file_index").execute(
            "INSERT INTO file_relevance_scores (id, file_id, context_type, expires_at) "
            "VALUES ('r1', NULL, 'x', ?)",
            (time.time(),),
        )
        dry = run_job(manager, "expired-cleanup", dry_run=True)
        report = run_job(manager, "expired-cleanup")
        assert report.done["working_expired"] == dry.done["working_expired"] > 0
        assert 0 < report.done["working_removed"] <= report.done["working_expired"]
        assert report.done["sessions_expired"] == 1  # s2, the live one
        assert report.done["file_scores"] == 1
        assert report.done["leftovers"] == 1
        assert manager.working.stats()["expired_pending"] == 0
    assert not old_copy.exists() and new_copy.exists()


# ---- optimize -----------------------------------------------------------------------------


def test_optimize_returns_free_pages_to_the_file_system(data):
    with open_manager(data) as manager:
        core = manager.store.connection("core")
        core.execute_many(
            "INSERT INTO logs (level, message) VALUES ('INFO', ?)",
            [(os.urandom(3000).hex(),) for _ in range(400)],
        )
        core.execute("DELETE FROM logs")
        core.checkpoint()
        path = manager.store.path_of("core")
        size = path.stat().st_size
        dry = run_job(manager, "optimize", dry_run=True)
        assert dry.done["core.free_bytes"] > 1_000_000
        report = run_job(manager, "optimize")
        assert report.done["core.bytes_reclaimed"] > 1_000_000
        assert int(core.fetch_value("PRAGMA freelist_count")) == 0
        assert path.stat().st_size < size
    with open_manager(data) as manager:
        assert "zqone0" in search_markers(manager, ALICE, "harbours")


# ---- index-compact ------------------------------------------------------------------------


def test_index_compact_rebuilds_chroma_after_enough_deletions(data):
    cfg = config({"storage": {"performance": {"index_rebuild_threshold": 2}}})
    with open_manager(data, cfg) as manager:
        first = run_recorded(manager, "index-compact")
        assert first.done["fts_optimized"] and not first.done["chroma_rebuilt"]
        assert first.done["deleted_since_rebuild"] == -1  # no baseline yet: recorded now
        ids = manager.semantic.segments_of_conversation(BOB, "c3")
        manager.semantic.delete_segments(ids)
        manager.semantic.process_outbox()
        second = run_recorded(manager, "index-compact")
        assert second.done["deleted_since_rebuild"] == len(ids) >= 2
        assert second.done["chroma_rebuilt"] and "deleted" in (second.note or "")
        third = run_recorded(manager, "index-compact")
        assert third.done["deleted_since_rebuild"] == 0 and not third.done["chroma_rebuilt"]
        assert manager.semantic.verify_index().ok


# ---- lmdb-compact -------------------------------------------------------------------------


def test_lmdb_compact_shrinks_working_memory_and_keeps_what_is_live(data):
    soon = Clock(time.time())
    with open_manager(data, clock=soon) as manager:
        for i in range(3000):
            manager.working.put_value("s2", f"k{i}", "x" * 400, ttl=60)
        manager.working.put_value("s2", "keep", {"v": 1}, ttl=DAY)
        soon.now += 120
        manager.working.sweep(now=soon.now)
        skipped = run_job(manager, "lmdb-compact")
        assert skipped.skipped and "open" in skipped.skipped
    data_file = data / "memory" / "working" / "data.mdb"
    size = data_file.stat().st_size
    done = compact_working_memory(open_layout(data), dry_run=False)
    assert "skipped" not in done, done
    assert done["bytes_reclaimed"] > 0 and data_file.stat().st_size < size
    with open_manager(data, clock=soon) as manager:
        assert len(manager.recent(ALICE, "s2", 10)) == 4
        assert manager.working.get_value("s2", "keep") == {"v": 1}


def test_lmdb_compact_waits_for_every_opener(data):
    with open_manager(data):
        done = compact_working_memory(open_layout(data), dry_run=False)
    assert "open" in done["skipped"]


def open_layout(data: Path):
    from aico.layout import DataDir

    return DataDir(data)


def test_a_retention_run_that_removed_rows_brings_the_analytics_copy_along(tmp_path):
    root, clock = timed(tmp_path)
    clock.now = T0 + 400 * DAY
    with open_manager(root, clock=clock) as manager:
        manager.analytics.export()
        report = run_job(manager, "expired-cleanup")
        assert report.done["working_expired"] > 0
        assert report.done["analytics_removed"] >= 0  # the copy was brought up to date
        copied = manager.analytics.sql("SELECT count(*) AS n FROM a.sessions").dicts()[0]["n"]
        live = manager.store.connection("conversations").fetch_value(
            "SELECT count(*) FROM session_metadata"
        )
        assert copied == live
    root2, clock2 = timed(tmp_path / "no-copy")
    clock2.now = T0 + 400 * DAY
    with open_manager(root2, clock=clock2) as manager:  # no copy: none is made
        assert "analytics_removed" not in run_job(manager, "expired-cleanup").done
        assert not manager.analytics.path.exists()
