"""A full disk and read-only data dirs: distinct, typed errors, nothing acknowledged lost.

- ``MemoryManager.open(read_only=True)`` reads everything and writes not one byte.
- A data dir the process cannot write opens read-only; opening it writable is ``ReadOnly``.
- ``ulimit -f`` (a file-size limit: writes fail with EFBIG, like a full disk): the failing
  ``store_message`` raises ``StorageFull``, and every message acknowledged before is kept.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from coordinator_support import PASSPHRASE, ROOT, USER, child_env, config, create, open_manager

from aico.ai.embeddings import HashingEncoder
from aico.ai.memory import MemoryManager
from aico.errors import ReadOnly

pytestmark = pytest.mark.slow


def _fill(data_dir: Path) -> dict[str, str]:
    create(data_dir)
    stored = {}
    with open_manager(data_dir) as memory:
        for i in range(6):
            text = f"old note {i} about quinces"
            stored[memory.store_message(USER, "s-old", "user", text)] = text
        memory.end_session("s-old")
        for i in range(3):
            text = f"live note {i} about quinces"
            stored[memory.store_message(USER, "s-live", "user", text)] = text
    return stored


def _snapshot(root: Path) -> dict[str, tuple[str, float]]:
    """Every file's hash and mtime: a read-only open may change neither.

    Except on writable media: lock files (LMDB's reader table, the open-set sidecars) are
    how openers see each other, and a seal is taken down while any opener is in (a writer
    may join) and put back, byte for byte the same, by the last closer.
    """
    found = {}
    for p in sorted(root.rglob("*")):
        if not p.is_file() or p.name.endswith(".lock") or p.name == "lock.mdb":
            continue
        mtime = 0.0 if p.name.endswith(".seal") else p.stat().st_mtime
        found[str(p.relative_to(root))] = (hashlib.sha256(p.read_bytes()).hexdigest(), mtime)
    return found


def _exact_snapshot(root: Path) -> dict[str, tuple[str, float]]:
    """Every file, lock files and seals included: on read-only media nothing may change."""
    return {
        str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _open_read_only(data_dir: Path) -> MemoryManager:
    return MemoryManager.open(
        data_dir,
        passphrase=PASSPHRASE,
        config=config(),
        encoder=HashingEncoder(),
        read_only=True,
    )


def test_read_only_open_reads_and_writes_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    stored = _fill(data_dir)
    before = _snapshot(data_dir)
    with _open_read_only(data_dir) as memory:
        assert {m.content for m in memory.recent(USER, "s-live", 10)} == {
            t for t in stored.values() if t.startswith("live")
        }
        assert memory.search(USER, "quinces", 5, mode="bm25")
        bundle = memory.assemble_context(USER, "s-live", "quinces")
        assert bundle.working
        writes = [
            lambda: memory.store_message(USER, "s-live", "user", "new"),
            lambda: memory.end_session("s-live"),
            lambda: memory.consolidate("s-live"),
            memory.maintenance,
            memory.repair,
            lambda: memory.forget(USER),
        ]
        for write in writes:
            with pytest.raises(ReadOnly):
                write()
    assert _snapshot(data_dir) == before
    # And the data dir opens writable afterwards as if nothing happened.
    with open_manager(data_dir) as memory:
        assert {m.id for m in memory.log.messages_of_user(USER)} == set(stored)


READ_ONLY_CHILD = r"""
import json, sys
from pathlib import Path
from aico.ai.embeddings import HashingEncoder
from aico.ai.memory import MemoryManager
from coordinator_support import PASSPHRASE, USER, config
data = Path(sys.argv[1])
out = {}
try:
    MemoryManager.open(data, passphrase=PASSPHRASE, config=config(), encoder=HashingEncoder())
    out["writable"] = "opened"
except Exception as exc:
    out["writable"] = type(exc).__name__
    out["writable_message"] = str(exc)
with MemoryManager.open(data, passphrase=PASSPHRASE, config=config(),
                        encoder=HashingEncoder(), read_only=True) as memory:
    out["recent"] = sorted(m.content for m in memory.recent(USER, "s-live", 10))
    out["hits"] = len(memory.search(USER, "quinces", 5, mode="hybrid"))
print(json.dumps(out))
"""


@pytest.fixture
def public_tmp() -> Iterator[Path]:
    """A directory another uid can traverse (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="aico-ro-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_read_only_media(public_tmp: Path) -> None:
    """Files and directories without write permission, opened by a user who owns none."""
    data_dir = public_tmp / "data"
    stored = _fill(data_dir)
    for path in [data_dir, *data_dir.rglob("*")]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    before = _exact_snapshot(data_dir)
    preexec = None
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: permissions would not apply")
        prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    else:
        prefix = []
    env = child_env({"HOME": str(public_tmp)})
    proc = subprocess.run(
        [*prefix, sys.executable, "-c", READ_ONLY_CHILD, str(data_dir)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=180,
        preexec_fn=preexec,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["writable"] == "ReadOnly", out
    assert "read-only" in out["writable_message"] or "read_only" in out["writable_message"]
    assert out["recent"] == sorted(t for t in stored.values() if t.startswith("live"))
    assert out["hits"] > 0
    assert _exact_snapshot(data_dir) == before


FULL_CHILD = r"""
import json, sys
from pathlib import Path
import coordinator_support as c
c.limit_file_size(int(sys.argv[2]))
memory = c.open_manager(Path(sys.argv[1]))
acked, error = [], None
try:
    for i in range(100_000):
        acked.append(memory.store_message(c.USER, "s-full", "user", f"filler {i} " + "x" * 2000))
except Exception as exc:
    error = type(exc).__name__
result = {"acked": acked, "error": error}
try:
    result["reads"] = len(memory.recent(c.USER, "s-full", 5))
except Exception as exc:
    result["reads"] = type(exc).__name__
print(json.dumps(result), flush=True)
import os
os._exit(0)
"""


def test_disk_full_is_storage_full_and_keeps_what_was_acknowledged(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    _fill(data_dir)
    biggest = max(p.stat().st_size for p in data_dir.rglob("*") if p.is_file())
    proc = subprocess.run(
        [sys.executable, "-c", FULL_CHILD, str(data_dir), str(biggest + 256 * 1024)],
        capture_output=True,
        text=True,
        env=child_env(),
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["error"] == "StorageFull", result["error"]
    assert result["acked"], "nothing was stored before the limit"
    assert result["reads"] == 5, "reads failed after a full disk"
    with open_manager(data_dir) as memory:
        logged = {m.id for m in memory.log.messages_of_session("s-full")}
        assert set(result["acked"]) <= logged
        memory.store_message(USER, "s-full", "user", "room again")
