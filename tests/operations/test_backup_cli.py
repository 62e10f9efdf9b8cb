"""``aico backup create|list|verify|restore|prune``, ``aico export`` and ``aico import``.

In-process with click's CliRunner on real data dirs (``backup_support``; the fake encoder's
data: the verbs here open no semantic store, except ``import``, which uses the real model
and is marked slow). Exact exit codes and messages; passphrases only from the environment.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

sys.path.insert(0, str(Path(__file__).parent))

from backup_support import ALICE, BOB, PASSPHRASE, fill, flip_byte, new_manager, open_manager

from aico.cli.main import cli
from aico.security import KdfParams


def run(env: dict[str, str], *args: str, **extra: str) -> Result:
    return CliRunner().invoke(cli, list(args), env={**env, **extra})


def ok(env: dict[str, str], *args: str, **extra: str) -> Result:
    result = run(env, *args, **extra)
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture
def env(tmp_path: Path, embedding_cache_dir: Path) -> dict[str, str]:
    m = new_manager(tmp_path / "data")
    fill(m, ALICE, "alice")
    fill(m, BOB, "bob")
    m.close()
    p = KdfParams.for_tests()
    return {
        "AICO_DATA_DIR": str(tmp_path / "data"),
        "AICO_PASSPHRASE": PASSPHRASE,
        "AICO_CONFIG": "",
        "AICO_SECURITY__USE_KEYRING": "false",
        "AICO_SECURITY__KDF_TIME_COST": str(p.time_cost),
        "AICO_SECURITY__KDF_MEMORY_COST_KIB": str(p.memory_cost_kib),
        "AICO_SECURITY__KDF_PARALLELISM": str(p.parallelism),
        "AICO_MEMORY__SEMANTIC__MODEL_CACHE_DIR": str(embedding_cache_dir),
    }


def test_create_list_verify(env, tmp_path):
    created = ok(env, "backup", "create")
    assert created.stdout.startswith("backup ")
    assert ": 6 files, " in created.stdout
    made = json.loads(ok(env, "backup", "create", "--json").stdout)
    assert made["files"][0] == "keys/master.key" and made["archive_bytes"] > 0
    listed = json.loads(ok(env, "backup", "list", "--json").stdout)
    assert listed[0]["id"] == made["info"]["id"]
    assert len(listed) == 2 and listed[0]["created"].endswith("Z")
    text = ok(env, "backup", "list").stdout.splitlines()
    assert text[0].startswith(made["info"]["id"] + "  ")
    checked = json.loads(ok(env, "backup", "verify", made["info"]["id"], "--json").stdout)
    assert checked["files"] == made["files"] and checked["raw_bytes"] == made["raw_bytes"]
    verified = ok(env, "backup", "verify", "latest")
    assert verified.stdout == (
        f"backup {made['info']['id']} is intact: 6 files, "
        f"{made['raw_bytes'] / 1e6:.1f} MB, key {checked['key_id']}\n"
    )
    assert "verifying" in verified.stderr  # the progress bar


def test_verify_errors_exit_1(env, tmp_path):
    ok(env, "backup", "create")
    wrong = run(env, "backup", "verify", "latest", AICO_PASSPHRASE="nope")
    assert (wrong.exit_code, wrong.stderr) == (1, "Error: wrong passphrase\n")
    archive = Path(json.loads(ok(env, "backup", "list", "--json").stdout)[0]["path"])
    flip_byte(archive, archive.stat().st_size // 2)
    damaged = run(env, "backup", "verify", "latest")
    assert damaged.exit_code == 1
    assert damaged.stderr.startswith("Error: ") and "damaged or was altered" in damaged.stderr
    missing = run(env, "backup", "verify", "20200101T000000Z-abcdef")
    assert missing.exit_code == 1 and "there is no backup 20200101T000000Z-abcdef" in missing.stderr
    assert run(env, "backup", "list", "--dir", str(tmp_path / "none")).stdout == "no backups\n"


def test_restore_asks_then_restores(env, tmp_path):
    ok(env, "backup", "create")
    m = open_manager(Path(env["AICO_DATA_DIR"]))
    m.store_message(BOB, "later", "user", "zqlater")
    m.close()
    refused = run(env, "backup", "restore", "latest")
    assert refused.exit_code == 1
    assert refused.stderr == "Error: restoring over the data dir needs --yes (or a terminal)\n"
    done = ok(env, "backup", "restore", "latest", "--yes")
    assert done.stdout.startswith("restored backup ")
    assert "the search index is rebuilt from the databases after the next open" in done.stdout
    side = ok(env, "backup", "restore", "latest", "--to", str(tmp_path / "side"), "--json")
    assert json.loads(side.stdout)["data_dir"] == str(tmp_path / "side")
    m = open_manager(Path(env["AICO_DATA_DIR"]))
    try:
        log = m.store.connection("conversations")
        assert log.fetch_value("SELECT count(*) FROM messages WHERE content = 'zqlater'") == 0
    finally:
        m.close()


def test_read_only_refuses_the_writing_verbs(env):
    for args in (
        ("backup", "create"),
        ("backup", "restore", "latest", "--yes"),
        ("import", __file__),
    ):
        result = run(env, "--read-only", *args)
        assert (result.exit_code, result.stderr) == (
            1,
            "Error: this command writes, and --read-only was given\n",
        ), args


def test_prune_dry_run(env):
    for _ in range(3):
        ok(env, "backup", "create")
    result = ok(env, "backup", "prune", "--dry-run", AICO_STORAGE__BACKUP__BACKUP_MAX_COUNT="1")
    assert result.stdout.startswith("would delete 2 archive(s)")
    assert len(json.loads(ok(env, "backup", "list", "--json").stdout)) == 3
    gone = json.loads(
        ok(env, "backup", "prune", "--json", AICO_STORAGE__BACKUP__BACKUP_MAX_COUNT="1").stdout
    )
    assert len(gone["deleted"]) == 2 and not gone["dry_run"]


def test_unknown_backup_config_key_is_an_error(env):
    result = run(env, "backup", "list", AICO_STORAGE__BACKUP__RETENTION="3")
    assert result.exit_code == 1
    assert "unknown config key 'storage.backup.retention'" in result.output


def test_export_encrypted_and_plaintext(env, tmp_path):
    out = tmp_path / "alice.aicoexp"
    result = ok(env, "export", "--user", ALICE, str(out), AICO_EXPORT_PASSPHRASE="chosen")
    assert result.stdout.startswith(f"exported (encrypted) to {out}: 1 users, 1 facts, ")
    assert b"zqalice" not in out.read_bytes()
    plain = tmp_path / "alice.json"
    result = ok(env, "export", "--user", ALICE, str(plain), "--plaintext")
    assert result.stderr.startswith("Warning: --plaintext writes the user's memory UNENCRYPTED")
    assert json.loads(plain.read_text())["user_id"] == ALICE
    unknown = run(env, "export", "--user", "nobody", str(tmp_path / "x"), "--plaintext")
    assert unknown.exit_code == 1 and "no such user" in unknown.stderr
    no_pass = run(env, "export", "--user", ALICE, str(tmp_path / "y"))
    assert no_pass.exit_code == 1
    assert "no passphrase: set AICO_EXPORT_PASSPHRASE or run on a terminal" in no_pass.stderr


@pytest.mark.slow
def test_import_into_a_new_data_dir_with_the_real_model(env, tmp_path):
    out = tmp_path / "alice.aicoexp"
    ok(env, "export", "--user", ALICE, str(out), AICO_EXPORT_PASSPHRASE="chosen")
    other = {**env, "AICO_DATA_DIR": str(tmp_path / "other")}
    ok(other, "init")
    wrong = run(other, "import", str(out), AICO_EXPORT_PASSPHRASE="not it")
    assert (wrong.exit_code, wrong.stderr) == (1, "Error: wrong passphrase\n")
    result = ok(other, "import", str(out), AICO_EXPORT_PASSPHRASE="chosen")
    assert result.stdout.startswith("imported: 1 users, 1 facts, ")
    assert "re-embedded" in result.stdout  # the fake encoder's vectors, the real model here
    again = run(other, "import", str(out), AICO_EXPORT_PASSPHRASE="chosen")
    assert again.exit_code == 1 and "already holds that user" in again.stderr
    found = json.loads(ok(other, "search", "--user", ALICE, "zqalicec0m1", "--json").stdout)
    assert found
