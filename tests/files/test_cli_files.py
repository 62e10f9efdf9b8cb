"""``aico files``: in-process with CliRunner on a real data dir (real MiniLM: one open per verb)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from aico.cli.main import cli
from aico.security import KdfParams


def test_index_list_show_changes_related_search(tmp_path: Path, embedding_cache_dir: Path) -> None:
    p = KdfParams.for_tests()
    env = {
        "AICO_DATA_DIR": str(tmp_path / "data"),
        "AICO_PASSPHRASE": "files cli passphrase",
        "AICO_CONFIG": "",
        "AICO_SECURITY__USE_KEYRING": "false",
        "AICO_SECURITY__KDF_TIME_COST": str(p.time_cost),
        "AICO_SECURITY__KDF_MEMORY_COST_KIB": str(p.memory_cost_kib),
        "AICO_SECURITY__KDF_PARALLELISM": str(p.parallelism),
        "AICO_MEMORY__SEMANTIC__MODEL_CACHE_DIR": str(embedding_cache_dir),
        "COLUMNS": "200",
    }
    root = tmp_path / "notes"
    root.mkdir()
    (root / "a.py").write_text("import b\n\ndef f():\n    return b.g()\n")
    (root / "b.py").write_text("def g():\n    return 2\n")
    (root / "plan.md").write_text("# Plan\n\nRepaint the shed in a pale green.\n")

    def run(*args: str) -> str:
        result = CliRunner().invoke(cli, list(args), env=env)
        assert result.exit_code == 0, result.output
        return result.stdout

    run("init")
    run("users", "create", "Maya", "--id", "maya")
    report = json.loads(run("files", "index", str(root), "--user", "maya", "--json"))
    assert report["created"] == 3 and report["chunks_added"] == 3
    listed = json.loads(run("--read-only", "files", "list", "--user", "maya", "--json"))
    assert sorted(f["rel_path"] for f in listed) == ["a.py", "b.py", "plan.md"]
    shown = json.loads(run("--read-only", "files", "show", "a.py", "--user", "maya", "--json"))
    assert [s["content"] for s in shown["snippets"]] == ["def f():"]
    assert [(r["type"], r["reference"]) for r in shown["relationships"]] == [("imports", "b")]
    (root / "plan.md").rename(root / "shed.md")
    assert "1 renamed or moved" in run("files", "index", str(root), "--user", "maya")
    changes = json.loads(run("--read-only", "files", "changes", "--user", "maya", "--json"))
    assert changes[0]["change_type"] == "renamed"
    related = run("--read-only", "files", "related", "b.py", "--user", "maya")
    assert "imports" in related and "in" in related
    hits = json.loads(
        run("--read-only", "files", "search", "paint the shed green", "--user", "maya", "--json")
    )
    assert hits[0]["path"] == str((root / "shed.md").resolve())
    missing = CliRunner().invoke(cli, ["files", "show", "zzz", "--user", "maya"], env=env)
    assert missing.exit_code == 1
    assert missing.output == "Error: no indexed file with this id or path for this user\n"
