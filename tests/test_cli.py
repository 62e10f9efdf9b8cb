"""The ``aico`` CLI, in-process with click's CliRunner: exact exit codes and output."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from aico.cli.main import cli
from aico.security import KdfParams

PASS = "cli passphrase"


@pytest.fixture
def env(tmp_path):
    p = KdfParams.for_tests()
    return {
        "AICO_DATA_DIR": str(tmp_path / "data"),
        "AICO_PASSPHRASE": PASS,
        "AICO_SECURITY__USE_KEYRING": "false",
        "AICO_SECURITY__KDF_TIME_COST": str(p.time_cost),
        "AICO_SECURITY__KDF_MEMORY_COST_KIB": str(p.memory_cost_kib),
        "AICO_SECURITY__KDF_PARALLELISM": str(p.parallelism),
        "AICO_CONFIG": "",
    }


def run(env, *args, extra=None):
    result = CliRunner().invoke(cli, list(args), env={**env, **(extra or {})})
    return result


@pytest.fixture
def initialized(env):
    result = run(env, "init")
    assert result.exit_code == 0, result.output
    assert "created encrypted store" in result.output
    return env


def test_status_json_and_check(initialized):
    result = run(initialized, "db", "status", "--json", "--check")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)["schemas"]
    assert {r["database"] for r in rows} >= {"core", "conversations", "sessions", "knowledge"}
    assert "semantic" in {r["schema"] for r in rows}  # the memory layer's schema is given
    assert all(r["pending"] == [] and r["checksum_state"] == "ok" for r in rows)


def test_rollback_then_status_check_fails_then_migrate(initialized):
    result = run(initialized, "db", "rollback", "--schema", "sessions", "--to", "0", "--dry-run")
    assert result.exit_code == 0 and "would roll back core" not in result.output
    assert "would roll back sessions/sessions v1" in result.output
    assert run(initialized, "db", "status", "--check").exit_code == 0  # dry run changed nothing
    result = run(initialized, "db", "rollback", "--schema", "sessions", "--to", "0")
    assert result.exit_code == 0 and "rolled back sessions/sessions v1" in result.output
    result = run(initialized, "db", "status", "--check")
    assert result.exit_code == 1
    assert "Error: not every schema is at its latest version" in result.output
    result = run(initialized, "db", "migrate", "--dry-run")
    assert result.exit_code == 0 and "would apply sessions/sessions v1" in result.output
    result = run(initialized, "db", "migrate")
    assert result.exit_code == 0 and "applied sessions/sessions v1" in result.output
    assert run(initialized, "db", "migrate").output.strip().startswith("nothing to do")
    assert run(initialized, "db", "verify").exit_code == 0


def test_wrong_passphrase_is_exit_1_with_one_line(initialized):
    result = run(initialized, "db", "status", extra={"AICO_PASSPHRASE": "nope"})
    assert result.exit_code == 1
    assert result.output.strip() == "Error: wrong passphrase"


def test_uninitialized_and_usage_errors(env):
    result = run(env, "db", "status")
    assert result.exit_code == 1 and "aico init" in result.output
    assert run(env, "db", "rollback", "--to", "1").exit_code == 2  # missing --schema
    assert run(env, "db", "frobnicate").exit_code == 2


def test_unknown_schema_and_bad_target(initialized):
    result = run(initialized, "db", "rollback", "--schema", "nope", "--to", "0")
    assert result.exit_code == 1 and "no schema named 'nope'" in result.output
    result = run(initialized, "db", "migrate", "--schema", "core", "--to", "9")
    assert result.exit_code == 1 and "versions 0..3" in result.output


def test_change_passphrase_and_rotate(initialized):
    result = run(initialized, "keys", "change-passphrase", extra={"AICO_NEW_PASSPHRASE": "new one"})
    assert result.exit_code == 0, result.output
    assert run(initialized, "db", "status").exit_code == 1
    moved = {**initialized, "AICO_PASSPHRASE": "new one"}
    assert run(moved, "db", "status", "--check").exit_code == 0
    result = run(moved, "keys", "rotate")
    assert result.exit_code == 0 and "master key rotated" in result.output
    assert run(moved, "db", "verify").exit_code == 0


HOLDER = "import sys; from aico.locking import DirLock; d = DirLock(sys.argv[1]); " + (
    "print('ready', flush=True); sys.stdin.readline()"
)


def test_rotate_is_refused_while_another_process_has_the_data_dir_open(initialized):
    import subprocess
    import sys

    from aico.layout import DataDir

    data_dir = initialized["AICO_DATA_DIR"]
    before = DataDir(data_dir).key_file.read_bytes()
    with subprocess.Popen(
        [sys.executable, "-c", HOLDER, data_dir],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        assert holder.stdout is not None and holder.stdin is not None
        assert holder.stdout.readline().strip() == "ready"
        result = run(initialized, "keys", "rotate")
        holder.stdin.close()
        assert holder.wait(timeout=60) == 0
    assert result.exit_code == 1
    assert result.output == (
        f"Error: the data dir {data_dir} is open in another process (pid {holder.pid}); "
        "close it and retry\n"
    )
    assert DataDir(data_dir).key_file.read_bytes() == before
    result = run(initialized, "keys", "rotate")
    assert result.exit_code == 0 and "master key rotated" in result.output


def test_keyring_remember_without_backend(initialized):
    import keyring
    from keyring.backends import fail

    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    try:
        result = run(initialized, "keys", "remember")
    finally:
        keyring.set_keyring(previous)
    assert result.exit_code == 1 and "no usable OS keyring" in result.output


def test_lmdb_status_ls_and_sweep(initialized):
    from aico.ai.memory.working import WorkingMemoryStore
    from aico.config import load_config
    from aico.data.store import DataStore

    config = load_config(env=initialized)
    data_dir = initialized["AICO_DATA_DIR"]
    with DataStore.open(data_dir, passphrase=PASS, config=config) as store:
        wm = WorkingMemoryStore.from_config(data_dir, store.master_key, config)
        wm.append("u1", "s1", "user", "hello from the cli test")
        wm.append("u1", "s1", "assistant", "hi there", ttl=0.001)
        wm.close()
    result = run(initialized, "lmdb", "status", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["messages"] == 2
    result = run(initialized, "lmdb", "ls", "--session", "s1")
    assert result.exit_code == 0
    assert "user      hello from the cli test" in result.output
    assert "hi there" not in result.output  # expired entries are invisible at once
    result = run(initialized, "lmdb", "sweep")
    assert result.exit_code == 0 and result.output.strip() == "removed 1 expired entries"
    assert run(initialized, "lmdb", "ls", "--session", "unknown").output == ""


CRASH_AFTER_COMMIT = r"""
import os, sys
from aico.ai.memory.stores import open_data_store
store = open_data_store(sys.argv[1])
store.connection("sessions").execute(
    "INSERT INTO user_preferences (id, user_id, preference_key) VALUES ('p', 'u', 'k')"
)
os._exit(0)  # no close: the commit lives only in the -wal
"""


def test_accept_loss_after_a_lost_wal(initialized, tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    data = Path(initialized["AICO_DATA_DIR"])
    child_env = {**os.environ, **initialized}
    subprocess.run([sys.executable, "-c", CRASH_AFTER_COMMIT, str(data)], env=child_env, check=True)
    wal = next(data.rglob("sessions.db-wal"))
    assert wal.stat().st_size > 0
    wal.unlink()
    result = run(initialized, "db", "status")
    assert result.exit_code == 1
    assert "missing" in result.output and "sessions" in result.output
    assert run(initialized, "--read-only", "db", "accept-loss", "sessions", "--yes").exit_code == 1
    result = run(initialized, "db", "accept-loss", "sessions", "--yes")
    assert result.exit_code == 0, result.output
    assert run(initialized, "db", "status", "--check").exit_code == 0


def test_read_only_flag(initialized):
    result = run(initialized, "--read-only", "db", "migrate")
    assert result.exit_code == 1
    assert "--read-only" in result.output
    result = run(initialized, "--read-only", "db", "status", "--json")
    assert result.exit_code == 0, result.output
    assert run(initialized, "--read-only", "lmdb", "sweep").exit_code == 1
