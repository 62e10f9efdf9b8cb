"""``restore_backup``: staged, verified, swapped atomically, and nobody forgotten comes back.

Real data dirs (``backup_support``). What a failed, refused or killed restore leaves is
proved by hashing every file of the data dir before and after; the forget ledger is proved
by forgetting after a backup (each grain, across a master-key rotation, through chains of
restores) and reading every store of the restored data.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from backup_support import (
    ALICE,
    BOB,
    PASSPHRASE,
    config,
    fill,
    flip_byte,
    healed,
    hits,
    lexical,
    new_manager,
    open_manager,
    tree_digest,
)

from aico.ai.embeddings import HashingEncoder
from aico.errors import (
    IntegrityError,
    InvalidInput,
    StorageError,
    StoreBusy,
    WrongPassphrase,
)
from aico.operations import create_backup, list_backups, restore_backup
from aico.security import KeyFile

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def data(tmp_path):
    """A closed data dir with alice and bob, and one backup of it; returns (dir, archive)."""
    m = new_manager(tmp_path / "data")
    fill(m, ALICE, "alice")
    fill(m, BOB, "bob")
    archive = create_backup(m.store, config=config()).info.path
    m.close()
    return tmp_path / "data", archive


def restore(archive: Path, data_dir: Path, **kw):
    """The fast fake encoder for the forgets a restore re-applies (the model's identity)."""
    return restore_backup(
        archive, PASSPHRASE, data_dir=data_dir, config=config(), encoder=HashingEncoder(), **kw
    )


def snapshot(data_dir: Path) -> tuple[dict[str, str], list[str]]:
    """Every file's digest under the data dir, and what sits beside it."""
    return tree_digest(data_dir), sorted(p.name for p in data_dir.parent.iterdir())


def in_log(m, marker: str) -> int:
    return m.store.connection("conversations").fetch_value(
        "SELECT count(*) FROM messages WHERE content LIKE ?", (f"%{marker}%",)
    )


def everything_of(m, user: str) -> dict[str, int]:
    """Rows of ``user`` in every store the restore must have cleaned."""
    core, log = m.store.connection("core"), m.store.connection("conversations")
    return {
        "users": core.fetch_value("SELECT count(*) FROM users WHERE user_id = ?", (user,)),
        "facts": core.fetch_value("SELECT count(*) FROM facts WHERE user_id = ?", (user,)),
        "segments": core.fetch_value(
            "SELECT count(*) FROM semantic_segments WHERE user_id = ?", (user,)
        ),
        "messages": log.fetch_value("SELECT count(*) FROM messages WHERE user_id = ?", (user,)),
        "conversations": log.fetch_value(
            "SELECT count(*) FROM conversations WHERE user_id = ?", (user,)
        ),
        "sessions": log.fetch_value(
            "SELECT count(*) FROM session_metadata WHERE user_id = ?", (user,)
        ),
        "hits": len(m.search(user, "harbour", 50)),
        "working": len(m.working.recent(f"{user}-s0", 50))
        + len(m.working.recent(f"{user}-s1", 50)),
    }


# ---- round trips -----------------------------------------------------------------------------


def test_restore_in_place_brings_back_the_backup_state(data):
    data_dir, archive = data
    m = open_manager(data_dir)
    before = hits(m, BOB, "harbour")
    fill(m, BOB, "later")  # after the backup: gone after the restore
    m.store_message(ALICE, "extra", "user", "zqlater words")
    m.close()
    report = restore(archive, data_dir)
    assert report.data_dir == data_dir and report.replaced is None
    assert report.index_rebuild_pending  # Chroma is rebuilt after the first open
    assert not (data_dir / "memory" / "semantic" / "chroma").exists()
    assert not DataDirMarker.present(data_dir)  # embedded: rebuilt in the background
    m = open_manager(data_dir)
    try:
        assert m.semantic.index_health().state == "damaged"  # missing: noticed at load
        assert healed(m)
        assert hits(m, BOB, "harbour") == before
        assert lexical(m, BOB, "zqlaterc0m0") == []
        assert m.semantic.verify_index().ok
        log = m.store.connection("conversations")
        assert log.fetch_value("SELECT count(*) FROM messages WHERE content LIKE '%zqlater%'") == 0
    finally:
        m.close()
    # The archives of the replaced data dir are still there (hard links, not copies).
    assert [b.path for b in list_backups(data_dir / "backups")] == [archive]
    # Nothing is left beside the data dir.
    assert sorted(p.name for p in data_dir.parent.iterdir()) == ["data"]


def test_rebuild_index_restores_a_complete_index_before_the_swap(data, tmp_path):
    data_dir, archive = data
    m = open_manager(data_dir)
    before = hits(m, BOB, "harbour")
    m.close()
    report = restore(archive, data_dir, to=tmp_path / "full", rebuild_index=True)
    assert not report.index_rebuild_pending
    m = open_manager(tmp_path / "full")
    try:
        health = m.semantic.index_health()
        assert (health.state, health.serving) == ("ok", True)  # no rebuild left to do
        assert m.semantic.verify_index().ok
        assert hits(m, BOB, "harbour") == before
    finally:
        m.close()


def test_restored_databases_open_without_stale_sidecars(data):
    """No commit record or seal travels: the next open must not see "missing commits"."""
    data_dir, archive = data
    m = open_manager(data_dir)
    for _ in range(30):  # the live databases' commit records run ahead of the backup's
        m.store_message(BOB, "busy", "user", "more")
    m.close()
    restore(archive, data_dir)
    for name in ("aico.db", "conversations.db"):
        assert (data_dir / "db" / "core" / f"{name}.seal").exists()  # sealed by the verify
    m = open_manager(data_dir)
    m.close()
    m = open_manager(data_dir)  # and again, from the seals it left
    m.close()


def test_restore_elsewhere_with_the_passphrase_alone(data, tmp_path):
    """Another machine: only the archive is there, no data dir, no key file."""
    data_dir, archive = data
    m = open_manager(data_dir)
    before = (hits(m, ALICE, "harbour"), hits(m, BOB, "harbour"))
    m.close()
    moved = tmp_path / "usb" / archive.name
    moved.parent.mkdir()
    moved.write_bytes(archive.read_bytes())
    fresh = tmp_path / "machine-b" / "aico"
    report = restore_backup(moved, PASSPHRASE, data_dir=fresh, config=config())
    assert report.data_dir == fresh and report.forgets_reapplied == 0
    m = open_manager(fresh)
    try:
        assert healed(m)
        assert (hits(m, ALICE, "harbour"), hits(m, BOB, "harbour")) == before
        assert m.store.master_key.key_id == KeyFile.load(data_dir / "keys" / "master.key").key_id
    finally:
        m.close()


def test_restore_to_a_new_directory_leaves_the_data_dir_alone(data, tmp_path):
    data_dir, archive = data
    before = snapshot(data_dir)[0]
    report = restore(archive, data_dir, to=tmp_path / "side")
    assert report.data_dir == tmp_path / "side"
    assert tree_digest(data_dir) == before
    with pytest.raises(InvalidInput, match="not empty"):
        restore(archive, data_dir, to=tmp_path / "side")


def test_keep_replaced_keeps_the_previous_data_dir(data):
    data_dir, archive = data
    m = open_manager(data_dir)
    m.store_message(BOB, "after", "user", "zqkept after the backup")
    m.close()
    report = restore(archive, data_dir, keep_replaced=True)
    assert report.replaced is not None and report.replaced.parent == data_dir.parent
    kept = open_manager(report.replaced)
    try:
        assert in_log(kept, "zqkept") == 1
    finally:
        kept.close()


def test_a_directory_that_is_not_a_data_dir_is_not_replaced(data, tmp_path):
    _, archive = data
    other = tmp_path / "photos"
    other.mkdir()
    (other / "holiday.jpg").write_bytes(b"jpeg")
    with pytest.raises(InvalidInput, match="not a data dir"):
        restore(archive, other)
    assert [p.name for p in other.iterdir()] == ["holiday.jpg"]


# ---- refusals and failures leave everything untouched --------------------------------------


def test_a_wrong_passphrase_fails_before_touching_anything(data):
    data_dir, archive = data
    before = snapshot(data_dir)
    with pytest.raises(WrongPassphrase):
        restore_backup(archive, "wrong passphrase", data_dir=data_dir, config=config())
    assert snapshot(data_dir) == before


def test_a_changed_current_passphrase_is_asked_for_when_the_key_differs(data):
    data_dir, archive = data
    key_file = data_dir / "keys" / "master.key"
    KeyFile.change_passphrase(key_file, PASSPHRASE, "new passphrase")
    # Same master key as the backup: its ledger opens with the backup's key, nothing to ask.
    restore(archive, data_dir)
    # A rotated key under a new passphrase: the current data dir's passphrase is needed.
    m = open_manager(data_dir)
    m.rotate_master_key(PASSPHRASE)
    m.close()
    KeyFile.change_passphrase(key_file, PASSPHRASE, "newer passphrase")
    before = snapshot(data_dir)
    with pytest.raises(WrongPassphrase, match="current data dir"):
        restore(archive, data_dir)
    assert snapshot(data_dir) == before
    restore(archive, data_dir, current_passphrase="newer passphrase")
    open_manager(data_dir).close()  # the backup's key file: the passphrase of then


def test_a_damaged_archive_leaves_the_data_dir_untouched(data, tmp_path):
    data_dir, archive = data
    damaged = tmp_path / "damaged.aicobak"
    damaged.write_bytes(archive.read_bytes())
    flip_byte(damaged, damaged.stat().st_size * 2 // 3)
    before = snapshot(data_dir)
    with pytest.raises(IntegrityError):
        restore(damaged, data_dir)
    assert snapshot(data_dir) == before


def test_an_open_data_dir_is_not_replaced(data):
    data_dir, archive = data
    m = open_manager(data_dir)
    try:
        with pytest.raises(StoreBusy):
            restore(archive, data_dir)
    finally:
        m.close()


CHILD = r"""
import os, sys, time
sys.path.insert(0, sys.argv[4])
import backup_support as s
from aico.operations import restore as r

where = sys.argv[3]
if where == "before-swap":
    real = r._swap
    def paused(*a, **k):
        print("PAUSED", flush=True)
        time.sleep(600)
    r._swap = paused
    progress = None
else:
    def progress(done, total):
        if done > total // 3:
            print("PAUSED", flush=True)
            time.sleep(600)
from aico.ai.embeddings import HashingEncoder
r.restore_backup(sys.argv[1], s.PASSPHRASE, data_dir=sys.argv[2], config=s.config(),
                 encoder=HashingEncoder(), progress=progress)
"""


@pytest.mark.parametrize("where", ["unpacking", "before-swap"])
def test_a_restore_killed_midway_leaves_the_data_dir_untouched(data, where):
    data_dir, archive = data
    m = open_manager(data_dir)
    m.store_message(BOB, "after", "user", "zqsurvivor after the backup")
    m.close()
    before = snapshot(data_dir)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "shared")}
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            CHILD,
            str(archive),
            str(data_dir),
            where,
            str(Path(__file__).parent),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "PAUSED"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    digest, beside = snapshot(data_dir)
    assert digest == before[0]
    leftovers = [n for n in beside if n.startswith(".data.restore-")]
    assert leftovers  # the abandoned staging directory (encrypted files only)
    m = open_manager(data_dir)
    try:
        assert in_log(m, "zqsurvivor") == 1  # the current data, as it was
    finally:
        m.close()
    restore(archive, data_dir)  # the next restore works and clears the leftovers
    assert sorted(p.name for p in data_dir.parent.iterdir()) == ["data"]
    m = open_manager(data_dir)
    try:
        assert in_log(m, "zqsurvivor") == 0
    finally:
        m.close()


# ---- the forget ledger ---------------------------------------------------------------------


def test_a_user_forgotten_after_the_backup_stays_forgotten(data):
    data_dir, archive = data
    m = open_manager(data_dir)
    kept = hits(m, BOB, "harbour")
    m.forget(ALICE)
    m.close()
    report = restore(archive, data_dir)
    assert report.forgets_reapplied == 1
    m = open_manager(data_dir)
    try:
        assert set(everything_of(m, ALICE).values()) == {0}
        assert hits(m, BOB, "harbour") == kept
        assert all(v > 0 for k, v in everything_of(m, BOB).items() if k != "working")
        ledger = m.store.connection("conversations").fetch_all(
            "SELECT grain, user_id, completed_at FROM forget_ledger"
        )
        assert [r["grain"] for r in ledger] == ["user"]
        assert ledger[0]["completed_at"] is not None and ALICE not in ledger[0]["user_id"]
    finally:
        m.close()
    # No forgotten marker anywhere in the decrypted pages or the raw files.
    m = open_manager(data_dir)
    try:
        for name in m.store.databases:
            for row in m.store.connection(name).fetch_all("SELECT data FROM sqlite_dbpage"):
                assert b"zqalice" not in row["data"]
    finally:
        m.close()
    for path in data_dir.rglob("*"):
        if path.is_file() and "backups" not in path.parts:
            assert b"zqalice" not in path.read_bytes()


def test_a_conversation_and_a_message_forgotten_after_the_backup_stay_forgotten(data):
    data_dir, archive = data
    m = open_manager(data_dir)
    log = m.store.connection("conversations")
    message = log.fetch_value(
        "SELECT id FROM messages WHERE content LIKE '%zqbobc1m2%'"
    )  # in bob's second conversation
    m.forget(ALICE, conversation_id="alice-conv0")
    m.forget(BOB, message_id=message)
    m.close()
    report = restore(archive, data_dir)
    assert report.forgets_reapplied == 2
    m = open_manager(data_dir)
    try:
        assert lexical(m, ALICE, "zqalicec0m1") == []
        assert lexical(m, ALICE, "zqalicec1m1")  # the other conversation stays
        assert lexical(m, BOB, "zqbobc1m2") == []
        assert lexical(m, BOB, "zqbobc1m0")  # the rest of that conversation stays
        log = m.store.connection("conversations")
        assert log.fetch_value("SELECT count(*) FROM conversations WHERE id = 'alice-conv0'") == 0
        assert log.fetch_value("SELECT count(*) FROM messages WHERE id = ?", (message,)) == 0
    finally:
        m.close()


def test_the_ledger_survives_a_chain_of_restores(data, tmp_path):
    """Forget, restore the old backup, restore it again: still forgotten each time."""
    data_dir, archive = data
    m = open_manager(data_dir)
    m.forget(ALICE)
    m.close()
    restore(archive, data_dir)
    second = restore(archive, data_dir)
    assert second.forgets_reapplied == 1  # the first restore's ledger re-applied it
    assert not second.index_rebuild_pending  # the forget's purge rebuilt the index
    m = open_manager(data_dir)
    try:
        assert set(everything_of(m, ALICE).values()) == {0}
    finally:
        m.close()


@pytest.mark.parametrize("order", ["forget-then-rotate", "rotate-then-forget"])
def test_the_ledger_matches_across_a_master_key_rotation(data, order):
    data_dir, archive = data
    m = open_manager(data_dir)
    if order == "forget-then-rotate":
        m.forget(ALICE)  # hashed under the backup's key
        m.rotate_master_key(PASSPHRASE)
    else:
        m.rotate_master_key(PASSPHRASE)
        m.forget(ALICE)  # hashed under the current key
    m.close()
    report = restore(archive, data_dir)
    assert report.forgets_reapplied == 1
    m = open_manager(data_dir)
    try:
        assert set(everything_of(m, ALICE).values()) == {0}
    finally:
        m.close()


def test_unmatched_ledger_rows_are_carried_into_the_restored_data(data, tmp_path):
    """A user made and forgotten after the backup is not in it; the row still travels, so
    an even older state restored later (here: the side copy of the newer backup) drops it."""
    data_dir, archive = data
    m = open_manager(data_dir)
    from aico.data.repositories import UserService

    UserService(m.store.connection("core")).create_user("Carol", user_id="carol")
    fill(m, "carol", "carol", conversations=1)
    with_carol = create_backup(m.store, config=config()).info.path
    m.forget("carol")
    m.close()
    report = restore(archive, data_dir)  # carol is not in this backup
    assert report.forgets_reapplied == 0 and report.ledger_rows_carried == 1
    again = restore(with_carol, data_dir)  # carol is in this one: the carried row applies
    assert again.forgets_reapplied == 1
    m = open_manager(data_dir)
    try:
        assert set(everything_of(m, "carol").values()) == {0}
    finally:
        m.close()


def test_an_unreadable_ledger_refuses_the_restore_unless_ignored(data):
    data_dir, archive = data
    conversations = data_dir / "db" / "core" / "conversations.db"
    flip_byte(conversations, 5000)  # the seal no longer matches
    before = snapshot(data_dir)
    with pytest.raises(StorageError, match="ignore-ledger"):
        restore(archive, data_dir)
    assert snapshot(data_dir) == before
    report = restore(archive, data_dir, ignore_ledger=True)
    assert report.forgets_reapplied == 0
    open_manager(data_dir).close()


def test_with_a_chroma_server_the_first_open_rebuilds_the_index(data, tmp_path):
    """A server keeps the replaced data's collections: the rebuild marker makes the first
    open replace them (checked here by the marker; the server case runs in tests/ai)."""
    _, archive = data
    cfg = config()
    server = cfg.as_dict()
    server["memory"]["semantic"]["chroma_url"] = "http://127.0.0.1:9"
    from aico.config import Config

    restore_backup(
        archive, PASSPHRASE, data_dir=tmp_path / "x", to=tmp_path / "y", config=Config(server)
    )
    assert DataDirMarker.present(tmp_path / "y")


@pytest.mark.parametrize("damage", ["deleted", "garbled"])
def test_a_data_dir_that_lost_its_key_file_is_restored_only_knowingly(data, damage):
    """Without its key nothing of the data dir decrypts, its ledger neither: the restore
    that brings it back must be asked for with --ignore-ledger."""
    data_dir, archive = data
    key_file = data_dir / "keys" / "master.key"
    if damage == "deleted":
        key_file.unlink()
    else:
        key_file.write_bytes(b"{not json")
    before = snapshot(data_dir)
    with pytest.raises(StorageError, match="ignore-ledger"):
        restore(archive, data_dir)
    assert snapshot(data_dir) == before
    restore(archive, data_dir, ignore_ledger=True)
    m = open_manager(data_dir)
    try:
        assert lexical(m, ALICE, "zqalicec0m1")
    finally:
        m.close()


class DataDirMarker:
    @staticmethod
    def present(data_dir: Path) -> bool:
        return (data_dir / "memory" / "semantic" / "index-rekey.pending").exists()


def test_report_is_json_friendly(data, tmp_path):
    _, archive = data
    report = restore(archive, tmp_path / "x", to=tmp_path / "y")
    from dataclasses import asdict

    assert json.loads(json.dumps(asdict(report), default=str))["files"][0] == "keys/master.key"
    assert report.total_s < 60 and time.time() > 0
