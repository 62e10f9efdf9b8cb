"""Shared by the coordinator's adversarial tests: workloads run in child processes, and the
invariants every store must satisfy against the log after a reopen.

A child prints ``ACK <id> <session> <marker>`` only after ``store_message`` returned, so the
parent knows exactly which messages were acknowledged when it killed the child.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aico.ai.memory import MemoryManager

ROOT = Path(__file__).resolve().parents[3]
PASSPHRASE = "coordinator test passphrase"
USER = "user-1"
OTHER = "user-2"


def test_config_overrides() -> dict[str, Any]:
    from aico.security import KdfParams

    params = KdfParams.for_tests()
    return {
        # Every role's words in BM25, so each acknowledged message is findable by its marker.
        # end_session embeds at once: the writers' loop then passes every outbox commit
        # point too (with the default "batch" only maintenance would reach them).
        "memory": {"semantic": {"fts_roles": []}, "consolidation": {"index_on_end": "now"}},
        "security": {
            "use_keyring": False,
            "kdf_time_cost": params.time_cost,
            "kdf_memory_cost_kib": params.memory_cost_kib,
            "kdf_parallelism": params.parallelism,
        }
    }


def config() -> Any:
    from aico.config import load_config

    return load_config(env={}, overrides=test_config_overrides())


def encoder(kind: str, cache: str | None = None) -> Any:
    if kind == "real":
        from aico.ai.embeddings import OnnxMiniLMEncoder

        enc = OnnxMiniLMEncoder(cache_dir=Path(cache) if cache else None)
        enc.load()
        return enc
    from aico.ai.embeddings import HashingEncoder

    return HashingEncoder()


def create(data_dir: Path, kind: str = "fake", cache: str | None = None) -> None:
    from aico.data.repositories import UserService

    with MemoryManager.initialize(
        data_dir, PASSPHRASE, config=config(), encoder=encoder(kind, cache)
    ) as memory:
        users = UserService(memory.store.connection("core"))
        users.create_user("One", user_id=USER)
        users.create_user("Two", user_id=OTHER)


def open_manager(data_dir: Path, kind: str = "fake", cache: str | None = None) -> MemoryManager:
    return MemoryManager.open(
        data_dir, passphrase=PASSPHRASE, config=config(), encoder=encoder(kind, cache)
    )


# ---- the child -------------------------------------------------------------------------


def writer_main(data_dir: str, tag: str, kind: str, cache: str, fault_point: str) -> None:
    """Store messages (and end sessions) forever; print each id once acknowledged."""
    if fault_point:
        from aico.ai.memory import _faults

        calls = {"n": 0}
        after = int(os.environ.get("AICO_FAULT_AFTER", "5"))

        def hook(point: str) -> None:
            if point == fault_point:
                calls["n"] += 1
                if calls["n"] >= after:
                    os._exit(17)

        _faults.set_fault_hook(hook)
    rng = random.Random(tag)
    memory = open_manager(Path(data_dir), kind, cache or None)
    print("READY", flush=True)
    i = 0
    session = f"{tag}-s0"
    while True:
        marker = f"zq{tag}x{i}"
        role = "user" if i % 2 == 0 else "assistant"
        text = f"note {i} about {marker} and {rng.choice(['tea', 'rain', 'maps', 'owls'])}"
        mid = memory.store_message(USER, session, role, text)
        print(f"ACK {mid} {session} {marker} {role}", flush=True)
        i += 1
        if i % 6 == 0:
            memory.end_session(session)
            print(f"ENDED {session}", flush=True)
            session = f"{tag}-s{i // 6}"
        if i % 15 == 0:
            memory.maintenance()


@dataclass
class Acks:
    # id -> (session, marker, role)
    messages: dict[str, tuple[str, str, str]] = field(default_factory=dict)

    def read(self, lines: list[str]) -> None:
        for line in lines:
            parts = line.split()
            if len(parts) == 5 and parts[0] == "ACK":
                self.messages[parts[1]] = (parts[2], parts[3], parts[4])


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = f"{ROOT / 'shared'}{os.pathsep}{ROOT / 'tests' / 'ai' / 'memory'}"
    env.update(extra or {})
    return env


def run_writer(
    data_dir: Path,
    tag: str,
    *,
    kill_after: float | None,
    kind: str = "fake",
    cache: str = "",
    fault_point: str = "",
    fsize_limit: int | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120.0,
) -> tuple[list[str], int]:
    """Run the writer child; SIGKILL it ``kill_after`` seconds after READY. Returns its
    stdout lines and exit code."""
    code = (
        "import sys, coordinator_support as c; "
        "c.limit_file_size(int(sys.argv[6])); "
        "c.writer_main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5])"
    )
    args = [
        sys.executable,
        "-c",
        code,
        str(data_dir),
        tag,
        kind,
        cache,
        fault_point,
        str(fsize_limit or 0),
    ]
    proc = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(env),
    )
    assert proc.stdout is not None
    lines: list[str] = []
    ready = proc.stdout.readline()
    lines.append(ready.strip())
    if kill_after is not None and ready.startswith("READY"):
        time.sleep(kill_after)
        proc.send_signal(signal.SIGKILL)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    lines += out.splitlines()
    if not ready.startswith("READY"):
        raise AssertionError(f"the child did not start: {err[-3000:]}")
    return lines, proc.returncode


def limit_file_size(limit: int) -> None:
    """``ulimit -f``: writes past ``limit`` bytes fail with EFBIG (SIGXFSZ ignored)."""
    if limit <= 0:
        return
    import resource

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


# ---- invariants ------------------------------------------------------------------------


def settle(memory: MemoryManager) -> None:
    """End every session, consolidate, drain the outbox: the state the invariants expect."""
    log = memory.store.connection("conversations")
    for row in log.fetch_all("SELECT session_id FROM session_metadata"):
        memory.end_session(row["session_id"])
    memory.maintenance()
    while memory.semantic.process_outbox().remaining:
        pass


def check_invariants(
    memory: MemoryManager,
    acked: dict[str, tuple[str, str, str]],
    *,
    search_sample: int = 40,
    settled: bool = True,
) -> dict[str, int]:
    """Assert every store agrees with the log; returns counts for the test's report."""
    log = memory.store.connection("conversations")
    core = memory.store.connection("core")
    logged = {
        r["id"]: r
        for r in log.fetch_all("SELECT id, session_id, content, timestamp FROM messages")
    }
    missing = [m for m in acked if m not in logged]
    assert missing == [], f"{len(missing)} acknowledged messages are missing from the log"

    # Working memory holds only logged messages, and every logged one within its TTL.
    in_working = memory.working.message_ids()
    phantoms = [m for _, m in in_working if m not in logged]
    assert phantoms == [], f"{len(phantoms)} phantom messages in working memory"
    copies = len(in_working) - len({m for _, m in in_working})
    assert copies == 0, f"{copies} messages twice in working memory"
    now = memory.clock()
    have = {m for _, m in in_working}
    live_missing = [
        m for m, r in logged.items() if r["timestamp"] + memory.working.ttl > now and m not in have
    ]
    assert live_missing == [], f"{len(live_missing)} live messages missing from working memory"

    # session_metadata agrees with the log.
    counts = {
        r["session_id"]: r["n"]
        for r in log.fetch_all(
            "SELECT session_id, count(*) AS n FROM messages GROUP BY session_id"
        )
    }
    rows = {
        r["session_id"]: r["message_count"]
        for r in log.fetch_all("SELECT session_id, message_count FROM session_metadata")
    }
    assert rows == counts, "session_metadata disagrees with the log"

    # Segments: built only from logged messages, each message in exactly one.
    sources = core.fetch_all(
        "SELECT message_id, count(*) AS n FROM semantic_segment_messages GROUP BY message_id"
    )
    unknown = [r["message_id"] for r in sources if r["message_id"] not in logged]
    assert unknown == [], f"{len(unknown)} segments made from messages the log lacks"
    doubled = [r["message_id"] for r in sources if r["n"] > 1]
    assert doubled == [], f"{len(doubled)} messages in two segments"
    fts_rows = int(core.fetch_value("SELECT count(*) FROM semantic_fts_docsize") or 0)
    segments = int(core.fetch_value("SELECT count(*) FROM semantic_segments") or 0)
    assert fts_rows == segments, f"FTS5 rows {fts_rows} != segments {segments}"
    report = memory.semantic.verify_index()
    if settled:
        in_segments = {r["message_id"] for r in sources}
        unconsolidated = [m for m in logged if m not in in_segments]
        assert unconsolidated == [], f"{len(unconsolidated)} messages in no segment"
        assert report.ok and report.pending_outbox == 0, report
        sample = list(acked.items())
        random.Random(7).shuffle(sample)
        for message_id, (_session, marker, _role) in sample[:search_sample]:
            hits = [h for h in memory.search(USER, marker, 10, mode="bm25") if marker in h.text]
            assert hits, "acknowledged message not found (bm25)"
            # Hybrid, asked with the message's own words (a bare marker is noise to the dense
            # half, and fusion may rank it low).
            found = memory.search(USER, logged[message_id]["content"], 10, mode="hybrid")
            assert any(marker in h.text for h in found), "acknowledged message not found (hybrid)"
            # The dense index holds the segment with its vector (asked by id: an ANN query
            # can miss among near-identical texts, which says nothing about completeness).
            _check_in_chroma(memory, hits[0].segment_id)
    return {
        "acked": len(acked),
        "logged": len(logged),
        "segments": segments,
        "chroma": report.chroma_count,
        "working": len(in_working),
    }


def _check_in_chroma(memory: MemoryManager, segment_id: str) -> None:
    import numpy as np

    semantic = memory.semantic
    row = memory.store.connection("core").fetch_one(
        "SELECT chroma_id, user_id, vector FROM semantic_segments WHERE segment_id = ?",
        (segment_id,),
    )
    assert row is not None and row["vector"] is not None, "segment without a vector"
    name = semantic._collection_name(row["user_id"])
    stored = semantic._index.get_vectors(name, [row["chroma_id"]])
    assert row["chroma_id"] in stored, "segment not in Chroma"
    mine = np.asarray(
        semantic._rotation.rotate(np.frombuffer(row["vector"], dtype="<f4")[None, :]), np.float32
    )[0]
    theirs = np.asarray(stored[row["chroma_id"]], np.float32)
    cos = float(mine @ theirs / (np.linalg.norm(mine) * np.linalg.norm(theirs)))
    assert cos > 0.9999, "Chroma holds another vector for the segment"


def dump(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=1))


# ---- mixed concurrent workload -----------------------------------------------------------


def server_config(url: str) -> Any:
    from aico.config import load_config

    overrides = test_config_overrides()
    overrides["memory"]["semantic"]["chroma_url"] = url
    # Idle after a second: maintenance consolidates sessions other actors still write to.
    overrides["memory"]["consolidation"] = {"idle_minutes": 1 / 60}
    return load_config(env={}, overrides=overrides)


def run_mixed(memory: MemoryManager, tag: str, seconds: float, threads: int) -> tuple[
    dict[str, tuple[str, str, str]], list[str]
]:
    """``threads`` threads: writers (store + end_session), one maintenance, one searcher."""
    import threading
    import traceback

    acked: dict[str, tuple[str, str, str]] = {}
    errors: list[str] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def guarded(fn: Any) -> Any:
        def run() -> None:
            try:
                fn()
            except BaseException:
                with lock:
                    errors.append(traceback.format_exc())

        return run

    def writer(n: int) -> None:
        rng = random.Random(f"{tag}{n}")
        i = 0
        while time.monotonic() < stop:
            session = f"{tag}-w{n}-s{i // 5}"
            marker = f"zq{tag}w{n}x{i}"
            role = "user" if i % 2 == 0 else "assistant"
            mid = memory.store_message(USER, session, role, f"thought {marker} on {rng.random()}")
            with lock:
                acked[mid] = (session, marker, role)
            i += 1
            if i % 5 == 0 and rng.random() < 0.7:
                memory.end_session(session)

    def maintainer() -> None:
        while time.monotonic() < stop:
            memory.maintenance()
            time.sleep(0.05)

    def searcher() -> None:
        rng = random.Random(tag)
        while time.monotonic() < stop:
            memory.search(USER, f"thought zq{tag}w0x{rng.randrange(50)}", 5)
            memory.assemble_context(USER, f"{tag}-w0-s0", "thought")

    jobs = [guarded(lambda n=n: writer(n)) for n in range(max(1, threads - 2))]
    jobs += [guarded(maintainer), guarded(searcher)]
    workers = [threading.Thread(target=job) for job in jobs]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return acked, errors


def mixed_main(data_dir: str, tag: str, seconds: str, threads: str, url: str) -> None:
    from aico.ai.embeddings import HashingEncoder

    memory = MemoryManager.open(
        Path(data_dir), passphrase=PASSPHRASE, config=server_config(url), encoder=HashingEncoder()
    )
    acked, errors = run_mixed(memory, tag, float(seconds), int(threads))
    memory.close()
    print(json.dumps({"acked": acked, "errors": errors}), flush=True)


def start_mixed(data_dir: Path, tag: str, seconds: float, threads: int, url: str) -> Any:
    code = "import sys, coordinator_support as c; c.mixed_main(*sys.argv[1:])"
    return subprocess.Popen(
        [sys.executable, "-c", code, str(data_dir), tag, str(seconds), str(threads), url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
    )
