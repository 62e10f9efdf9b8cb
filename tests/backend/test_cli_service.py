"""``aico tokens create|revoke|list`` and ``aico tasks list``, in-process (CliRunner)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from aico.cli.main import cli
from aico.data.repositories import UserService
from aico.data.store import DataStore
from aico.security import KdfParams

PASS = "cli passphrase"


@pytest.fixture
def env(tmp_path):
    p = KdfParams.for_tests()
    env = {
        "AICO_DATA_DIR": str(tmp_path / "data"),
        "AICO_PASSPHRASE": PASS,
        "AICO_SECURITY__USE_KEYRING": "false",
        "AICO_SECURITY__KDF_TIME_COST": str(p.time_cost),
        "AICO_SECURITY__KDF_MEMORY_COST_KIB": str(p.memory_cost_kib),
        "AICO_SECURITY__KDF_PARALLELISM": str(p.parallelism),
        "AICO_CONFIG": "",
    }
    assert CliRunner().invoke(cli, ["init"], env=env).exit_code == 0
    with DataStore.open(tmp_path / "data", passphrase=PASS, config=None, env=env) as store:
        UserService(store.connection("core")).create_user("Maya", user_id="maya")
    return env


def run(env, *args):
    return CliRunner().invoke(cli, list(args), env=env)


def test_tokens_create_list_revoke(env):
    made = run(env, "tokens", "create", "--user", "maya", "--label", "phone", "--json")
    assert made.exit_code == 0, made.output
    token = json.loads(made.output)
    assert token["token"].startswith("aico_") and token["user_id"] == "maya"
    listed = json.loads(run(env, "tokens", "list", "--json").output)["tokens"]
    assert [t["token_id"] for t in listed] == [token["token_id"]]
    assert listed[0]["label"] == "phone" and listed[0]["valid_under_current_key"] is True
    assert token["token"] not in run(env, "tokens", "list").output  # never shown again
    assert token["token"] not in json.dumps(listed)
    revoked = run(env, "tokens", "revoke", token["token_id"])
    assert revoked.exit_code == 0 and "revoked" in revoked.output
    assert json.loads(run(env, "tokens", "list", "--json").output)["tokens"] == []
    assert len(json.loads(run(env, "tokens", "list", "--all", "--json").output)["tokens"]) == 1


def test_tokens_admin_and_errors(env):
    admin = run(env, "tokens", "create", "--admin")
    assert admin.exit_code == 0 and "admin" in admin.output
    assert admin.output.strip().splitlines()[-1].startswith("aico_")
    again = run(env, "tokens", "create", "--admin")
    assert again.exit_code == 1 and "admin token exists" in again.output
    assert run(env, "tokens", "create", "--admin", "--replace").exit_code == 0
    assert run(env, "tokens", "create").exit_code == 1
    missing = run(env, "tokens", "create", "--user", "nobody")
    assert missing.exit_code == 1 and "Error: no user with this user_id" in missing.output
    assert run(env, "tokens", "revoke", "0123456789abcdef").exit_code == 1
    table = run(env, "tokens", "list")
    assert table.exit_code == 0 and "admin" in table.output


def test_tasks_list(env, tmp_path):
    from aico.data.repositories import TaskRepository

    empty = run(env, "tasks", "list", "--json")
    assert json.loads(empty.output) == {"jobs": [], "history": []}
    with DataStore.open(tmp_path / "data", passphrase=PASS, env=env) as store:
        tasks = TaskRepository(store.connection("core"))
        job = tasks.schedule("maintenance", "maintenance", every=300)
        tasks.start("maintenance")
        tasks.fail("maintenance", "StorageFull: the disk is full", next_run_at=1e9)
        tasks.record_run(job, status="failed", started_at=1.0, finished_at=2.5, error="StorageFull")
    listed = json.loads(run(env, "tasks", "list", "--json").output)
    assert listed["jobs"][0]["task_id"] == "maintenance"
    assert listed["jobs"][0]["last_error"] == "StorageFull: the disk is full"
    assert listed["history"][0]["status"] == "failed"
    table = run(env, "tasks", "list")
    assert table.exit_code == 0 and "maintenance" in table.output and "StorageFull" in table.output


def test_serve_help_names_its_options(env):
    result = run(env, "serve", "--help")
    assert result.exit_code == 0
    assert all(option in result.output for option in ("--host", "--port", "--uds"))
