"""DataStore: every database of a data dir, encrypted, migrated, unlocked, rotated."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from aico.data.repositories import FactRepository, UserService
from aico.data.schemas import DATABASE_FILES
from aico.data.store import DataStore
from aico.errors import DatabaseCorrupted, KeyFileError, WrongPassphrase
from aico.security import KeyFile

from ..conftest import PASSPHRASE

MARKER = "zebra-marmalade-4471"


def all_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def test_initialize_creates_every_database_at_head(store):
    statuses = store.status()
    assert {s.database for s in statuses} == set(DATABASE_FILES)
    for db in statuses:
        assert db.exists
        assert all(s.at_head for s in db.schemas), db
    assert store.migrate() == []


def test_marker_text_never_reaches_disk_in_plaintext(store):
    data_dir = store.data_dir
    users = UserService(store.connection("core"))
    user = users.create_user(f"name {MARKER}")
    FactRepository(store.connection("core")).remember(user.user_id, f"fact {MARKER}")
    store.connection("conversations").execute(
        "INSERT INTO conversations (id, provider, title) VALUES ('c1', 'local', ?)", (MARKER,)
    )
    for phase in ("open", "closed"):
        if phase == "closed":
            store.close()
        for path in all_files(data_dir):
            assert MARKER.encode() not in path.read_bytes(), (phase, path)
            assert MARKER.encode("utf-16-le") not in path.read_bytes(), (phase, path)


def test_stdlib_sqlite_cannot_read_the_files(store):
    import sqlite3

    store.close()
    for name in DATABASE_FILES.values():
        with sqlite3.connect(store.data_dir / name) as plain, pytest.raises(sqlite3.DatabaseError):
            plain.execute("SELECT * FROM sqlite_master").fetchall()


def test_reopen_with_passphrase_keeps_data(store, test_config):
    user = UserService(store.connection("core")).create_user("Bea")
    store.close()
    with DataStore.open(store.data_dir, passphrase=PASSPHRASE, config=test_config) as again:
        assert UserService(again.connection("core")).get_profile(user.user_id).display_name == "Bea"


def test_wrong_passphrase_fails_before_any_database_is_touched(store, test_config):
    store.close()
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in all_files(store.data_dir)}
    start = time.perf_counter()
    with pytest.raises(WrongPassphrase) as info:
        DataStore.open(store.data_dir, passphrase="not it", config=test_config)
    assert str(info.value) == "wrong passphrase"
    assert time.perf_counter() - start < 5  # fails at the unwrap, not after opening databases
    after = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in all_files(store.data_dir)}
    assert after == before


def test_missing_key_file_is_a_clear_error(tmp_path, test_config):
    with pytest.raises(KeyFileError, match="aico init"):
        DataStore.open(tmp_path / "empty", passphrase=PASSPHRASE, config=test_config)


def test_passphrase_change_keeps_all_data(store, test_config):
    user = UserService(store.connection("core")).create_user("Cy")
    store.close()
    KeyFile.change_passphrase(store.key_path, PASSPHRASE, "a brand new passphrase")
    with pytest.raises(WrongPassphrase):
        DataStore.open(store.data_dir, passphrase=PASSPHRASE, config=test_config)
    with DataStore.open(
        store.data_dir, passphrase="a brand new passphrase", config=test_config
    ) as again:
        assert UserService(again.connection("core")).get_profile(user.user_id).display_name == "Cy"


def test_master_key_rotation_rekeys_every_database(store, test_config):
    user = UserService(store.connection("core")).create_user("Dee")
    store.connection("sessions").execute(
        "INSERT INTO user_preferences (id, user_id, preference_key) VALUES ('p1', 'u', 'k')"
    )
    old_master = store.master_key
    new_id = store.rotate_master_key(PASSPHRASE)
    assert new_id != old_master.key_id
    store.close()
    assert KeyFile.load(store.key_path).key_id == new_id
    # The old key no longer opens any database.
    stale = DataStore(store.data_dir, old_master, settings=store.settings)
    with pytest.raises(DatabaseCorrupted):
        stale.connection("core").fetch_value("SELECT 1")
    stale.close()
    with DataStore.open(store.data_dir, passphrase=PASSPHRASE, config=test_config) as again:
        assert again.master_key.key_id == new_id
        assert UserService(again.connection("core")).get_profile(user.user_id).display_name == "Dee"
        assert again.connection("sessions").fetch_value("SELECT id FROM user_preferences") == "p1"
        assert all(s.at_head for db in again.status() for s in db.schemas)


def test_rotation_steps_are_given_and_a_resumed_open_runs_them(store, test_config):
    assert dict(store.rotation_steps) == {}  # nothing is discovered
    calls: list[tuple[str, str, str]] = []

    def record(name):
        def step(s, old, new):
            assert s.master_key == new  # every database already opens with the new key
            calls.append((name, old.key_id, new.key_id))
            return {"n": 1}

        return step

    def crash(s, old, new):
        raise RuntimeError("power cut in a step")

    store.close()
    opened = DataStore.open(
        store.data_dir,
        passphrase=PASSPHRASE,
        config=test_config,
        rotation_steps={"first": record("first"), "second": crash},
    )
    with pytest.raises(RuntimeError):
        opened.rotate_master_key(PASSPHRASE)
    opened.close()
    assert KeyFile.load(store.key_path).rotation_pending
    steps = {"first": record("first"), "second": record("second")}
    skipped = DataStore.open(
        store.data_dir,
        passphrase=PASSPHRASE,
        config=test_config,
        rotation_steps=steps,
        resume_rotation=False,
    )
    skipped.close()
    assert KeyFile.load(store.key_path).rotation_pending  # left to the caller's rotation
    with DataStore.open(
        store.data_dir, passphrase=PASSPHRASE, config=test_config, rotation_steps=steps
    ) as again:
        assert not KeyFile.load(store.key_path).rotation_pending
        assert again.last_rotation == {"first": {"n": 1}, "second": {"n": 1}}
    assert [name for name, *_ in calls] == ["first", "first", "second"]
    assert len({(old, new) for _, old, new in calls}) == 1  # the resume used the same keys


CRASHING_ROTATION = textwrap.dedent(
    """
    import os, sys
    from aico.data.store import DataStore
    from aico.config import load_config
    from aico.security import KeyFile

    data_dir, passphrase, crash_after, kdf = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    t, m, p = map(int, kdf.split(","))
    config = load_config(env={}, overrides={"security": {"use_keyring": False,
        "kdf_time_cost": t, "kdf_memory_cost_kib": m, "kdf_parallelism": p}})
    store = DataStore.open(data_dir, passphrase=passphrase, config=config)
    real = DataStore._rekey_one
    done = []

    def crashing(self, database, old, new):
        real(self, database, old, new)
        done.append(database)
        if len(done) == crash_after:
            os._exit(17)  # power cut: no close, no seal, no key-file update

    DataStore._rekey_one = crashing
    store.rotate_master_key(passphrase)
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("crash_after", [1, 3])
def test_rotation_survives_a_crash_and_resumes(store, test_config, fast_kdf, crash_after):
    user = UserService(store.connection("core")).create_user("Eve")
    store.close()
    kdf = f"{fast_kdf.time_cost},{fast_kdf.memory_cost_kib},{fast_kdf.parallelism}"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            CRASHING_ROTATION,
            str(store.data_dir),
            PASSPHRASE,
            str(crash_after),
            kdf,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 17, proc.stderr
    assert KeyFile.load(store.key_path).rotation_pending
    # Opening with the passphrase finishes the interrupted rotation.
    with DataStore.open(store.data_dir, passphrase=PASSPHRASE, config=test_config) as again:
        assert not KeyFile.load(store.key_path).rotation_pending
        assert UserService(again.connection("core")).get_profile(user.user_id).display_name == "Eve"
        for db in DATABASE_FILES:
            assert again.connection(db).fetch_value("SELECT count(*) FROM sqlite_master") > 0
