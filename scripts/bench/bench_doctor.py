"""How long ``aico doctor`` and ``aico health`` take on a large store.

    .venv/bin/python scripts/bench/bench_doctor.py [--segments 10000,100000] [--rounds 3]
        [--workdir DIR] [--keep] [--out .bench/doctor.json]

Each size gets a real data dir built through the public API (``store_message`` and
``end_session``, sessions of 50 user messages, ten users, so one segment per message, every
segment embedded by the fake ``HashingEncoder`` and in Chroma). Working memory is built with
``sync = false`` (build speed only; the measured verbs never write it). Then, per round:

- ``doctor`` without repair (everything read-only), in total and per check;
- ``health_report`` on a read-only manager, with and without the drift count;
- ``doctor --repair`` after the Chroma index is damaged (its rebuild dominates).

Timings are wall seconds on this machine; the build time is reported too.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "shared"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

from aico.ai.embeddings import HashingEncoder  # noqa: E402
from aico.ai.memory import MemoryManager  # noqa: E402
from aico.ai.memory.stores import open_data_store  # noqa: E402
from aico.config import Config, load_config  # noqa: E402
from aico.data.repositories import UserService  # noqa: E402
from aico.operations import _doctor_checks  # noqa: E402
from aico.operations.doctor import doctor  # noqa: E402
from aico.operations.health import health_report  # noqa: E402
from aico.security import KdfParams  # noqa: E402

PASSPHRASE = "bench passphrase, not a secret"
USERS = 10
SESSION = 50


def config(fast_build: bool) -> Config:
    p = KdfParams.for_tests()
    working = {"sync": False, "metasync": False} if fast_build else {}
    return load_config(
        env={},
        overrides={
            "security": {
                "use_keyring": False,
                "kdf_time_cost": p.time_cost,
                "kdf_memory_cost_kib": p.memory_cost_kib,
                "kdf_parallelism": p.parallelism,
            },
            "memory": {"working": working},
        },
    )


def build(root: Path, segments: int) -> float:
    started = time.perf_counter()
    cfg = config(True)
    with MemoryManager.initialize(root, PASSPHRASE, config=cfg, encoder=HashingEncoder()) as m:
        users = UserService(m.store.connection("core"))
        for u in range(USERS):
            users.create_user(f"User {u}", user_id=f"u{u}")
        made = 0
        session = 0
        while made < segments:
            user = f"u{session % USERS}"
            sid = f"s{session}"
            for i in range(min(SESSION, segments - made)):
                m.store_message(
                    user,
                    sid,
                    "user",
                    f"note {made + i} about harbour {session} and kite {i} zq{made + i}",
                    conversation_id=f"c{session}",
                )
            made += min(SESSION, segments - made)
            m.end_session(sid)
            session += 1
            if session % 200 == 0:
                print(f"  built {made} segments", flush=True)
        m.maintenance()
    return time.perf_counter() - started


def per_check(root: Path) -> dict[str, float]:
    """Each check of the diagnosis, timed on one read-only store (as ``doctor`` runs them)."""
    cfg = config(False)
    store = open_data_store(root, passphrase=PASSPHRASE, config=cfg, read_only=True)
    probe = _doctor_checks.Probe(store=store, config=cfg, encoder=HashingEncoder(), now=time.time())
    times: dict[str, float] = {}
    try:
        for check in _doctor_checks.CHECKS:
            started = time.perf_counter()
            check(probe)
            times[check.__name__] = time.perf_counter() - started
    finally:
        probe.close()
        store.close()
    bad = [f for f in probe.findings if f.status == "problem"]
    assert not bad, bad
    return times


def timed(fn: Any) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def measure(root: Path, rounds: int) -> dict[str, Any]:
    cfg = config(False)
    enc = HashingEncoder()
    out: dict[str, list[float]] = {
        "doctor": [],
        "health": [],
        "health_no_drift": [],
        "repair_damaged_chroma": [],
    }
    checks: list[dict[str, float]] = []
    for _ in range(rounds):
        report = doctor(root, config=cfg, passphrase=PASSPHRASE, encoder=enc)
        assert not report.problems, report.problems
        out["doctor"].append(report.took_s)
        checks.append(per_check(root))
        store = open_data_store(root, passphrase=PASSPHRASE, config=cfg, read_only=True)
        with MemoryManager.from_store(store, config=cfg, encoder=enc, read_only=True) as m:
            out["health"].append(timed(lambda m=m: health_report(m)))
            out["health_no_drift"].append(timed(lambda m=m: health_report(m, drift=False)))
    state = root / "memory" / "semantic" / "chroma.state"
    state.write_text('{"version": 1, "state": "damaged", "reason": "bench"}')
    report = doctor(root, repair=True, config=cfg, passphrase=PASSPHRASE, encoder=enc)
    assert not report.problems, report.problems
    out["repair_damaged_chroma"].append(report.took_s)
    summary: dict[str, Any] = {
        k: {"median_s": statistics.median(v), "runs": v} for k, v in out.items() if v
    }
    summary["doctor_checks_median_s"] = {
        name: statistics.median(c[name] for c in checks) for name in checks[0]
    }
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--segments", default="10000")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--out", type=Path, default=REPO / ".bench" / "doctor.json")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-doctor-"))
    results: dict[str, Any] = {"machine": os.uname().nodename, "cpus": os.cpu_count()}
    try:
        for size in (int(s) for s in args.segments.split(",")):
            root = work / f"data-{size}"
            if not (root / "keys" / "master.key").exists():
                print(f"building {size} segments...", flush=True)
                built = build(root, size)
            else:
                built = float("nan")
            files = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
            print(f"measuring {size} segments ({files / 1e6:.0f} MB)...", flush=True)
            results[str(size)] = {"build_s": built, "bytes": files, **measure(root, args.rounds)}
            print(json.dumps(results[str(size)], indent=1), flush=True)
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
