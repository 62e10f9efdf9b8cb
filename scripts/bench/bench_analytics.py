"""Analytics benchmark: the export, the report, and what an export costs ``store_message``.

    .venv/bin/python scripts/bench/bench_analytics.py [--messages 100000] [--step 10000]
        [--writes 400] [--rounds 3] [--workdir DIR] [--keep] [--out .bench/analytics.json]

One data dir (fake ``HashingEncoder``; the history is written by batched
``ConversationLog.append``, as tests/analytics/history.py does) grows by ``--step``
messages at a time up to ``--messages``; after each step:

- **export per step** (the encrypted file, incremental): the time of ``Analytics.export``
  for the ``--step`` new messages (plus the small tables it copies whole each time);
- **baseline** (hand-written, same run): one plain ``fetch_all`` of the same new rows'
  columns through the read pool, the floor of any export that reads through aico.

At ``--messages``:

- **the two designs** the issue asks to compare: (a) the encrypted DuckDB file, an
  incremental export of one more step and then the report's views; (b) DuckDB in memory
  over rows read through aico at query time, the full load and the same views;
- **report**: ``Analytics.report`` (views + matplotlib + the HTML file), ``--rounds`` times;
- **store_message while exporting**: ``--writes`` timed ``store_message`` calls idle, then
  the same while another thread runs full exports back to back (the copy deleted before
  each, so every one reads all rows); p50 / p95 of each.

Writes a JSON report to ``--out``; prints a summary. Exit status 0 unless setup fails.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "analytics"))

for _name, _value in {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "ANONYMIZED_TELEMETRY": "False",
    "OPENBLAS_NUM_THREADS": "1",
    "TOKENIZERS_PARALLELISM": "false",
}.items():
    os.environ.setdefault(_name, _value)

from history import START, USERS, open_test_manager, write_history  # noqa: E402

from aico.ai.memory import MemoryManager  # noqa: E402
from aico.analytics import _duck  # noqa: E402
from aico.analytics.export import Exporter  # noqa: E402
from aico.analytics.report import _VIEWS  # noqa: E402
from aico.analytics.views import create_views  # noqa: E402


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": round(statistics.median(values), 4),
        "p95": round(pct(values, 0.95), 4),
        "max": round(max(values), 4),
    }


def baseline_read(memory: MemoryManager, after_rowid: int) -> float:
    """The hand-written floor: read the new rows' exported columns in one statement."""
    conn = memory.store.connection("conversations")
    started = time.perf_counter()
    conn.fetch_all(
        "SELECT rowid, id, user_id, session_id, conversation_id, role, timestamp, tokens, "
        "cost, length(content) FROM messages WHERE rowid > ?",
        (after_rowid,),
    )
    return time.perf_counter() - started


def in_memory_views(memory: MemoryManager, tmp: Path) -> dict[str, float]:
    """Design (b): load everything into an in-memory DuckDB, then run the report's views."""
    started = time.perf_counter()
    con = _duck.connect(tmp)
    try:
        _duck.attach(con, None, None)
        Exporter(con, memory.store.connection, batch=10_000).run()
        loaded = time.perf_counter()
        create_views(con)
        for view in _VIEWS:
            con.execute(f"SELECT * FROM main.{view}").fetchall()
        done = time.perf_counter()
    finally:
        con.close()
    return {"load_s": round(loaded - started, 3), "total_s": round(done - started, 3)}


def file_views(memory: MemoryManager, step: int, tag: str) -> dict[str, float]:
    """Design (a): one more step exported incrementally, then the same views read."""
    write_history(memory, USERS, messages=step, tag=tag, seed=99)
    started = time.perf_counter()
    memory.analytics.export()
    exported = time.perf_counter()
    memory.analytics.views(list(_VIEWS))
    done = time.perf_counter()
    return {"export_s": round(exported - started, 3), "total_s": round(done - started, 3)}


def store_latencies(memory: MemoryManager, n: int, tag: str) -> list[float]:
    out = []
    for i in range(n):
        user = USERS[i % len(USERS)]
        started = time.perf_counter()
        memory.store_message(
            user,
            f"{tag}-{user}-s{i // 30}",
            "user",
            f"bench turn {i}",
            timestamp=START + i,
        )
        out.append((time.perf_counter() - started) * 1000.0)
    return out


def while_exporting(memory: MemoryManager, n: int) -> tuple[list[float], int, float]:
    stop = threading.Event()
    exports: list[float] = []
    batch_max = [0.0]

    def loop() -> None:
        while not stop.is_set():
            memory.analytics.path.unlink(missing_ok=True)
            report = memory.analytics.export()
            exports.append(report.seconds)
            batch_max[0] = max(batch_max[0], report.max_batch_s)

    worker = threading.Thread(target=loop, daemon=True)
    worker.start()
    time.sleep(0.3)  # the export is under way
    try:
        latencies = store_latencies(memory, n, "busy")
    finally:
        stop.set()
        worker.join()
    return latencies, len(exports), batch_max[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--step", type=int, default=10_000)
    parser.add_argument("--writes", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=None, help="rows per batch read")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--out", type=Path, default=REPO / ".bench" / "analytics.json")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-analytics-", dir=args.workdir))
    report: dict[str, Any] = {
        "bench": "analytics",
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "messages": args.messages,
        "step": args.step,
    }
    try:
        memory = open_test_manager(workdir / "data")
        if args.batch:
            memory.analytics._batch = args.batch
        report["batch"] = memory.analytics._batch
        try:
            export_s: list[float] = []
            baseline_s: list[float] = []
            batch_max = 0.0
            written = 0
            while written < args.messages:
                step = min(args.step, args.messages - written)
                top = memory.store.connection("conversations").fetch_value(
                    "SELECT coalesce(max(rowid), 0) FROM messages"
                )
                write_history(memory, USERS, messages=step, tag=f"b{written}", seed=written)
                written += step
                baseline_s.append(baseline_read(memory, int(top)))
                result = memory.analytics.export()
                export_s.append(result.seconds)
                batch_max = max(batch_max, result.max_batch_s)
                print(f"{written:>7} messages: export {result.seconds:.3f} s", flush=True)
            report["export_per_step_s"] = summary(export_s)
            report["baseline_read_per_step_s"] = summary(baseline_s)
            report["export_ratio_vs_baseline_p50"] = round(
                statistics.median(export_s) / statistics.median(baseline_s), 2
            )
            report["longest_batch_read_s"] = round(batch_max, 4)
            report["copy_bytes"] = memory.analytics.path.stat().st_size

            report["design_file"] = file_views(memory, args.step // 10, "design")
            report["design_memory"] = in_memory_views(memory, memory.analytics.directory / "tmp")

            out_dir = workdir / "report"
            times = []
            for _ in range(args.rounds):
                started = time.perf_counter()
                memory.analytics.report(out_dir)
                times.append(time.perf_counter() - started)
            report["report_s"] = summary(times)
            report["report_bytes"] = (out_dir / "analytics-report.html").stat().st_size

            idle = store_latencies(memory, args.writes, "idle")
            busy, exports, busy_batch = while_exporting(memory, args.writes)
            report["store_message_idle_ms"] = summary(idle)
            report["store_message_during_export_ms"] = summary(busy)
            report["store_message_p95_ratio"] = round(pct(busy, 0.95) / pct(idle, 0.95), 2)
            report["exports_during_writes"] = exports
            report["longest_batch_read_during_writes_s"] = round(busy_batch, 4)
        finally:
            memory.close()
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
