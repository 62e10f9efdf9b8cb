"""A damaged or missing Chroma index never takes the semantic store down, and heals.

Every case damages a copy of one closed store (13 corpus segments and 1050 more of alice,
past chromadb's HNSW sync threshold of 1000, so the HNSW files really hold elements): the
whole directory deleted; ``chroma.sqlite3`` deleted, truncated or flipped; each HNSW file
(``header.bin``, ``data_level0.bin``, ``length.bin``, ``link_lists.bin``) deleted,
truncated or flipped. The store then runs in a child process, because on the old code some
of these killed the process (SIGSEGV for a flipped ``data_level0.bin`` or a truncated
``header.bin``, SIGKILL for a truncated or flipped ``link_lists.bin``): its return code must
be 0. The child reports, and the parent asserts, that the store opened, the index was found
damaged, search gave the same top hits as the healthy index did (the exact scan), new
segments were stored and found, a forget left none of the user's ids, user tag or vectors
in any Chroma file, and after the rebuild the index was ``ok`` and Chroma served again.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from semantic_support import T0, corpus_segments, digests, open_core, ranked_ids

from aico.ai.embeddings import HashingEncoder
from aico.ai.memory.semantic import IndexHealth, Segment, SemanticConfig, SemanticMemoryStore
from aico.ai.memory.semantic._hnsw_check import HNSW_FILES
from aico.errors import ReadOnly, SemanticMemoryError
from aico.security import MasterKey

pytestmark = pytest.mark.slow

BULK = 1050
QUERIES = ("golden retriever swimming", "half marathon", "wedding in Lisbon", "mushroom risotto")
TOP = 1  # the hit Chroma and the exact scan rank alike (further down, equal scores tie)
MODES = ("hybrid", "dense")
CASES = [
    "dir:delete",
    *(f"chroma.sqlite3:{kind}" for kind in ("delete", "truncate", "flip")),
    *(f"{name}:{kind}" for name in HNSW_FILES for kind in ("delete", "truncate", "flip")),
]
NEW_TEXT = "zebra crossing near the harbour lighthouse"


@dataclass(frozen=True)
class Template:
    root: Path
    key_hex: str
    #: The exact scan's top 5 of the healthy store (a read-only store always scans).
    baseline: dict[str, dict[str, list[str]]]


Ranked = dict[str, dict[str, list[str]]]


def _searches(store: SemanticMemoryStore) -> Ranked:
    return {q: {m: ranked_ids(store, "alice", q, k=5, mode=m) for m in MODES} for q in QUERIES}


def _top(ranked: Ranked) -> Ranked:
    return {q: {m: ids[:TOP] for m, ids in by_mode.items()} for q, by_mode in ranked.items()}


def _bulk_text(rng: random.Random, vocabulary: list[str]) -> str:
    return " ".join(rng.choice(vocabulary) for _ in range(10))


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    """One closed store, cleanly closed, and the top hits Chroma gave while it was healthy."""
    root = tmp_path_factory.mktemp("damage-template")
    master = MasterKey.generate()
    conn = open_core(root / "db" / "aico.db", master)
    store = SemanticMemoryStore.open(conn, master, HashingEncoder(), chroma_path=root / "chroma")
    conn.execute("INSERT INTO users (user_id, display_name) VALUES ('carol', 'carol')")
    store.add_segments(corpus_segments())
    rng = random.Random(7)
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocabulary = [
        "".join(rng.choice(letters) for _ in range(rng.randint(4, 9))) for _ in range(3000)
    ]
    bulk = [
        Segment(
            user_id="alice",
            text=_bulk_text(rng, vocabulary),
            start_ts=T0 + i,
            segment_id=f"bulk-{i:04d}",
        )
        for i in range(BULK)
    ]
    store.add_segments(bulk)
    assert store.wait_ready(60) and store._index_if_ready() is not None
    served = _searches(store)  # by Chroma
    reader = SemanticMemoryStore.open(
        conn, master, HashingEncoder(), chroma_path=root / "chroma", read_only=True
    )
    baseline = _searches(reader)  # by the exact scan
    reader.close()
    assert _top(served) == _top(baseline), (served, baseline)
    store.close()
    conn.close()
    counts = [
        int.from_bytes((p / "header.bin").read_bytes()[20:28], "little")
        for p in (root / "chroma").iterdir()
        if p.is_dir()
    ]
    assert max(counts) >= 1000, counts  # the HNSW files hold the elements
    return Template(root, master.expose_bytes().hex(), baseline)


def _damage(chroma: Path, case: str) -> None:
    target, kind = case.split(":")
    if target == "dir":
        shutil.rmtree(chroma)
        return
    files = [chroma / target] if target == "chroma.sqlite3" else sorted(chroma.glob(f"*/{target}"))
    assert files and all(f.is_file() for f in files), case
    for f in files:
        if kind == "delete":
            f.unlink()
        elif kind == "truncate":
            with f.open("r+b") as fh:
                fh.truncate(f.stat().st_size // 2)
        else:
            data = bytearray(f.read_bytes())
            for i in range(0, len(data), max(1, len(data) // 64)):
                data[i] ^= 0xFF
            f.write_bytes(bytes(data))


def _copy(template: Template, tmp_path: Path, case: str, *, manifest: bool = True) -> Path:
    root = tmp_path / "case"
    shutil.copytree(template.root, root)
    if not manifest:  # as after a crash: no record of a clean close
        (root / "chroma.state").unlink()
    _damage(root / "chroma", case)
    return root


def _run_child(function: str, root: Path, key_hex: str, *args: str) -> dict[str, Any]:
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import test_semantic_damage as t; "
        f"t.{function}(*sys.argv[2:])"
    )
    env = dict(os.environ, ANONYMIZED_TELEMETRY="False", HF_HUB_OFFLINE="1")
    proc = subprocess.run(
        [sys.executable, "-c", code, str(Path(__file__).parent), str(root), key_hex, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode >= 0, f"the child died of signal {-proc.returncode}"
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, proc.stderr[-3000:]
    result: dict[str, Any] = json.loads(lines[-1][len("RESULT ") :])
    return result


# -- children (run in a fresh interpreter) ------------------------------------------------


def _open(root: Path, key_hex: str, **kwargs: Any) -> tuple[Any, SemanticMemoryStore]:
    master = MasterKey(bytes.fromhex(key_hex))
    conn = open_core(root / "db" / "aico.db", master)
    store = SemanticMemoryStore.open(
        conn, master, HashingEncoder(), chroma_path=root / "chroma", **kwargs
    )
    return conn, store


def _chroma_bytes(root: Path) -> bytes:
    """Every file Chroma (or a discarded copy of its directory) left beside the database."""
    files = sorted(p for d in root.glob("chroma*") for p in ([d] if d.is_file() else d.rglob("*")))
    return b"".join(p.read_bytes() for p in files if p.is_file())


def _contains_vector(data: bytes, vector: np.ndarray, tol: float = 1e-5) -> bool:
    v = np.asarray(vector, dtype=np.float32).ravel()
    for shift in range(4):
        usable = (len(data) - shift) // 4 * 4
        if usable < 4 * len(v):
            continue
        floats = np.frombuffer(data[shift : shift + usable], dtype="<f4")
        with np.errstate(invalid="ignore"):
            starts = np.flatnonzero(np.abs(floats[: len(floats) - len(v) + 1] - v[0]) <= tol)
        for start in starts[:10_000]:
            with np.errstate(invalid="ignore", over="ignore"):
                if np.all(np.abs(floats[start : start + len(v)] - v) <= tol):
                    return True
    return False


def _traces(conn: Any, store: SemanticMemoryStore, user: str) -> tuple[list[bytes], list[Any]]:
    """What Chroma holds of a user: the opaque ids, the user tag, the rotated vectors."""
    rows = conn.fetch_all(
        "SELECT chroma_id, vector FROM semantic_segments WHERE user_id = ? AND vector IS NOT NULL",
        (user,),
    )
    ids = [store._keys.user_tag(user).encode()] + [str(r["chroma_id"]).encode() for r in rows]
    vectors = []
    for row in rows:
        rotated = store._rotation.rotate(np.frombuffer(row["vector"], dtype="<f4")[None, :])[0]
        vectors.append(rotated / np.linalg.norm(rotated))
    return ids, vectors


def _wait_ok(store: SemanticMemoryStore, seconds: float = 120.0) -> bool:
    deadline = time.monotonic() + seconds
    while store.index_state != "ok" and time.monotonic() < deadline:
        time.sleep(0.05)
    return store.index_state == "ok"


def degrade_child(root_arg: str, key_hex: str) -> None:
    """Open the damaged store; search, write and forget while degraded; then heal."""
    root = Path(root_arg)
    conn, store = _open(root, key_hex)
    out: dict[str, Any] = {}
    assert store.wait_ready(120)
    health = store.index_health()
    out["loaded"] = {"state": health.state, "serving": health.serving, "reason": health.reason}
    # A write first, while nothing has started a rebuild yet.
    new = Segment(user_id="carol", text=NEW_TEXT, start_ts=T0, segment_id="new-1")
    store.add_segments([new], index=False)
    outbox = store.process_outbox()
    out["outbox"] = {
        "indexed": outbox.indexed,
        "embedded": outbox.embedded,
        "remaining": outbox.remaining,
    }
    out["new"] = {m: ranked_ids(store, "carol", NEW_TEXT, k=3, mode=m)[:1] for m in MODES}
    out["searches"] = _searches(store)
    # Forget bob while the index is degraded (or being rebuilt in the background).
    ids, vectors = _traces(conn, store, "bob")
    out["bob_traces"] = len(ids)
    store.delete_user("bob")
    store.purge_index()
    data = _chroma_bytes(root)
    out["ids_left"] = sum(i in data for i in ids)
    out["vectors_left"] = sum(_contains_vector(data, v) for v in vectors)
    out["aside_left"] = sorted(p.name for p in root.glob("chroma.damaged-*"))
    out["healed"] = _wait_ok(store)
    final = store.index_health()
    out["final"] = {"state": final.state, "serving": final.serving, "pending": final.pending_outbox}
    out["verify_ok"] = store.verify_index().ok
    out["searches_after"] = _searches(store)
    out["new_after"] = ranked_ids(store, "carol", NEW_TEXT, k=3, mode="dense")[:1]
    out["served_by_chroma"] = store._index_if_ready() is not None
    store.close()
    conn.close()
    print("RESULT " + json.dumps(out), flush=True)


def crash_child(root_arg: str, key_hex: str) -> None:
    """Open a damaged store that was not closed cleanly; search; rebuild explicitly."""
    root = Path(root_arg)
    conn, store = _open(root, key_hex)
    out: dict[str, Any] = {}
    assert store.wait_ready(120)
    out["state"] = store.index_state
    out["searches"] = _searches(store)
    out["rebuilt"] = store.rebuild()
    out["final"] = store.index_state
    out["served_by_chroma"] = store._index_if_ready() is not None
    out["searches_after"] = _searches(store)
    out["verify_ok"] = store.verify_index().ok
    store.close()
    conn.close()
    print("RESULT " + json.dumps(out), flush=True)


def background_child(root_arg: str, key_hex: str) -> None:
    """One search on a damaged store, then nothing but waiting: the store heals itself."""
    root = Path(root_arg)
    conn, store = _open(root, key_hex)
    out: dict[str, Any] = {}
    out["first"] = ranked_ids(store, "alice", QUERIES[0], k=5, mode="dense")
    assert store.wait_ready(120)
    out["loaded"] = store.index_state
    out["second"] = ranked_ids(store, "alice", QUERIES[0], k=5, mode="dense")  # starts healing
    out["healed"] = _wait_ok(store)
    out["served_by_chroma"] = store._index_if_ready() is not None
    out["third"] = ranked_ids(store, "alice", QUERIES[0], k=5, mode="dense")
    out["verify_ok"] = store.verify_index().ok
    store.close()
    conn.close()
    out["state_file"] = json.loads((root / "chroma.state").read_text())["state"]
    out["aside_left"] = sorted(p.name for p in root.glob("chroma.damaged-*"))
    print("RESULT " + json.dumps(out), flush=True)


# -- the matrix ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_damaged_index_degrades_then_heals(template: Template, tmp_path: Path, case: str) -> None:
    root = _copy(template, tmp_path, case)
    r = _run_child("degrade_child", root, template.key_hex)
    assert r["loaded"]["state"] == "damaged" and not r["loaded"]["serving"], r["loaded"]
    assert r["outbox"]["indexed"] == 0 and r["outbox"]["remaining"] >= 1  # left queued
    assert r["new"] == {"hybrid": ["new-1"], "dense": ["new-1"]}  # stored and found
    assert r["searches"] == template.baseline  # the exact scan: the same top hits
    assert r["bob_traces"] >= 2 and r["ids_left"] == 0 and r["vectors_left"] == 0
    assert r["aside_left"] == []  # no copy of the damaged directory is kept
    assert r["healed"] and r["final"] == {"state": "ok", "serving": True, "pending": 0}
    assert r["verify_ok"] and r["served_by_chroma"]
    assert _top(r["searches_after"]) == _top(template.baseline) and r["new_after"] == ["new-1"]


@pytest.mark.parametrize("case", [c for c in CASES if not c.startswith("dir")])
def test_damage_after_a_crash_never_kills_the_process(
    template: Template, tmp_path: Path, case: str
) -> None:
    """No manifest of a clean close: only the structural checks stand between chromadb and
    the damaged files. Whatever they catch is served by the exact scan; a rebuild heals."""
    root = _copy(template, tmp_path, case, manifest=False)
    r = _run_child("crash_child", root, template.key_hex)
    if r["state"] == "damaged":
        assert r["searches"] == template.baseline
    assert r["rebuilt"] == len(corpus_segments()) + BULK
    assert r["final"] == "ok" and r["served_by_chroma"] and r["verify_ok"]
    assert _top(r["searches_after"]) == _top(template.baseline)


@pytest.mark.parametrize("case", ["dir:delete", "data_level0.bin:flip", "chroma.sqlite3:flip"])
def test_the_store_rebuilds_a_damaged_index_by_itself(
    template: Template, tmp_path: Path, case: str
) -> None:
    root = _copy(template, tmp_path, case)
    r = _run_child("background_child", root, template.key_hex)
    assert r["loaded"] == "damaged"
    expected = template.baseline[QUERIES[0]]["dense"]
    assert r["first"] == r["second"] == expected  # the exact scan, loading and damaged
    assert r["third"][:TOP] == expected[:TOP]  # Chroma again
    assert r["healed"] and r["served_by_chroma"] and r["verify_ok"]
    assert r["state_file"] == "closed" and r["aside_left"] == []


# -- in-process cases ---------------------------------------------------------------------


def _dense_ranking(store: Any) -> tuple[list[str], int]:
    """The dense hits that score above the rest, in order, and how many hits: the fake
    encoder gives most segments the same cosine (0), and Chroma and the exact scan may
    order (and cut) equal scores differently."""
    hits = store.search("alice", "cello", mode="dense")
    return [h.segment_id for h in hits if h.dense_score > 1e-6], len(hits)


def test_a_failure_in_use_degrades_and_heals(sem_open: Any) -> None:
    """An operation that fails under a loaded index (here: its client closed under it)."""
    store = sem_open()
    store.add_segments(corpus_segments())
    assert store.wait_ready(60)
    before = _dense_ranking(store)
    store._index._client.close()  # every later chromadb call of this client fails
    assert _dense_ranking(store) == before
    assert store.index_state in ("damaged", "rebuilding")
    assert _wait_ok(store, 60) and store.index_health().serving
    assert _dense_ranking(store) == before
    assert store.verify_index().ok


def test_close_stops_the_background_rebuild(template: Template, tmp_path: Path) -> None:
    root = _copy(template, tmp_path, "dir:delete")
    conn, store = _open(root, template.key_hex, config=SemanticConfig(outbox_batch_size=8))
    try:
        assert store.wait_ready(60) and store.index_state == "damaged"
        store.search("alice", "cello", 3)  # starts the rebuild
        deadline = time.monotonic() + 30
        while store.index_state != "rebuilding" and time.monotonic() < deadline:
            time.sleep(0.01)
        store.close()
        assert store.closed
        assert not any(t.name == "aico-chroma-heal" for t in threading.enumerate())
    finally:
        conn.close()
    # Closed part way or just done: never recorded as a clean, healthy close part way.
    state = json.loads((root / "chroma.state").read_text())["state"]
    conn, store = _open(root, template.key_hex)
    try:
        assert store.wait_ready(60)
        if state == "damaged":
            assert store.index_state == "damaged"
            store.rebuild()
        assert store.index_state == "ok" and store.verify_index().ok
    finally:
        store.close()
        conn.close()


def test_a_read_only_store_reports_damage_and_writes_nothing(
    template: Template, tmp_path: Path
) -> None:
    root = _copy(template, tmp_path, "data_level0.bin:flip")
    before = digests(root / "chroma") | {"state": (root / "chroma.state").read_text()}
    conn, store = _open(root, template.key_hex, read_only=True)
    try:
        health = store.index_health()
        assert health.state == "damaged" and health.reason == "IndexDamaged"
        assert "data_level0.bin changed" in str(health.detail)
        assert _searches(store) == template.baseline
        report = store.verify_index()
        assert report.index_state == "damaged" and not report.ok
        with pytest.raises(ReadOnly):
            store.rebuild()
    finally:
        store.close()
        conn.close()
    assert digests(root / "chroma") | {"state": (root / "chroma.state").read_text()} == before


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_chroma_server_that_is_down_is_unavailable_not_wiped(sem_open: Any) -> None:
    store = sem_open(
        chroma_url=f"http://127.0.0.1:{_closed_port()}", config=SemanticConfig(index_retry_s=0)
    )
    ids = store.add_segments(corpus_segments())  # commits; Chroma cannot take it
    assert len(ids) == 13
    health = store.index_health()
    assert health.state == "unavailable" and health.pending_outbox == 13 and not health.serving
    assert ranked_ids(store, "alice", "cello", mode="dense")[0] == "alice-002"
    assert store.process_outbox().remaining == 13
    with pytest.raises(SemanticMemoryError):
        store.rebuild()  # nothing is wiped: the server cannot even be reached
    assert store.index_health().state == "unavailable"
    report = store.verify_index()
    assert report.index_state == "unavailable" and not report.chroma_checked


def test_index_health_is_exported() -> None:
    from aico.ai.memory import semantic

    assert "IndexHealth" in semantic.__all__ and semantic.IndexHealth is IndexHealth


# -- the CLI ------------------------------------------------------------------------------


def test_cli_status_verify_and_rebuild_of_a_damaged_index(
    tmp_path: Path, embedding_cache_dir: Path
) -> None:
    from click.testing import CliRunner

    from aico.ai.memory import MemoryManager
    from aico.cli.main import cli
    from aico.config import load_config
    from aico.data.repositories import UserService
    from aico.security import KdfParams

    passphrase = "semantic damage cli passphrase"
    p = KdfParams.for_tests()
    env = {
        "AICO_DATA_DIR": str(tmp_path / "data"),
        "AICO_PASSPHRASE": passphrase,
        "AICO_CONFIG": "",
        "AICO_SECURITY__USE_KEYRING": "false",
        "AICO_SECURITY__KDF_TIME_COST": str(p.time_cost),
        "AICO_SECURITY__KDF_MEMORY_COST_KIB": str(p.memory_cost_kib),
        "AICO_SECURITY__KDF_PARALLELISM": str(p.parallelism),
        "AICO_MEMORY__SEMANTIC__MODEL_CACHE_DIR": str(embedding_cache_dir),
    }
    with MemoryManager.initialize(tmp_path / "data", passphrase, config=load_config(env=env)) as m:
        UserService(m.store.connection("core")).create_user("Maya", user_id="maya")
        m.store_message("maya", "s1", "user", "My sister Ingrid visits Gothenburg every June.")
        m.end_session("s1")
        m.semantic.wait_ready()
        m.semantic.process_outbox()  # end_session left its small batch queued
    _damage(tmp_path / "data" / "memory" / "semantic" / "chroma", "chroma.sqlite3:flip")

    def run(*args: str) -> Any:
        return CliRunner().invoke(cli, list(args), env=env)

    status = run("semantic", "status", "--json")
    assert status.exit_code == 0, status.output
    health = json.loads(status.output)["index_health"]
    assert health["state"] == "damaged" and health["reason"] == "IndexDamaged"
    assert "chroma.sqlite3 changed" in health["detail"]
    text = run("semantic", "status")
    assert "index      damaged (IndexDamaged)" in text.output and "rebuild" in text.output

    verify = run("semantic", "verify", "--json")
    assert verify.exit_code == 1, verify.output
    report = json.loads(verify.output)
    assert report["index_state"] == "damaged" and report["chroma_checked"] is False

    hits = run("semantic", "search", "--user", "maya", "when does Ingrid visit", "--json")
    assert hits.exit_code == 0 and "Ingrid" in json.loads(hits.output)[0]["text"]

    rebuilt = run("semantic", "rebuild")
    assert rebuilt.exit_code == 0, rebuilt.output
    assert "the index was damaged (IndexDamaged)" in rebuilt.output
    assert "rebuilt the dense index: 1 vectors; index ok" in rebuilt.output
    verify = run("semantic", "verify", "--json")
    assert verify.exit_code == 0, verify.output
    assert json.loads(verify.output)["chroma_count"] == 1


# -- the coordinator ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def manager_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir written by the MemoryManager, its index past the HNSW sync threshold."""
    from coordinator_support import USER, create, open_manager

    data_dir = tmp_path_factory.mktemp("damage-manager") / "data"
    create(data_dir)
    with open_manager(data_dir) as memory:
        for i in range(6):
            memory.store_message(USER, "s1", "user", f"message {i} about zqtopic{i} and tea")
        memory.end_session("s1")
        bulk = [Segment(user_id=USER, text=f"bulk note {i}", start_ts=T0 + i) for i in range(BULK)]
        memory.semantic.add_segments(bulk)
    return data_dir


def manager_child(data_dir_arg: str, _unused: str) -> None:
    """Every coordinator verb on a data dir whose index is damaged: none may raise."""
    from coordinator_support import OTHER, USER, open_manager

    out: dict[str, Any] = {}
    with open_manager(Path(data_dir_arg)) as memory:
        out["stored"] = bool(memory.store_message(USER, "s2", "user", "zqnew about cats"))
        out["segments"] = memory.end_session("s2")
        out["search"] = any("zqtopic3" in h.text for h in memory.search(USER, "zqtopic3", 3))
        context = memory.assemble_context(USER, "s3", "zqtopic3")
        out["context"] = any("zqtopic3" in hit.text for hit in context.memories)
        report = memory.maintenance()
        out["maintenance_remaining"] = report.outbox_remaining
        out["forget"] = memory.forget(OTHER).user_id == OTHER
        out["state"] = memory.semantic.index_state
        out["verify_ok"] = memory.semantic.verify_index().ok
    print("RESULT " + json.dumps(out), flush=True)


@pytest.mark.parametrize("case", ["data_level0.bin:flip", "chroma.sqlite3:flip", "dir:delete"])
def test_the_coordinator_never_fails_for_a_damaged_index(
    manager_template: Path, tmp_path: Path, case: str
) -> None:
    data_dir = tmp_path / "data"
    shutil.copytree(manager_template, data_dir)
    _damage(data_dir / "memory" / "semantic" / "chroma", case)
    r = _run_child("manager_child", data_dir, "-")
    assert r["stored"] and r["segments"] >= 1
    assert r["search"] and r["context"]
    assert r["forget"] and r["state"] == "ok" and r["verify_ok"]  # the forget's purge rebuilt it
