"""``aico doctor``: each store damaged in turn is found, and ``--repair`` repairs it.

Every case starts from a real data dir (``ops_support.create``), damages one thing the way
the fault matrix does (bytes of a file, a file gone, rows gone behind the store's back, a
crash), then checks three things: the diagnosis names exactly that damage, the repair
says what it did, and afterwards a fresh diagnosis finds no problem and the memory works
(search finds what it should, working memory holds the live session).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from ops_support import (
    ALICE,
    PASSPHRASE,
    config,
    crash,
    create,
    open_manager,
    problems,
    run_doctor,
    search_markers,
    tree_hashes,
    warnings,
)

from aico.data.store import DataStore
from aico.security import Purpose


@pytest.fixture
def data(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    create(root)
    return root


def healed(data: Path) -> None:
    """After a repair: nothing left to find, and the memory answers."""
    report = run_doctor(data)
    assert not problems(report.findings), report.findings
    with open_manager(data) as manager:
        assert {"zqone0", "zqone2", "zqone4"} <= search_markers(manager, ALICE, "harbours")
        recent = manager.recent(ALICE, "s2", 10)
        assert len(recent) == 4


def repair(data: Path) -> set[str]:
    report = run_doctor(data, repair=True)
    assert report.after is not None
    assert not problems(report.after), report.after
    return {a.store for a in report.repaired if a.done}


def test_a_healthy_data_dir_has_no_problem_and_repair_changes_nothing(data):
    report = run_doctor(data)
    assert not problems(report.findings)
    assert report.status in ("ok", "warning")
    drift = [f for f in report.findings if f.check == "drift" and f.status == "ok"]
    assert any("in agreement" in f.detail for f in drift)
    assert run_doctor(data, repair=True).repaired == ()


def test_diagnosis_writes_nothing_even_with_damage(data):
    flip(data / "memory" / "working" / "data.mdb", 20_000)
    before = tree_hashes(data)
    report = run_doctor(data)
    assert ("open", "working_memory") in problems(report.findings)
    assert tree_hashes(data) == before


def flip(path: Path, offset: int) -> None:
    with path.open("r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))


# ---- libSQL -------------------------------------------------------------------------------


def test_a_damaged_fts5_index_is_rebuilt_from_the_segments(data):
    with open_manager(data) as manager:
        core = manager.store.connection("core")
        core.execute(
            "DELETE FROM semantic_fts_data WHERE id = (SELECT max(id) FROM semantic_fts_data)"
        )
    report = run_doctor(data)
    assert problems(report.findings) == {("fts", "core")}
    assert "fts" in repair(data)
    healed(data)


def test_a_core_database_refused_only_for_its_fts5_index_is_rescued(data):
    # After a crash the open's quick_check includes FTS5's check: the whole file is refused.
    crash(
        data,
        """
        core = manager.store.connection("core")
        core.execute(
            "DELETE FROM semantic_fts_data WHERE id = (SELECT max(id) FROM semantic_fts_data)"
        )
        """,
    )
    report = run_doctor(data)
    assert ("fts-refused", "core") in problems(report.findings)
    assert ("open", "core") not in problems(report.findings)
    assert "fts" in repair(data)
    healed(data)


def test_segment_rows_missing_from_fts5_are_found_as_drift(data):
    with open_manager(data) as manager:
        core = manager.store.connection("core")
        rowid = core.fetch_value("SELECT min(id) FROM semantic_segments")
        core.execute("DELETE FROM semantic_fts WHERE rowid = ?", (rowid,))
    report = run_doctor(data)
    assert ("drift", "fts") in problems(report.findings)
    assert "fts" in repair(data)
    healed(data)


def test_the_second_fts5_index_is_checked_and_rebuilt_too(data):
    with open_manager(data) as manager:
        core = manager.store.connection("core")
        # Schema v3: exchanges (alice's s1) are indexed a second time, every party's words.
        rowid = core.fetch_value("SELECT max(id) FROM semantic_fts_full_docsize")
        assert rowid is not None
        core.execute("DELETE FROM semantic_fts_full WHERE rowid = ?", (rowid,))
    report = run_doctor(data)
    assert ("drift", "fts") in problems(report.findings)
    assert "fts" in repair(data)
    healed(data)


def test_a_damaged_database_is_found_and_a_verified_backup_offered(data, tmp_path):
    flip(data / "db" / "core" / "conversations.db", 3 * 4096 + 100)
    report = run_doctor(data)
    assert ("open", "conversations") in problems(report.findings)
    finding = next(f for f in report.findings if f.store == "conversations")
    assert not finding.repairable and "backup" in (finding.repair or "")
    fixed = run_doctor(data, repair=True)
    offer = next(a for a in fixed.repaired if a.action == "restore")
    assert not offer.done and "no backup" in offer.detail
    assert ("open", "conversations") in problems(fixed.after or ())


def test_a_damaged_database_is_restored_from_the_newest_verified_backup(data):
    backup = pytest.importorskip("aico.operations.backup")
    with open_manager(data) as manager:
        backup.create_backup(manager.store, config=config())
    flip(data / "db" / "knowledge" / "knowledge.db", 2 * 4096 + 100)
    asked: list[str] = []

    def choose(databases: str, info: object) -> bool:
        asked.append(databases)
        return True

    report = run_doctor(data, repair=True, choose=choose)
    assert asked == ["knowledge"]
    restore = next(a for a in report.repaired if a.action == "restore")
    assert restore.done, restore
    assert not problems(report.after or ())
    healed(data)


def test_a_restore_that_needs_the_damaged_log_says_how_instead(data):
    # The forget ledger lives in the conversations database: the restore will not guess.
    backup = pytest.importorskip("aico.operations.backup")
    with open_manager(data) as manager:
        backup.create_backup(manager.store, config=config())
    flip(data / "db" / "core" / "conversations.db", 3 * 4096 + 100)
    report = run_doctor(data, repair=True, choose=lambda databases, info: True)
    restore = next(a for a in report.repaired if a.action == "restore")
    assert not restore.done and "ignore-ledger" in restore.detail
    assert ("open", "conversations") in problems(report.after or ())


def test_a_lost_wal_names_the_way_to_accept_the_loss(data):
    crash(data, 'manager.store_message("alice", "s9", "user", "zqlost one")')
    (data / "db" / "core" / "conversations.db-wal").unlink()
    report = run_doctor(data)
    finding = next(f for f in report.findings if f.store == "conversations")
    assert finding.status == "problem" and "aico db accept-loss conversations" in (
        finding.repair or ""
    )


def test_a_damaged_key_file_is_a_finding_not_a_crash(data):
    key = data / "keys" / "master.key"
    key.write_bytes(key.read_bytes()[:40])
    report = run_doctor(data)
    assert problems(report.findings) == {("key", "key_file")}


# ---- working memory -----------------------------------------------------------------------


def test_damaged_working_memory_is_moved_aside_and_refilled_from_the_log(data):
    with (data / "memory" / "working" / "data.mdb").open("r+b") as f:
        f.truncate(8192)
    report = run_doctor(data)
    assert ("open", "working_memory") in problems(report.findings)
    assert "working_memory" in repair(data)
    healed(data)


def test_messages_missing_from_working_memory_are_restored(data):
    with open_manager(data) as manager:
        ids = [m.id for m in manager.recent(ALICE, "s2", 10)]
        manager.working.delete_messages("s2", ids[:2])
    report = run_doctor(data)
    assert ("sessions", "working_memory") in problems(report.findings)
    repair(data)
    healed(data)


def test_a_missing_working_memory_is_refilled(data):
    import shutil

    shutil.rmtree(data / "memory" / "working")
    report = run_doctor(data)
    assert ("open", "working_memory") in warnings(report.findings)
    repair(data)
    healed(data)


# ---- Chroma -------------------------------------------------------------------------------


def test_damaged_chroma_files_are_rebuilt_from_libsql(data):
    segment = next(p for p in (data / "memory" / "semantic" / "chroma").iterdir() if p.is_dir())
    flip(segment / "data_level0.bin", 40)
    report = run_doctor(data)
    # Closed cleanly: the manifest proves the change (``index``) before any file check.
    assert problems(report.findings) & {("files", "chroma"), ("index", "chroma")}
    assert "chroma" in repair(data)
    healed(data)


def test_chroma_files_a_crash_left_broken_fail_their_structural_checks(data):
    (data / "memory" / "semantic" / "chroma.state").unlink()  # no clean close on record
    segment = next(p for p in (data / "memory" / "semantic" / "chroma").iterdir() if p.is_dir())
    with (segment / "header.bin").open("r+b") as f:
        f.truncate(30)
    report = run_doctor(data)
    assert ("files", "chroma") in problems(report.findings)
    assert "chroma" in repair(data)
    healed(data)


def test_vectors_missing_from_chroma_are_drift_and_rebuilt(data):
    # As after a crash: no manifest of a clean close, and the catalog lost some ids.
    import sqlite3

    (data / "memory" / "semantic" / "chroma.state").unlink()
    catalog = sqlite3.connect(data / "memory" / "semantic" / "chroma" / "chroma.sqlite3")
    with catalog:
        catalog.execute("DELETE FROM embeddings WHERE id IN (SELECT id FROM embeddings LIMIT 2)")
    catalog.close()
    report = run_doctor(data)
    assert ("drift", "chroma") in problems(report.findings)
    assert "chroma" in repair(data)
    healed(data)


# ---- the log against the segments ---------------------------------------------------------


def test_segments_of_messages_the_log_lost_are_deleted(data):
    with open_manager(data) as manager:
        log = manager.store.connection("conversations")
        log.execute("DELETE FROM messages WHERE session_id = 's3'")
    report = run_doctor(data)
    assert ("drift", "semantic") in problems(report.findings)
    repair(data)
    with open_manager(data) as manager:
        assert not search_markers(manager, "bob", "harbours")


def test_consolidated_messages_in_no_segment_are_consolidated_again(data):
    with open_manager(data) as manager:
        ids = manager.semantic.segments_of_conversation(ALICE, "c1")
        manager.semantic.delete_segments(ids)
        assert not search_markers(manager, ALICE, "harbours") & {"zqone0"}
    report = run_doctor(data)
    assert ("drift", "log") in problems(report.findings)
    assert "log" in repair(data)
    healed(data)


def test_session_counts_that_disagree_with_the_log_are_recounted(data):
    with open_manager(data) as manager:
        manager.store.connection("conversations").execute(
            "UPDATE session_metadata SET message_count = 99 WHERE session_id = 's1'"
        )
    report = run_doctor(data)
    assert ("sessions", "log") in problems(report.findings)
    repair(data)
    healed(data)


def test_work_a_crash_left_queued_is_finished(data):
    crash(
        data,
        """
        from aico.ai.memory import _faults
        def hook(point):
            if point == "after_segments":
                os._exit(0)
        _faults.set_fault_hook(hook)
        manager.store_message("alice", "s5", "user", "zqqueued note about harbours")
        manager.end_session("s5")
        """,
    )
    report = run_doctor(data)
    assert ("backlog", "log") in warnings(report.findings)
    repair(data)
    after = run_doctor(data)
    assert ("backlog", "log") not in warnings(after.findings)
    with open_manager(data) as manager:
        assert "zqqueued" in search_markers(manager, ALICE, "harbours")


def test_a_store_held_elsewhere_is_diagnosed_without_reading_chroma(data):
    with open_manager(data):
        report = run_doctor(data)
    assert not problems(report.findings)
    notes = [f.detail for f in report.findings if f.store == "chroma"]
    assert any("another process" in n or "open" in n for n in notes), notes


def test_a_repair_refuses_while_the_data_dir_is_open_elsewhere(data):
    from aico.errors import StoreBusy

    with open_manager(data) as manager, pytest.raises(StoreBusy) as caught:
        manager.store.connection("conversations").execute(
            "UPDATE session_metadata SET message_count = 99 WHERE session_id = 's1'"
        )
        run_doctor(data, repair=True)
    assert caught.value.pids == (os.getpid(),)


def test_the_fts_rescue_refuses_while_the_file_is_open(data):
    from aico.errors import StoreBusy
    from aico.operations._fts_rescue import rescue_fts

    store = DataStore.open(data, passphrase=PASSPHRASE, config=config())
    try:
        store.connection("core")
        with pytest.raises(StoreBusy):
            rescue_fts(
                store.path_of("core"),
                store.master_key.subkey(Purpose.libsql("core")),
                store.settings,
            )
    finally:
        store.close()
    assert os.path.exists(data / "db" / "core" / "aico.db.seal")
