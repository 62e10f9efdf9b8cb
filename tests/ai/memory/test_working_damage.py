"""A damaged working-memory environment never kills the process: a typed error, then quarantine.

Every open of a damaged environment runs in a child process, so a signal (SIGBUS from a
truncated ``data.mdb``, SIGSEGV from a flipped page) shows as a negative return code and fails
the test instead of killing pytest. Each case is an independent copy of a real environment
(real LMDB, real AES-GCM values), damaged on disk while closed:

- cleanly closed (sealed): the seal catches every flipped byte, the map check every cut;
- after a SIGKILLed writer (no seal): the map check, the child walk or the audit of every
  record catches it, or the data reads back exactly as written (the byte was not in use).

A case that is refused must also be moved aside by ``quarantine_working`` and a fresh
environment must open in its place.
"""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import lmdb
import pytest

from aico.ai.memory.working import WorkingMemoryStore, quarantine_working
from aico.ai.memory.working._env import translate
from aico.errors import (
    IntegrityError,
    NotFound,
    ReadOnly,
    StorageFull,
    StoreBusy,
    WorkingMemoryCorrupted,
    WorkingMemoryError,
    WrongPassphrase,
)
from aico.security import MasterKey

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]
KEY = bytes(range(32))
PAGE = 4096
SESSIONS = [f"s{i}" for i in range(5)]

# The probe a child runs on each case: open, read everything, write once; on a refusal,
# quarantine and open fresh. The first path is an undamaged copy: what "intact" means.
PROBE = r"""
import hashlib, json, os, sys
from pathlib import Path
from aico.errors import AicoError, WorkingMemoryCorrupted
from aico.ai.memory.working import WorkingMemoryStore
from aico.security import MasterKey

KEY = MasterKey.from_bytes(bytes(range(32)))
SESSIONS = [f"s{i}" for i in range(5)]

def digest(store):
    h = hashlib.sha256()
    for sid in SESSIONS:
        for m in store.range(sid):
            h.update(repr((m.session_id, m.id, m.user_id, m.role, m.content)).encode())
        h.update(repr(store.get_value(sid, "state")).encode())
    return h.hexdigest()

def probe(path):
    try:
        with WorkingMemoryStore(path, KEY, sync=False) as store:
            found = digest(store)
            store.append("u", "s0", "user", "written after the damage")
            store.sweep()
        return {"outcome": "opened", "digest": found}
    except WorkingMemoryCorrupted as exc:
        out = {"outcome": "corrupted", "path": str(exc.path)}
    except AicoError as exc:
        return {"outcome": type(exc).__name__}
    from aico.ai.memory.working import quarantine_working
    moved = quarantine_working(path)
    with WorkingMemoryStore(path, KEY, sync=False) as fresh:
        fresh.append("u", "s0", "user", "fresh")
        out["fresh"] = [m.content for m in fresh.recent("s0")] == ["fresh"]
    out["moved"] = moved.name if moved.is_dir() else ""
    return out

reference = probe(sys.argv[1])
print(json.dumps({"reference": reference}), flush=True)
for path in sys.argv[2:]:
    print(json.dumps({"case": path}), flush=True)  # the last one named died, if any did
    print(json.dumps({"case": path, **probe(path)}), flush=True)
"""

CRASH = r"""
import os, signal, sys
from aico.ai.memory.working import WorkingMemoryStore
from aico.security import MasterKey
store = WorkingMemoryStore(sys.argv[1], MasterKey.from_bytes(bytes(range(32))), sync=False)
ids = [store.append("u", f"s{i % 5}", "assistant",
                    f"late {i} " + "z" * (5000 if i % 13 == 0 else 700)).id for i in range(40)]
store.delete_messages("s3", ids[3::10])
store.put_value("s2", "state", {"late": True})
os.kill(os.getpid(), signal.SIGKILL)
"""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "shared")
    return env


def _python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=ROOT,
        timeout=600,
        check=False,
    )


def _build(path: Path) -> None:
    """A closed, sealed environment: 240 messages (some on overflow pages), values, deletes."""
    with WorkingMemoryStore(path, MasterKey.from_bytes(KEY), sync=False) as store:
        ids = []
        for i in range(240):
            content = f"message {i} " + ("x" * 6000 if i % 40 == 0 else "y" * 900)
            ids.append(store.append("u", SESSIONS[i % 5], "user", content).id)
        for n, sid in enumerate(SESSIONS):
            store.put_value(sid, "state", {"n": n, "pad": "v" * 300})
        store.delete_messages("s1", ids[1::15])  # leaves free pages and a free list behind


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("templates")
    clean = root / "clean" / "working"
    _build(clean)
    assert (clean / "aico.seal").exists()
    crashed = root / "crashed" / "working"
    shutil.copytree(clean, crashed)
    done = _python(CRASH, str(crashed))
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert not (crashed / "aico.seal").exists()
    return {"clean": clean, "crashed": crashed}


class Cases:
    """Copies of a template under ``<root>/<n>/working``, damaged by the caller."""

    def __init__(self, root: Path, template: Path) -> None:
        self.root = root
        self.template = template
        self.paths: list[Path] = []
        self.labels: dict[str, str] = {}

    def _copy(self, name: str) -> Path:
        target = self.root / name / "working"
        shutil.copytree(self.template, target)
        return target

    def add(self, label: str) -> Path:
        path = self._copy(f"{len(self.paths):04d}")
        self.paths.append(path)
        self.labels[str(path)] = label
        return path

    def run(self, workers: int = 2) -> Iterator[tuple[str, dict[str, object]]]:
        """Probe every case (in ``workers`` children); yield ``(label, result)``."""
        chunks = [self.paths[i::workers] for i in range(workers)]
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", PROBE, str(self._copy(f"reference-{n}")), *map(str, c)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=_env(),
                cwd=ROOT,
            )
            for n, c in enumerate(chunks)
            if c
        ]
        for proc in procs:
            out, err = proc.communicate(timeout=900)
            lines = [json.loads(line) for line in out.splitlines() if line.strip()]
            last = lines[-1].get("case") if lines else None
            label = self.labels.get(str(last))
            assert proc.returncode == 0, f"rc {proc.returncode} in {label}: {err[-3000:]}"
            reference = lines[0]["reference"]
            assert reference["outcome"] == "opened", reference
            for line in lines[1:]:
                if "outcome" in line:
                    line["intact"] = line.get("digest") == reference["digest"]
                    yield self.labels[str(line["case"])], line


def _refused(result: dict[str, object], path: str) -> bool:
    """A typed refusal whose quarantine worked and after which a fresh environment opened."""
    return (
        result["outcome"] == "corrupted"
        and result["path"] == os.path.realpath(path)
        and result["fresh"] is True
        and str(result["moved"]).startswith("working.damaged-")
    )


def _flip(path: Path, offset: int, mask: int) -> None:
    with open(path / "data.mdb", "r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)[0]
        fh.seek(offset)
        fh.write(bytes([byte ^ mask]))


def _pages(data: bytes) -> dict[str, list[int]]:
    """Page numbers by type, read from LMDB 0.9 page headers (mp_flags at 10, mp_pages at 12)."""
    kinds: dict[str, list[int]] = {"branch": [], "leaf": [], "overflow": []}
    pgno = 2
    while pgno * PAGE < len(data):
        flags = struct.unpack_from("<H", data, pgno * PAGE + 10)[0]
        if flags & 0x04:
            kinds["overflow"].append(pgno)
            pgno += max(1, struct.unpack_from("<I", data, pgno * PAGE + 12)[0])
            continue
        if flags & 0x01:
            kinds["branch"].append(pgno)
        elif flags & 0x02:
            kinds["leaf"].append(pgno)
        pgno += 1
    return kinds


def _flip_offsets(
    template: Path, *, meta: list[int], per_page: int, pages: dict[str, int], seed: int
) -> list[tuple[str, int]]:
    """``(label, offset)`` of bytes to flip: chosen meta bytes, then header and body bytes of
    branch, leaf and overflow pages spread over the file."""
    rng = random.Random(seed)
    data = (template / "data.mdb").read_bytes()
    found = [(f"meta{m} +{o}", m * PAGE + o) for m in (0, 1) for o in meta]
    for kind, pgnos in _pages(data).items():
        want = min(pages[kind], len(pgnos))
        assert want, f"the template has no {kind} page"
        for pgno in [pgnos[round(i * (len(pgnos) - 1) / max(1, want - 1))] for i in range(want)]:
            header = rng.sample(range(16), min(per_page // 2, 16))
            body = rng.sample(range(16, PAGE), per_page - len(header))
            found += [(f"{kind} page {pgno} +{o}", pgno * PAGE + o) for o in header + body]
    return found


# -- truncated, deleted ----------------------------------------------------------------


@pytest.mark.parametrize("variant", ["clean", "crashed"])
@pytest.mark.parametrize("cut", ["page", "mid-page", "tiny", "one-page-short", "one-byte-short"])
def test_truncated_data_mdb_is_refused_never_a_signal(
    tmp_path: Path, templates: dict[str, Path], variant: str, cut: str
) -> None:
    cases = Cases(tmp_path, templates[variant])
    path = cases.add(cut)
    size = (path / "data.mdb").stat().st_size
    keep = {
        "page": size // 2 // PAGE * PAGE,
        "mid-page": size // 2 + 123,
        "tiny": 100,
        "one-page-short": size - PAGE,
        "one-byte-short": size - 1,
    }[cut]
    assert 0 < keep < size
    os.truncate(path / "data.mdb", keep)
    [(_, result)] = list(cases.run(workers=1))
    assert _refused(result, str(path)), result


@pytest.mark.parametrize("variant", ["clean", "crashed"])
def test_deleted_files(tmp_path: Path, templates: dict[str, Path], variant: str) -> None:
    cases = Cases(tmp_path, templates[variant])
    (cases.add("lock.mdb deleted") / "lock.mdb").unlink()
    (cases.add("data.mdb deleted") / "data.mdb").unlink()
    both = cases.add("both deleted")
    (both / "data.mdb").unlink()
    (both / "lock.mdb").unlink()
    results = dict(cases.run(workers=1))
    # LMDB's lock file is rebuilt by the next opener: nothing of the data is in it.
    assert results["lock.mdb deleted"]["intact"] is True, results
    # Without data.mdb a lock file (or a seal) says there was an environment here.
    assert _refused(results["data.mdb deleted"], str(cases.paths[1])), results
    if variant == "clean":
        assert _refused(results["both deleted"], str(both)), results  # the seal remembers
    else:
        # Nothing is left to tell a deleted environment from a new one: it opens empty, and
        # the coordinator refills it from the log (documented in docs/working-memory.md).
        assert results["both deleted"]["outcome"] == "opened", results


# -- flipped bytes ---------------------------------------------------------------------


def test_every_flip_of_a_cleanly_closed_environment_is_caught(
    tmp_path: Path, templates: dict[str, Path]
) -> None:
    cases = Cases(tmp_path, templates["clean"])
    offsets = _flip_offsets(
        templates["clean"],
        meta=[*range(0, 152, 2), 151, 200, 4000],
        per_page=12,
        pages={"branch": 3, "leaf": 8, "overflow": 3},
        seed=1,
    )
    for n, (label, offset) in enumerate(offsets):
        _flip(cases.add(label), offset, 0xFF if n % 2 else 1 << (n % 8))
    results = list(cases.run())
    assert len(results) == len(offsets)
    missed = [(label, r) for label, r in results if not _refused(r, str(r["case"]))]
    assert not missed, missed[:10]


def test_flips_after_a_crash_are_caught_or_harmless(
    tmp_path: Path, templates: dict[str, Path]
) -> None:
    meta_fields = [0, 10, 16, 19, 20, 24, 32, 40, 44, 46, 48, 64, 72, 80, 88, 92, 94, 96]
    meta_fields += [112, 128, 136, 137, 144, 145, 151, 200]
    cases = Cases(tmp_path, templates["crashed"])
    offsets = _flip_offsets(
        templates["crashed"],
        meta=meta_fields,
        per_page=8,
        pages={"branch": 2, "leaf": 5, "overflow": 2},
        seed=2,
    )
    for n, (label, offset) in enumerate(offsets):
        _flip(cases.add(label), offset, 0xFF if n % 2 else 1 << (n % 8))
    results = list(cases.run())
    assert len(results) == len(offsets)
    wrong = [
        (label, r)
        for label, r in results
        if not (_refused(r, str(r["case"])) or (r["outcome"] == "opened" and r["intact"]))
    ]
    assert not wrong, wrong[:10]
    refused = {label for label, r in results if r["outcome"] == "corrupted"}
    # What LMDB trusts most is never "harmless": a wrong txnid would pick the older snapshot,
    # a wrong last page or root (of the meta in use) would read outside the map.
    head = (templates["crashed"] / "data.mdb").read_bytes()[: 2 * PAGE]
    newer = int(struct.unpack_from("<Q", head, PAGE + 144) > struct.unpack_from("<Q", head, 144))
    must = [(m, o) for m in (0, 1) for o in (0, 16, 20, 40, 144)] + [(newer, 128), (newer, 136)]
    assert not [(m, o) for m, o in must if f"meta{m} +{o}" not in refused]
    print(f"{len(refused)} of {len(results)} flips refused, the rest read back intact")


def test_damage_seen_while_open_is_never_sealed_in(
    tmp_path: Path, templates: dict[str, Path]
) -> None:
    path = Cases(tmp_path, templates["clean"]).add("flipped while open")
    env = lmdb.open(str(path), readonly=True, lock=False, max_dbs=8)  # undamaged: safe here
    with env.begin(db=env.open_db(b"messages", create=False)) as txn:
        victim = list(txn.cursor())[7][1]
    env.close()
    master = MasterKey.from_bytes(KEY)
    with WorkingMemoryStore(path, master, sync=False) as store:
        assert not (path / "aico.seal").exists()
        data = (path / "data.mdb").read_bytes()
        with open(path / "data.mdb", "r+b") as fh:  # in place: LMDB has the file mapped
            start = data.find(victim)
            assert start > 0
            while start >= 0:
                fh.seek(start + len(victim) // 2)
                fh.write(bytes([data[start + len(victim) // 2] ^ 0x10]))
                start = data.find(victim, start + 1)
        with pytest.raises(IntegrityError):
            for sid in SESSIONS:
                store.range(sid)
    assert not (path / "aico.seal").exists(), "a damaged environment was sealed"
    # The next opener finds no seal, walks the file and opens every record.
    with pytest.raises(WorkingMemoryCorrupted):
        WorkingMemoryStore(path, master)


# -- seal, quarantine, read-only, disk full ----------------------------------------------


HOLD = r"""
import sys
from aico.ai.memory.working import WorkingMemoryStore
from aico.security import MasterKey
store = WorkingMemoryStore(sys.argv[1], MasterKey.from_bytes(bytes(range(32))))
print("open", flush=True)
sys.stdin.read()
store.close()
"""


def test_seal_lifecycle_and_another_key(tmp_path: Path) -> None:
    path = tmp_path / "working"
    master = MasterKey.from_bytes(KEY)
    with WorkingMemoryStore(path, master) as store:
        store.append("u", "s0", "user", "hello")
        assert not (path / "aico.seal").exists()
        with WorkingMemoryStore(path, master) as second:  # same process: one opener
            assert second.recent("s0")[0].content == "hello"
        assert not (path / "aico.seal").exists()
    seal = json.loads((path / "aico.seal").read_text())
    assert seal["alg"] == "HMAC-SHA256" and seal["size"] == (path / "data.mdb").stat().st_size
    assert "hello" not in (path / "aico.seal").read_text()
    # Another key is not damage: WrongPassphrase, and the seal stays for the right key.
    with pytest.raises(WrongPassphrase):
        WorkingMemoryStore(path, MasterKey.generate())
    assert (path / "aico.seal").exists()
    with WorkingMemoryStore(path, master) as store:
        assert store.recent("s0")[0].content == "hello"


def _hold(path: Path) -> subprocess.Popen[str]:
    """A child process with a store open on ``path`` until its stdin closes."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=_env(), cwd=ROOT,
    )  # fmt: skip
    assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
    return holder


def test_only_the_last_closer_of_all_processes_seals(tmp_path: Path) -> None:
    path = tmp_path / "working"
    master = MasterKey.from_bytes(KEY)
    WorkingMemoryStore(path, master).close()
    holder = _hold(path)  # the first opener: it verified and removed the seal
    try:
        assert not (path / "aico.seal").exists()
        with WorkingMemoryStore(path, master) as store:
            store.append("u", "s0", "user", "from the second process")
        assert not (path / "aico.seal").exists(), "sealed while another process had it open"
    finally:
        assert holder.communicate("", timeout=60)[1] is None and holder.returncode == 0
    assert (path / "aico.seal").exists()
    with WorkingMemoryStore(path, master) as store:  # the seal covers the second's append
        assert store.recent("s0")[0].content == "from the second process"


def test_a_forked_child_keeps_no_open_lock(tmp_path: Path) -> None:
    path = tmp_path / "working"
    master = MasterKey.from_bytes(KEY)
    store = WorkingMemoryStore(path, master)
    store.append("u", "s0", "user", "before the fork")
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child only waits
        time.sleep(8)
        os._exit(0)
    try:
        store.close()
        assert (path / "aico.seal").exists()
        # Had the child kept its copy of the lock descriptor, this open would wait for it.
        started = time.monotonic()
        done = _python(HOLD.replace("sys.stdin.read()", ""), str(path))
        assert done.returncode == 0, done.stderr[-2000:]
        assert time.monotonic() - started < 6
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def test_quarantine_moves_the_directory_aside(tmp_path: Path, templates: dict[str, Path]) -> None:
    path = Cases(tmp_path, templates["clean"]).add("quarantined")
    before = sorted(p.name for p in path.iterdir())
    with (
        WorkingMemoryStore(path, MasterKey.from_bytes(KEY)),
        pytest.raises(WorkingMemoryError, match="open in this process"),
    ):
        quarantine_working(path)
    holder = _hold(path)
    try:
        with pytest.raises(StoreBusy):
            quarantine_working(path)
    finally:
        holder.communicate("", timeout=60)
    moved = quarantine_working(path)
    assert moved.parent == path.parent and moved.name.startswith("working.damaged-")
    assert not path.exists()
    assert {p.name for p in moved.iterdir()} >= set(before)
    WorkingMemoryStore(path, MasterKey.from_bytes(KEY)).close()  # a fresh one in its place
    again = quarantine_working(path)
    assert again != moved and again.name.startswith("working.damaged-")
    with pytest.raises(NotFound):
        quarantine_working(path)


def test_in_use_lmdb_errors_are_typed() -> None:
    corrupt = translate(lmdb.CorruptedError("mdb_get: MDB_CORRUPTED"), "/x/working")
    assert isinstance(corrupt, WorkingMemoryCorrupted) and corrupt.path == Path("/x/working")
    assert isinstance(translate(lmdb.PageNotFoundError("x"), "/x"), WorkingMemoryCorrupted)
    assert isinstance(translate(lmdb.DiskError("mdb_txn_commit: No space"), "/x"), StorageFull)
    for code in (errno.EFBIG, errno.EDQUOT, errno.ENOSPC):
        error = translate(lmdb.Error(f"mdb_txn_commit: {os.strerror(code)}"), "/x")
        assert isinstance(error, StorageFull), code
    assert isinstance(translate(OSError(errno.ENOSPC, "full"), "/x"), StorageFull)
    assert isinstance(translate(lmdb.ReadonlyError("mdb_env_open: denied"), "/x"), ReadOnly)
    erofs = lmdb.Error(f"/x: {os.strerror(errno.EROFS)}")
    assert isinstance(translate(erofs, "/x"), ReadOnly)


DISK_FULL = r"""
import json, resource, signal, sys
from aico.errors import StorageFull
from aico.ai.memory.working import WorkingMemoryStore
from aico.security import MasterKey
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
limit = int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
store = WorkingMemoryStore(sys.argv[1], MasterKey.from_bytes(bytes(range(32))))
written = 0
try:
    for i in range(100000):
        store.append("u", "s0", "user", f"{i} " + "f" * 3000)
        written += 1
    print(json.dumps({"outcome": "never full"}))
except StorageFull as exc:
    readable = len(store.recent("s0", 100000))
    print(json.dumps({"outcome": "StorageFull", "written": written, "readable": readable,
                      "message": str(exc)}))
store.close()
"""


def test_disk_full_is_storage_full(tmp_path: Path) -> None:
    path = tmp_path / "working"
    done = _python(DISK_FULL, str(path), str(2 * 1024 * 1024))
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["outcome"] == "StorageFull", result
    assert result["readable"] == result["written"] > 0
    assert "File too large" in result["message"] and "ffff" not in result["message"]
    # Nothing acknowledged was lost, and the environment opens cleanly afterwards.
    with WorkingMemoryStore(path, MasterKey.from_bytes(KEY)) as store:
        assert len(store.recent("s0", 100000)) == result["written"]


READ_ONLY = r"""
import json, sys
from aico.errors import NotFound, ReadOnly
from aico.ai.memory.working import WorkingMemoryStore
from aico.security import MasterKey
key = MasterKey.from_bytes(bytes(range(32)))
out = {}
try:
    WorkingMemoryStore(sys.argv[1], key)
except ReadOnly:
    out["writable_open"] = "ReadOnly"
with WorkingMemoryStore(sys.argv[1], key, read_only=True) as store:
    out["messages"] = sum(len(store.range(f"s{i}")) for i in range(5))
    out["value"] = store.get_value("s0", "state")
    out["stats_read_only"] = store.stats()["read_only"]
    for name, write in [("append", lambda: store.append("u", "s0", "user", "no")),
                        ("put_value", lambda: store.put_value("s0", "k", 1)),
                        ("sweep", lambda: store.sweep()),
                        ("delete_session", lambda: store.delete_session("s0"))]:
        try:
            write()
        except ReadOnly:
            out[name] = "ReadOnly"
try:
    WorkingMemoryStore(sys.argv[2], key, read_only=True)
except NotFound:
    out["missing"] = "NotFound"
print(json.dumps(out))
"""


def _snapshot(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv"
)
@pytest.mark.parametrize("variant", ["clean", "crashed"])
def test_read_only_open_of_an_unwritable_copy(templates: dict[str, Path], variant: str) -> None:
    # Outside pytest's private temp root, which uid 65534 cannot enter.
    top = Path(tempfile.mkdtemp(prefix="aico-ro-", dir="/tmp"))
    try:
        os.chmod(top, 0o755)
        path = top / "memory" / "working"
        shutil.copytree(templates[variant], path)
        for file in path.iterdir():
            os.chmod(file, 0o444)
        os.chmod(path, 0o555)
        os.chmod(path.parent, 0o555)
        before = _snapshot(path)
        done = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
             sys.executable, "-c", READ_ONLY, str(path), str(top / "nowhere")],
            capture_output=True, text=True, env=_env(), cwd="/", timeout=300, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        out = json.loads(done.stdout)
        assert out["writable_open"] == "ReadOnly"
        assert out["messages"] > 200 and out["value"]["n"] == 0 and out["stats_read_only"]
        assert {out[n] for n in ("append", "put_value", "sweep", "delete_session")} == {"ReadOnly"}
        assert out["missing"] == "NotFound"
        assert _snapshot(path) == before, "a read-only open changed a file"
        assert stat.S_IMODE(path.stat().st_mode) == 0o555
    finally:
        os.chmod(top / "memory", 0o755)
        if (top / "memory" / "working").exists():
            os.chmod(top / "memory" / "working", 0o755)
        shutil.rmtree(top)


def test_read_only_store_writes_nothing_on_a_writable_dir(
    tmp_path: Path, templates: dict[str, Path]
) -> None:
    path = Cases(tmp_path, templates["clean"]).add("read-only, writable dir")
    (path / "lock.mdb").unlink()
    before = _snapshot(path)
    with WorkingMemoryStore(path, MasterKey.from_bytes(KEY), read_only=True) as store:
        assert store.read_only and len(store.range("s0")) > 40
        with pytest.raises(ReadOnly):
            store.append("u", "s0", "user", "no")
        with pytest.raises(ReadOnly):  # the process's environment is read-only now
            WorkingMemoryStore(path, MasterKey.from_bytes(KEY))
    assert _snapshot(path) == before
