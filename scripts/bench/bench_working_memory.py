"""Benchmark: the sealed LMDB working memory (issue 3).

- read: the 20 newest messages of a session holding 1,000 messages of 1 KB (goal p50 <= 100 µs);
- durable append: one 1 KB message, one LMDB commit (goal p50 <= 1 ms), in each durability
  mode, plus the disk's bare ``fdatasync`` for reference (LMDB's default mode costs two of
  those). The store touches LMDB only; the whole ``store_message`` path (log commit first,
  then this append) is measured by ``bench_manager.py``;
- sweep: removing 100,000 expired entries through the expiry index.

    .venv/bin/python scripts/bench/bench_working_memory.py [--reads 3000] [--appends 300]
        [--sweep-entries 100000] [--dir DIR] [--out .bench/working_memory.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from aico.ai.memory.working import WorkingMemoryStore, status
from aico.security import MasterKey

KB_TEXT = ("A typical chat turn about plans for the weekend, " * 25)[:1024]
T0 = 1_700_000_000.0


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile (no interpolation)."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summary(samples: list[float], goal_us: float | None = None) -> dict[str, float | int | bool]:
    result: dict[str, float | int | bool] = {
        "runs": len(samples),
        "median_us": statistics.median(samples) * 1e6,
        "p95_us": percentile(samples, 95) * 1e6,
        "min_us": min(samples) * 1e6,
        "max_us": max(samples) * 1e6,
    }
    if goal_us is not None:
        result["goal_p50_us"] = goal_us
        result["meets_goal"] = result["median_us"] <= goal_us
    return result


def timed(fn: Callable[[], object], runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return samples


def bench_read(root: Path, master: MasterKey, runs: int) -> dict[str, object]:
    with WorkingMemoryStore(root / "read", master, sync=False) as store:
        for i in range(1000):
            store.append("bench-user", "bench-session", "user" if i % 2 else "assistant", KB_TEXT)
        store.flush()
        for _ in range(200):  # warm the page cache and the key-hash memo
            store.recent("bench-session", 20)
        newest = timed(lambda: store.recent("bench-session", 20), runs)
        oldest = timed(lambda: store.recent("bench-session", 20, newest_first=False), runs)
    return {
        "recent_20_of_1000_newest_first": summary(newest, goal_us=100),
        "recent_20_of_1000_oldest_first": summary(oldest),
    }


def bench_appends(root: Path, master: MasterKey, runs: int) -> dict[str, object]:
    results: dict[str, object] = {}
    modes = (
        ("append_durable", {"sync": True, "metasync": True}, 1000),
        ("append_metasync_off", {"sync": True, "metasync": False}, None),
        ("append_nosync", {"sync": False}, None),
    )
    for name, options, goal in modes:
        path = root / name
        with WorkingMemoryStore(path, master, **options) as store:
            for _ in range(20):  # create the session, warm up
                store.append("bench-user", name, "user", KB_TEXT)
            samples = timed(
                lambda s=store, n=name: s.append("bench-user", n, "user", KB_TEXT), runs
            )
        results[name] = summary(samples, goal_us=goal)
    results["disk_fdatasync_4k"] = summary(fdatasync_samples(root, runs))
    return results


def fdatasync_samples(root: Path, runs: int) -> list[float]:
    """The floor under any durable commit on this disk: one 4 KB write + fdatasync."""
    path = root / "fsync.probe"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.write(fd, b"\0" * (runs * 4096))
        os.fsync(fd)
        samples = []
        for i in range(runs):
            os.pwrite(fd, b"x" * 4096, i * 4096)
            started = time.perf_counter()
            os.fdatasync(fd)
            samples.append(time.perf_counter() - started)
        return samples
    finally:
        os.close(fd)
        path.unlink()


def bench_sweep(root: Path, master: MasterKey, entries: int) -> dict[str, object]:
    now = [T0]
    path = root / "sweep"
    text = KB_TEXT[:256]
    started = time.perf_counter()
    with WorkingMemoryStore(path, master, clock=lambda: now[0], sync=False) as store:
        for i in range(entries):
            now[0] += 0.000_01
            store.append("bench-user", f"sweep-{i % 100}", "user", text)
        store.flush()
    fill_s = time.perf_counter() - started
    now[0] += 2 * 24 * 3600
    with WorkingMemoryStore(path, master, clock=lambda: now[0]) as store:  # default durability
        before = status(store)
        started = time.perf_counter()
        removed = store.sweep()
        sweep_s = time.perf_counter() - started
        after = status(store)
    assert removed == entries, (removed, entries)
    assert after["entries"] == 0 and after["sessions"] == 0
    return {
        "entries": entries,
        "entry_bytes": len(text),
        "expired_pending_before": before["expired_pending"],
        "fill_seconds": fill_s,
        "sweep_seconds": sweep_s,
        "sweep_us_per_entry": sweep_s / entries * 1e6,
        "data_mdb_bytes": after["file_bytes"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=3000)
    parser.add_argument("--appends", type=int, default=300)
    parser.add_argument("--sweep-entries", type=int, default=100_000)
    parser.add_argument("--dir", type=Path, default=None, help="where to build the stores")
    parser.add_argument("--out", type=Path, default=Path(".bench/working_memory.json"))
    args = parser.parse_args(argv)

    master = MasterKey.generate()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        root = Path(tmp)
        read = bench_read(root, master, args.reads)
        appends = bench_appends(root, master, args.appends)
        swept = bench_sweep(root, master, args.sweep_entries)

    report = {
        "benchmark": "working_memory",
        "read": read,
        "append": appends,
        "sweep": swept,
        "machine": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average": os.getloadavg(),
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    for section in (read, appends):
        for name, r in section.items():
            assert isinstance(r, dict)
            goal = f" (goal p50 <= {r['goal_p50_us']:.0f} µs)" if "goal_p50_us" in r else ""
            print(f"{name:36s} median {r['median_us']:9.1f} µs  p95 {r['p95_us']:9.1f} µs{goal}")
    print(
        f"{'sweep':36s} {swept['entries']} expired entries in {swept['sweep_seconds']:.2f} s "
        f"({swept['sweep_us_per_entry']:.1f} µs/entry)"
    )
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
