"""``create_backup``, ``list_backups``, ``verify_backup``, retention and the schedule.

Real data dirs (``backup_support``): the archive holds no plaintext, verify checks every
byte and file, the snapshot taken while writers run is one consistent instant across the
databases, retention keeps the newest, and ``[storage.backup]`` is honoured or refused.
"""

from __future__ import annotations

import sys
import threading
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
    new_manager,
    open_manager,
    tree_digest,
)

from aico.config import load_config
from aico.errors import (
    ConfigError,
    IntegrityError,
    InvalidInput,
    NotFound,
    ReadOnly,
    WrongPassphrase,
)
from aico.operations import (
    BackupSettings,
    backup_due,
    create_backup,
    find_backup,
    list_backups,
    prune_backups,
    restore_backup,
    run_scheduled_backup,
    verify_backup,
)
from aico.operations.backup import BACKUP_SUFFIX, open_backup


@pytest.fixture
def manager(tmp_path):
    m = new_manager(tmp_path / "data")
    fill(m, ALICE, "alice")
    fill(m, BOB, "bob")
    yield m
    m.close()


def test_backup_holds_every_database_and_the_key_and_no_plaintext(manager):
    report = create_backup(manager.store, config=config())
    assert report.files == (
        "keys/master.key",
        "db/core/aico.db",
        "db/core/conversations.db",
        "db/core/sessions.db",
        "db/knowledge/knowledge.db",
        "db/knowledge/file_index.db",
    )
    assert report.info.path.parent == manager.store.layout.backups
    assert report.info.path.name == report.info.id + BACKUP_SUFFIX
    assert report.info.path.stat().st_mode & 0o777 == 0o600
    raw = report.info.path.read_bytes()
    for needle in (b"zqalice", b"zqbob", b"harbour", b"conversations", b"aico.db", b"alice"):
        assert needle not in raw
    # Nothing is left beside the archive: no snapshot copy, no partial file.
    assert sorted(p.name for p in manager.store.layout.backups.iterdir()) == [report.info.path.name]


def test_verify_checks_the_manifest_and_every_file(manager):
    report = create_backup(manager.store, config=config())
    seen = []
    checked = verify_backup(report.info.path, PASSPHRASE, progress=lambda d, t: seen.append(d))
    assert checked.files == report.files
    assert checked.key_id == manager.store.master_key.key_id
    assert checked.raw_bytes == report.raw_bytes == seen[-1]
    assert checked.schemas["conversations"]["conversations"] >= 2
    assert checked.schemas["core"]["semantic"] >= 1
    assert {f["name"] for f in checked.manifest["files"]} == set(report.files)
    assert all(len(f["hmac"]) == 64 and f["size"] > 0 for f in checked.manifest["files"])


def test_verify_refuses_a_wrong_passphrase_and_any_damage(manager, tmp_path):
    path = create_backup(manager.store, config=config()).info.path
    with pytest.raises(WrongPassphrase):
        verify_backup(path, "not the passphrase")
    size = path.stat().st_size
    for offset in (0, 40, size // 3, size // 2, size - 20, size - 1):
        copy = tmp_path / f"damaged-{offset}{BACKUP_SUFFIX}"
        copy.write_bytes(path.read_bytes())
        flip_byte(copy, offset)
        with pytest.raises((IntegrityError, InvalidInput)):  # InvalidInput: the magic
            verify_backup(copy, PASSPHRASE)
    truncated = tmp_path / f"short{BACKUP_SUFFIX}"
    truncated.write_bytes(path.read_bytes()[: size - 4096])
    with pytest.raises(IntegrityError):
        verify_backup(truncated, PASSPHRASE)


def test_the_key_file_travels_inside_wrapped_as_on_disk(manager):
    path = create_backup(manager.store, config=config()).info.path
    with open_backup(path, PASSPHRASE) as opened:
        assert opened.key_file == manager.store.layout.key_file.read_bytes()
        assert opened.master == manager.store.master_key


def test_list_and_find(manager, tmp_path):
    first = create_backup(manager.store, config=config(), clock=lambda: 1_800_000_000.0)
    second = create_backup(manager.store, config=config(), clock=lambda: 1_800_000_100.0)
    listed = list_backups(manager.store.layout.backups)
    assert [b.id for b in listed] == [second.info.id, first.info.id]
    assert listed[0].created_at == 1_800_000_100.0
    assert listed[0].created_iso == "2027-01-15T08:01:40Z"
    backups = manager.store.layout.backups
    assert find_backup(backups, "latest") == second.info.path
    assert find_backup(backups, first.info.id) == first.info.path
    assert find_backup(backups, first.info.path) == first.info.path
    with pytest.raises(NotFound):
        find_backup(backups, "20200101T000000Z-abcdef")
    with pytest.raises(NotFound):
        find_backup(tmp_path / "nowhere", "latest")
    assert list_backups(tmp_path / "nowhere") == []


def test_a_backup_of_a_read_only_store_is_refused(manager, tmp_path):
    manager.close()
    reader = open_manager(manager.store.layout.root, read_only=True)
    try:
        with pytest.raises(ReadOnly):
            create_backup(reader.store, config=config())
    finally:
        reader.close()


def test_backup_dir_from_the_config(manager, tmp_path):
    elsewhere = tmp_path / "other-disk"
    report = create_backup(manager.store, config=config(backup_dir=str(elsewhere)))
    assert report.info.path.parent == elsewhere
    assert list_backups(elsewhere)[0].id == report.info.id


def test_retention_by_age_and_count_keeps_the_newest(manager):
    day = 86_400.0
    base = 1_800_000_000.0
    made = [
        create_backup(manager.store, config=config(), clock=lambda t=t: base + t * day, prune=False)
        for t in range(6)
    ]
    backups = manager.store.layout.backups
    now = base + 5 * day
    dry = prune_backups(backups, retain_days=3, max_count=0, now=now, dry_run=True)
    assert [b.id for b in dry] == [made[1].info.id, made[0].info.id]
    assert len(list_backups(backups)) == 6
    gone = prune_backups(backups, retain_days=3, max_count=2, now=now)
    assert {b.id for b in gone} == {m.info.id for m in made[:4]}
    assert [b.id for b in list_backups(backups)] == [made[5].info.id, made[4].info.id]
    # The newest stays whatever its age.
    older = list_backups(backups)[1]
    assert prune_backups(backups, retain_days=1, max_count=1, now=now + 100 * day) == [older]
    assert [b.id for b in list_backups(backups)] == [made[5].info.id]


def test_create_prunes_with_the_configured_retention(manager):
    cfg = config(backup_retain_days=0, backup_max_count=2)
    for t in range(4):
        report = create_backup(manager.store, config=cfg, clock=lambda t=t: 1_800_000_000.0 + t)
    assert len(report.pruned) == 1
    assert len(list_backups(manager.store.layout.backups)) == 2


def test_schedule_follows_backup_interval(manager):
    cfg = config(backup_interval="1h")
    backups = manager.store.layout.backups
    assert backup_due(backups, 3600.0, now=1_800_000_000.0)  # none yet
    first = run_scheduled_backup(manager.store, cfg, now=1_800_000_000.0)
    assert first is not None
    assert run_scheduled_backup(manager.store, cfg, now=1_800_000_000.0 + 1800) is None
    assert run_scheduled_backup(manager.store, cfg, now=1_800_000_000.0 + 3601) is not None
    never = config(backup_interval="0s")
    assert run_scheduled_backup(manager.store, never, now=1_900_000_000.0) is None


def test_backup_settings_are_checked():
    settings = BackupSettings.from_config(config())
    assert settings == BackupSettings()  # the shipped defaults
    assert BackupSettings.from_config(config(backup_interval="7d")).backup_interval_s == 604_800
    with pytest.raises(ConfigError, match="backup_interval"):
        BackupSettings.from_config(config(backup_interval="often"))
    with pytest.raises(ConfigError, match="backup_max_count"):
        BackupSettings.from_config(config(backup_max_count=-1))
    with pytest.raises(ConfigError, match=r"unknown config key 'storage\.backup\.retention'"):
        load_config(env={}, overrides={"storage": {"backup": {"retention": 3}}})


def test_compression_only_where_it_pays(manager):
    """Encrypted database pages do not compress: stored as they are, not spent on."""
    report = create_backup(manager.store, config=config())
    assert report.archive_bytes < report.raw_bytes * 1.01 + 8192
    with open_backup(report.info.path, PASSPHRASE) as opened:
        codecs = []
        while (entry := opened.payload.next_entry()) is not None:
            codecs.append(entry.codec)
            for _ in entry.blocks():
                pass
    assert set(codecs) == {0}


def test_the_snapshot_is_one_instant_while_a_writer_runs(tmp_path):
    """A writer stores numbered messages and ends a session every 5; backups meanwhile.

    Each restored copy must be a crash state of one instant: a prefix of the writer's
    messages with no gap, and (after the repair of the first open) every message of an
    ended session in a segment, with the log's and the core database's views agreeing.
    """
    m = new_manager(tmp_path / "data")
    stop = threading.Event()
    acked: list[int] = []

    def writer() -> None:
        i = 0
        while not stop.is_set():
            m.store_message(ALICE, f"w{i // 5}", "user", f"numbered zqn{i:05d} entry")
            acked.append(i)
            if i % 5 == 4:
                m.end_session(f"w{i // 5}")
            i += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        reports = []
        for _ in range(3):
            time.sleep(0.3)
            floor = len(acked)
            reports.append((floor, create_backup(m.store, config=config(), prune=False)))
    finally:
        stop.set()
        thread.join()
    m.close()
    for n, (floor, report) in enumerate(reports):
        target = tmp_path / f"restored-{n}"
        restore_backup(report.info.path, PASSPHRASE, data_dir=target, config=config())
        r = open_manager(target)
        try:
            log = r.store.connection("conversations")
            numbers = sorted(
                int(row["content"].split("zqn")[1][:5])
                for row in log.fetch_all("SELECT content FROM messages")
            )
            assert numbers == list(range(len(numbers)))  # a prefix, no gap
            assert len(numbers) >= floor  # everything acknowledged before it started
            ended = log.fetch_all(
                "SELECT id FROM messages WHERE session_id IN "
                "(SELECT session_id FROM session_metadata WHERE status != 'active')"
            )
            sources = {
                row["message_id"]
                for row in r.store.connection("core").fetch_all(
                    "SELECT message_id FROM semantic_segment_messages"
                )
            }
            assert {row["id"] for row in ended} <= sources
            pending = log.fetch_value(
                "SELECT count(*) FROM compaction_history WHERE status = 'pending'"
            )
            assert pending == 0
        finally:
            r.close()


def test_backup_leaves_the_data_dir_as_it_was(manager):
    """Only the backups directory changes (the seals come back once the store closes)."""
    manager.close()
    root = manager.store.layout.root
    before = tree_digest(root, skip=("locks", "backups"))
    m = open_manager(root)
    create_backup(m.store, config=config())
    m.close()
    after = tree_digest(root, skip=("locks", "backups"))
    assert set(after) == set(before)


def test_leftovers_of_a_killed_backup_are_removed_by_the_next(manager):
    """A dead backup's ``.partial`` and snapshot copy go; a running one's stay."""
    import fcntl

    backups = manager.store.layout.backups
    backups.mkdir(exist_ok=True)
    dead, alive = "20200101T000000Z-aaaaaa", "20200101T000000Z-bbbbbb"
    for backup_id in (dead, alive):
        (backups / f"{backup_id}.aicobak.partial").write_bytes(b"half an archive")
        (backups / f".snapshot-{backup_id}").mkdir()
        (backups / f".snapshot-{backup_id}" / "core.db").write_bytes(b"a copy")
    (backups / ".snapshot-20200101T000000Z-cccccc").mkdir()  # its archive was renamed
    running = open(backups / f"{alive}.aicobak.partial", "rb")  # noqa: SIM115
    fcntl.flock(running.fileno(), fcntl.LOCK_EX)  # as a backup in progress holds it
    try:
        report = create_backup(manager.store, config=config())
    finally:
        running.close()
    assert sorted(p.name for p in backups.iterdir()) == sorted(
        [report.info.path.name, f"{alive}.aicobak.partial", f".snapshot-{alive}"]
    )
