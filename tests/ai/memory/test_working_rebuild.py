"""Working memory is a cache of the log: lost, replaced or damaged, it is rebuilt on open.

Each reopen runs in a child process, so a damaged LMDB file that crashed the process (SIGBUS
on a truncated ``data.mdb``) fails the test instead of killing pytest.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from coordinator_support import ROOT, USER, child_env, create, open_manager

pytestmark = pytest.mark.slow

REOPEN = r"""
import json, sys
from pathlib import Path
from coordinator_support import USER, open_manager
with open_manager(Path(sys.argv[1])) as memory:
    recent = [m.content for m in memory.recent(USER, "s-live", 100)]
    quarantined = sorted(p.name for p in (Path(sys.argv[1]) / "memory").iterdir()
                         if ".damaged-" in p.name)
    print(json.dumps({"recent": recent, "restored": memory.last_repair.working_restored,
                      "quarantined": quarantined}))
"""


def _fill(data_dir: Path) -> list[str]:
    create(data_dir)
    texts = [f"live note {i} about the garden" for i in range(12)]
    with open_manager(data_dir) as memory:
        for text in texts:
            memory.store_message(USER, "s-live", "user", text)
    return texts


def _reopen(data_dir: Path) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", REOPEN, str(data_dir)],
        capture_output=True,
        text=True,
        env=child_env(),
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 0, f"rc {proc.returncode}: {proc.stderr[-2000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_deleted_working_memory_is_rebuilt_from_the_log(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    texts = _fill(data_dir)
    shutil.rmtree(data_dir / "memory" / "working")
    result = _reopen(data_dir)
    assert sorted(result["recent"]) == sorted(texts)
    assert result["restored"] == len(texts)
    # Once rebuilt, the next open has nothing to restore.
    assert _reopen(data_dir)["restored"] == 0


@pytest.mark.parametrize("cut", ["page", "mid-page", "tiny"])
def test_truncated_data_mdb_is_quarantined_and_rebuilt(tmp_path: Path, cut: str) -> None:
    data_dir = tmp_path / "data"
    texts = _fill(data_dir)
    mdb = data_dir / "memory" / "working" / "data.mdb"
    size = mdb.stat().st_size
    keep = {"page": (size // 2) // 4096 * 4096, "mid-page": size // 2 + 123, "tiny": 100}[cut]
    with open(mdb, "r+b") as fh:
        fh.truncate(keep)
    result = _reopen(data_dir)
    assert sorted(result["recent"]) == sorted(texts)
    assert result["restored"] == len(texts)
    assert result["quarantined"], "the damaged environment was not moved aside"
