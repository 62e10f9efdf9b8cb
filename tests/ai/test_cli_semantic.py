"""``aico semantic …`` through click's CliRunner, on a store the MemoryManager filled."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from aico.ai.memory import MemoryManager
from aico.cli.main import cli
from aico.config import load_config
from aico.data.repositories import UserService
from aico.security import KdfParams

PASS = "semantic cli passphrase"


@pytest.fixture
def env(tmp_path, embedding_cache_dir):
    p = KdfParams.for_tests()
    env = {
        "AICO_DATA_DIR": str(tmp_path / "data"),
        "AICO_PASSPHRASE": PASS,
        "AICO_CONFIG": "",
        "AICO_SECURITY__USE_KEYRING": "false",
        "AICO_SECURITY__KDF_TIME_COST": str(p.time_cost),
        "AICO_SECURITY__KDF_MEMORY_COST_KIB": str(p.memory_cost_kib),
        "AICO_SECURITY__KDF_PARALLELISM": str(p.parallelism),
        "AICO_MEMORY__SEMANTIC__MODEL_CACHE_DIR": str(embedding_cache_dir),
    }
    config = load_config(env=env)
    with MemoryManager.initialize(tmp_path / "data", PASS, config=config) as m:
        UserService(m.store.connection("core")).create_user("Maya", user_id="maya")
        UserService(m.store.connection("core")).create_user("Bob", user_id="bob")
        m.store_message("maya", "s1", "user", "My sister Ingrid visits Gothenburg every June.")
        m.store_message("maya", "s1", "assistant", "Lovely, the archipelago is nice then.")
        m.end_session("s1")
        m.semantic.process_outbox()  # end_session defers a small batch to the outbox pass
    return env


def run(env, *args):
    return CliRunner().invoke(cli, list(args), env=env)


@pytest.mark.slow
def test_status_search_rebuild(env):
    result = run(env, "semantic", "status", "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["segments"] == 1 and not info["model_mismatch"]
    assert info["index"]["chroma_checked"] is False  # read-only: embedded Chroma not opened
    assert info["index"]["unindexed_count"] == 0 and info["index"]["pending_outbox"] == 0

    result = run(env, "semantic", "verify", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["missing_count"] == 0 and report["chroma_count"] == 1

    result = run(env, "semantic", "search", "--user", "maya", "when does Ingrid visit", "--json")
    assert result.exit_code == 0, result.output
    [hit] = json.loads(result.output)
    assert "Ingrid" in hit["text"] and hit["bm25_rank"] == 1 and hit["dense_rank"] == 1


    result = run(env, "semantic", "rebuild")
    assert result.exit_code == 0 and "rebuilt the dense index: 1 vectors" in result.output
    result = run(env, "semantic", "search", "--user", "bob", "Ingrid")
    assert result.exit_code == 0 and result.output == "no results\n"  # another user's: nothing
    result = run(env, "semantic", "search", "--user", "nobody-here", "Ingrid")
    assert result.exit_code == 1 and result.output == "Error: no user with this user_id\n"


@pytest.mark.slow
def test_a_quick_cli_read_exits_cleanly_while_the_model_loads(env):
    """The model loads on a background thread at open; a command done before it finished
    used to exit through onnxruntime's half-built session: SIGABRT (exit 134)."""
    import os
    import subprocess
    import sys

    for _ in range(3):
        done = subprocess.run(
            [sys.executable, "-m", "aico.cli", "facts", "list", "--user", "maya"],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert (done.returncode, done.stdout) == (0, "no facts\n"), done.stderr[-500:]
        assert "terminate called" not in done.stderr
