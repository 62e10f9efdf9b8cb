"""``aico analytics``: exact exit codes and output, in-process with CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from history import write_history

from aico.ai.embeddings import HashingEncoder
from aico.ai.memory import MemoryManager
from aico.cli.main import cli
from aico.config import load_config
from aico.security import KdfParams

PASS = "analytics cli passphrase"


def run(env: dict[str, str], *args: str) -> Result:
    # AICO_UPDATE_SCREENSHOT (a test switch, not a config key) must not reach the config.
    clean: dict[str, str | None] = {**env, "AICO_UPDATE_SCREENSHOT": None}
    return CliRunner().invoke(cli, list(args), env=clean)


def ok(env: dict[str, str], *args: str) -> Result:
    result = run(env, *args)
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, embedding_cache_dir: Path) -> dict[str, str]:
    root = tmp_path_factory.mktemp("analytics-cli")
    p = KdfParams.for_tests()
    env = {
        "AICO_DATA_DIR": str(root / "data"),
        "AICO_PASSPHRASE": PASS,
        "AICO_CONFIG": "",
        "AICO_SECURITY__USE_KEYRING": "false",
        "AICO_SECURITY__KDF_TIME_COST": str(p.time_cost),
        "AICO_SECURITY__KDF_MEMORY_COST_KIB": str(p.memory_cost_kib),
        "AICO_SECURITY__KDF_PARALLELISM": str(p.parallelism),
        # A writable open loads the model: the session's one export of it is shared.
        "AICO_MEMORY__SEMANTIC__MODEL_CACHE_DIR": str(embedding_cache_dir),
        "COLUMNS": "200",
    }
    config = load_config(env=env)
    with MemoryManager.initialize(
        root / "data", PASS, config=config, encoder=HashingEncoder()
    ) as memory:
        write_history(memory, ["ana", "ben"], messages=80, per_session=8)
    # The one writable open of this module (it warms the model); the tests only read.
    exported = json.loads(ok(env, "analytics", "export", "--json").stdout)
    assert exported["added"]["messages"] == 80
    return env


def test_show_sql_and_areas(env: dict[str, str]) -> None:
    rows = json.loads(
        ok(
            env, "--read-only", "analytics", "show", "activity_daily", "--user", "ana", "--json"
        ).stdout
    )
    assert {r["user_id"] for r in rows} == {"ana"}
    assert sum(r["messages"] for r in rows) == 40
    out = ok(env, "--read-only", "analytics", "sql", "SELECT count(*) AS n FROM a.messages").stdout
    assert "80" in out
    areas = json.loads(ok(env, "--read-only", "analytics", "usage", "--json").stdout)
    assert sum(r["conversations"] for r in areas["usage_by_model"]) > 0
    assert "activity_daily" in ok(env, "analytics", "views").stdout


def test_refusals_are_errors_with_exit_1(env: dict[str, str]) -> None:
    result = run(env, "--read-only", "analytics", "sql", "DELETE FROM a.messages")
    assert result.exit_code == 1
    assert result.output == "Error: analytics SQL must be exactly one SELECT statement\n"
    result = run(env, "--read-only", "analytics", "show", "nope")
    assert result.exit_code == 1
    assert result.output == "Error: unknown analytics view; see docs/analytics.md\n"
    result = run(env, "--read-only", "analytics", "export")
    assert result.exit_code == 1
    assert result.output == "Error: this command writes, and --read-only was given\n"


def test_report(env: dict[str, str], tmp_path: Path) -> None:
    out = ok(
        env, "--read-only", "analytics", "report", "--no-export", "--out", str(tmp_path / "r")
    ).stdout
    path = tmp_path / "r" / "analytics-report.html"
    assert out == f"report written to {path}\n"
    page = path.read_text()
    assert page.count("<svg") >= 7
    assert "<script" not in page and "<link" not in page
    assert 'src="http' not in page and "url(http" not in page
    assert (path.stat().st_mode & 0o777) == 0o600
    user = ok(
        env,
        "--read-only",
        "analytics",
        "report",
        "--no-export",
        "--user",
        "ben",
        "--out",
        str(tmp_path / "b"),
    )
    assert "report written" in user.stdout
    assert "user ben" in (tmp_path / "b" / "analytics-report.html").read_text()
