"""``aico health``, ``aico doctor`` and ``aico maintenance`` through click, exit codes exact.

The read verbs run on a data dir made with the fast encoder (they never check the model);
the writing verbs need the configured model, so their test makes its data dir through the
CLI with the real MiniLM (slow).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

sys.path.insert(0, str(Path(__file__).parent))

from ops_support import PASSPHRASE, create, tree_hashes

from aico.cli.main import cli
from aico.security import KdfParams


def cli_env(data: Path, cache: Path, passphrase: str = PASSPHRASE) -> dict[str, str]:
    p = KdfParams.for_tests()
    return {
        "AICO_DATA_DIR": str(data),
        "AICO_PASSPHRASE": passphrase,
        "AICO_CONFIG": "",
        "AICO_SECURITY__USE_KEYRING": "false",
        "AICO_SECURITY__KDF_TIME_COST": str(p.time_cost),
        "AICO_SECURITY__KDF_MEMORY_COST_KIB": str(p.memory_cost_kib),
        "AICO_SECURITY__KDF_PARALLELISM": str(p.parallelism),
        "AICO_MEMORY__SEMANTIC__MODEL_CACHE_DIR": str(cache),
        "COLUMNS": "200",
    }


def run(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env=env)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    create(root)
    return root


@pytest.fixture
def env(data: Path, embedding_cache_dir: Path) -> dict[str, str]:
    return cli_env(data, embedding_cache_dir)


@pytest.mark.parametrize("flags", [["--read-only"], []])
def test_health_writes_nothing_with_or_without_read_only(data, env, flags):
    before = tree_hashes(data)
    result = run(env, *flags, "health", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["read_only"] and report["drift"]["segments"] == report["drift"]["fts_rows"]
    assert tree_hashes(data) == before
    table = run(env, *flags, "health")
    assert table.exit_code == 0 and "status" in table.stdout and "drift" in table.stdout


def test_doctor_exit_codes_follow_the_findings(data, env):
    assert run(env, "--read-only", "doctor").exit_code == 0
    with (data / "memory" / "working" / "data.mdb").open("r+b") as f:
        f.truncate(8192)
    before = tree_hashes(data)
    result = run(env, "--read-only", "doctor", "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["status"] == "problem"
    assert any(f["store"] == "working_memory" for f in report["findings"])
    assert tree_hashes(data) == before
    refused = run(env, "--read-only", "doctor", "--repair")
    assert refused.exit_code == 1 and "read-only" in refused.output


def test_maintenance_dry_run_reports_and_writes_nothing(data, env):
    before = tree_hashes(data)
    result = run(env, "maintenance", "run", "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    jobs = {r["job"]: r for r in json.loads(result.stdout)}
    assert len(jobs) == 7 and all(r["dry_run"] for r in jobs.values())
    assert tree_hashes(data) == before
    listed = run(env, "maintenance", "list")
    assert listed.exit_code == 0 and "archive-conversations" in listed.stdout
    refused = run(env, "--read-only", "maintenance", "run", "optimize")
    assert refused.exit_code == 1 and "--read-only" in refused.output
    unknown = run(env, "maintenance", "run", "nonsense")
    assert unknown.exit_code == 2


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv")
def test_health_and_doctor_on_read_only_media(data, request):
    """As a user who may write nothing there (``setpriv`` to nobody, every dir read-only)."""
    home = Path(tempfile.mkdtemp(prefix="aico-media-"))  # pytest's tmp dirs are 0700
    request.addfinalizer(lambda: shutil.rmtree(home, ignore_errors=True))
    home.chmod(0o755)
    media = home / "media"
    shutil.copytree(data, media)
    for path in [media, *media.rglob("*")]:
        os.chown(path, 65534, 65534)
        path.chmod(0o555 if path.is_dir() else 0o444)
    before = tree_hashes(media)
    env = {
        **cli_env(media, home / "no-cache"),
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "HF_HUB_OFFLINE": "1",
        "ANONYMIZED_TELEMETRY": "False",
    }
    for args in (["health", "--json"], ["doctor", "--json"]):
        proc = subprocess.run(
            [
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                sys.executable,
                "-m",
                "aico.cli",
                "--read-only",
                *args,
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        json.loads(proc.stdout)
    assert tree_hashes(media) == before
    assert {p.name for p in media.rglob("*")} == {p.name for p in data.rglob("*")}


@pytest.mark.slow
def test_repair_and_every_job_through_the_cli(tmp_path, embedding_cache_dir):
    env = cli_env(tmp_path / "real", embedding_cache_dir)
    assert run(env, "init").exit_code == 0
    assert run(env, "users", "create", "Maya", "--id", "maya").exit_code == 0
    say = ("messages", "add", "--user", "maya", "--session", "s1", "--conversation", "c1")
    assert run(env, *say, "My sister visits Gothenburg every June.").exit_code == 0
    assert run(env, *say, "--end-session", "She brings cloudberries.").exit_code == 0
    from ops_support import config

    from aico.ai.memory.stores import open_data_store

    store = open_data_store(tmp_path / "real", passphrase=PASSPHRASE, config=config())
    try:
        store.connection("core").execute(
            "DELETE FROM semantic_fts_data WHERE id = (SELECT max(id) FROM semantic_fts_data)"
        )
    finally:
        store.close()
    assert run(env, "doctor").exit_code == 1
    fixed = run(env, "doctor", "--repair")
    assert fixed.exit_code == 0, fixed.output
    assert "FTS5 index rebuilt" in fixed.stdout
    ran = run(env, "maintenance", "run", "--json")
    assert ran.exit_code == 0, ran.output
    done = {r["job"]: r for r in json.loads(ran.stdout)}
    assert set(done) == {
        "expired-cleanup",
        "file-versions",
        "optimize",
        "index-compact",
        "lmdb-compact",
        "archive-conversations",
        "health-check",
    }
    health = json.loads(run(env, "--read-only", "health", "--json").stdout)
    assert {j["name"] for j in health["maintenance"]} >= set(done)
    found = run(env, "semantic", "search", "--user", "maya", "Gothenburg", "--mode", "bm25")
    assert "Gothenburg" in found.stdout
