"""Doctor over the fault matrix: every file of a cleanly closed data dir truncated, flipped or
deleted, one at a time. For each cell the diagnosis finds the damage (or the damage is one
that heals by itself: lock files, the wal-index, a missing seal or manifest), and the
repair leaves no problem except a damaged source-of-truth database, which it reports with
the way out (a backup). The cells run in a child, so a process killed by a signal would be
reported, not take pytest down.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from ops_support import ROOT, create

pytestmark = pytest.mark.slow

CHILD = r"""
import json, shutil, sys
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from ops_support import run_doctor
from aico.errors import AicoError

template, work = Path(sys.argv[1]), Path(sys.argv[2])
cells = json.loads(sys.stdin.read())
for cell in cells:
    data = work / "data"
    shutil.rmtree(data, ignore_errors=True)
    shutil.copytree(template, data)
    target = data / cell["file"]
    if cell["how"] == "delete":
        target.unlink()
    elif cell["how"] == "truncate":
        with target.open("r+b") as f:
            f.truncate(target.stat().st_size // 2)
    else:
        raw = bytearray(target.read_bytes())
        raw[len(raw) // 2] ^= 0x55
        target.write_bytes(bytes(raw))
    print("START " + json.dumps(cell), flush=True)
    out = dict(cell)
    try:
        before = run_doctor(data)
        out["found"] = sorted(
            {f.check + ":" + f.store for f in before.findings if f.status != "ok"}
        )
        fixed = run_doctor(data, repair=True)
        out["left"] = sorted(
            f.check + ":" + f.store for f in (fixed.after or fixed.findings)
            if f.status == "problem"
        )
        out["hints"] = [f.repair or "" for f in (fixed.after or fixed.findings)
                        if f.status == "problem"]
    except AicoError as exc:
        out["error"] = type(exc).__name__
    print("CELL " + json.dumps(out), flush=True)
"""

BENIGN_NAMES = ("-shm", ".lock", "lock.mdb", "chroma.state")


def benign(cell: dict[str, str]) -> bool:
    """Damage that heals by itself: lock files, the wal-index, a missing seal (an unclean
    close, checked as one), Chroma's manifest (the structural checks stand in for it)."""
    name = Path(cell["file"]).name
    if name.endswith(BENIGN_NAMES) or cell["file"].startswith("locks/"):
        return True
    return cell["how"] == "delete" and name.endswith(".seal")


def test_doctor_finds_and_repairs_every_cell(tmp_path):
    template = tmp_path / "template"
    create(template)
    files = sorted(
        str(p.relative_to(template))
        for p in template.rglob("*")
        if p.is_file() and p.stat().st_size
    )
    cells = [{"file": f, "how": how} for f in files for how in ("truncate", "flip", "delete")]
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'shared'}{os.pathsep}{Path(__file__).parent}"}
    results: list[dict] = []
    todo = list(cells)
    while todo:
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, str(template), str(work), str(Path(__file__).parent)],
            input=json.dumps(todo),
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=1800,
        )
        started = None
        for line in proc.stdout.splitlines():
            if line.startswith("START "):
                started = json.loads(line[6:])
            elif line.startswith("CELL "):
                results.append(json.loads(line[5:]))
                todo.pop(0)
                started = None
        if proc.returncode != 0:
            assert started is not None, proc.stderr[-3000:]
            results.append({**started, "error": f"signal {-proc.returncode}"})
            todo.pop(0)
    wrong = []
    for cell in results:
        key = f"{cell['file']} {cell['how']}"
        if "error" in cell:
            # A flipped key file cannot be told from a wrong passphrase (AES-GCM).
            if not (cell["file"].startswith("keys/") and cell["error"] == "WrongPassphrase"):
                wrong.append((key, cell["error"]))
            continue
        if not cell["found"] and not benign(cell):
            wrong.append((key, "not found"))
        source = cell["file"].startswith(("db/", "keys/"))
        if cell["left"] and not source:
            wrong.append((key, f"left after repair: {cell['left']}"))
        if cell["left"] and source and not any("backup" in h for h in cell["hints"]):
            wrong.append((key, f"no way out named: {cell['hints']}"))
    assert not wrong, json.dumps(wrong, indent=1)
    assert len(results) == len(cells)
    if os.environ.get("AICO_DOCTOR_REPORT"):  # the whole matrix, for docs/operations.md
        Path(os.environ["AICO_DOCTOR_REPORT"]).write_text(json.dumps(results, indent=1))
    repaired = [c for c in results if c.get("found") and not c.get("left")]
    refused = [c for c in results if c.get("left")]
    derived = [c for c in repaired if c["file"].startswith("memory/")]
    assert len(derived) >= 10 and len(refused) >= 10, (len(derived), len(refused))
