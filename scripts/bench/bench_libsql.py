"""Benchmark: the encrypted libSQL connection (WAL, synchronous=NORMAL by default).

Measures what the write path pays per message and what start-up pays per database:

- single-row committed insert (autocommit; under NORMAL a WAL append without fsync);
- a 10k-row batch insert with ``execute_many`` in one transaction, several repeats;
- open with seal verification (HMAC over the closed file + quick checks), several repeats,
  on the database left by the inserts;
- the commit counter (lost-WAL detection): ``--transactions`` small transactions and as
  many autocommit inserts, each with and without the counter, in alternating rounds of
  the same run (the baseline is a connection with the counter switched off), as a ratio;
- what closing costs when the session was opened unsealed (after a crash): the closer
  re-runs ``quick_check`` before sealing, on a ``--check-mb`` database.

    .venv/bin/python scripts/bench/bench_libsql.py [--inserts 2000] [--batch 10000]
        [--repeats 5] [--transactions 2000] [--check-mb 50] [--synchronous NORMAL]
        [--out .bench/libsql.json]
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
from pathlib import Path
from typing import Any

from aico.data.libsql import EncryptedLibSQLConnection, SQLiteSettings

DB_KEY = os.urandom(32)
SEAL_KEY = os.urandom(32)
ROW_TEXT = "benchmark message text of a typical chat turn, about a hundred characters long...."


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile (no interpolation)."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summary(samples: list[float]) -> dict[str, float]:
    return {
        "median_ms": statistics.median(samples) * 1000,
        "p95_ms": percentile(samples, 95) * 1000,
        "min_ms": min(samples) * 1000,
        "max_ms": max(samples) * 1000,
    }


def bench_single_inserts(conn: EncryptedLibSQLConnection, n: int) -> list[float]:
    samples = []
    for i in range(n):
        started = time.perf_counter()
        conn.execute("INSERT INTO messages (session, body) VALUES (?, ?)", (i % 7, ROW_TEXT))
        samples.append(time.perf_counter() - started)
    return samples


def bench_batches(conn: EncryptedLibSQLConnection, rows: int, repeats: int) -> list[float]:
    batch = [(i % 7, ROW_TEXT) for i in range(rows)]
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        conn.execute_many("INSERT INTO messages (session, body) VALUES (?, ?)", batch)
        samples.append(time.perf_counter() - started)
    return samples


class _Uncounted(EncryptedLibSQLConnection):
    """The baseline of the commit-counter ratio: the same connection without the counter."""

    _COUNT_COMMITS = False


def bench_counter(path: Path, settings: SQLiteSettings, n: int) -> dict[str, dict[str, float]]:
    """Small transactions and autocommit inserts, counted vs not, in alternating rounds."""
    samples: dict[str, list[float]] = {
        f"{kind}_{mode}": [] for kind in ("transaction", "autocommit") for mode in ("on", "off")
    }
    conns = {
        "on": EncryptedLibSQLConnection(path, DB_KEY, settings=settings, seal_key=SEAL_KEY),
        "off": _Uncounted(path, DB_KEY, settings=settings, seal_key=SEAL_KEY),
    }
    sql = "INSERT INTO messages (session, body) VALUES (?, ?)"
    try:
        conns["on"].execute(
            "CREATE TABLE messages (id INTEGER PRIMARY KEY, session INTEGER, body TEXT)"
        )
        rounds = 20
        for _ in range(rounds):
            for mode, conn in conns.items():
                for i in range(n // rounds):
                    started = time.perf_counter()
                    with conn.transaction():
                        conn.execute(sql, (i % 7, ROW_TEXT))
                    samples[f"transaction_{mode}"].append(time.perf_counter() - started)
                    started = time.perf_counter()
                    conn.execute(sql, (i % 7, ROW_TEXT))
                    samples[f"autocommit_{mode}"].append(time.perf_counter() - started)
    finally:
        for conn in conns.values():
            conn.close()
    result = {name: {"runs": len(v), **summary(v)} for name, v in samples.items()}
    for kind in ("transaction", "autocommit"):
        on, off = result[f"{kind}_on"], result[f"{kind}_off"]
        result[f"{kind}_ratio"] = {
            "median": on["median_ms"] / off["median_ms"],
            "p95": on["p95_ms"] / off["p95_ms"],
        }
    return result


def bench_close_check(path: Path, settings: SQLiteSettings, megabytes: int) -> dict[str, Any]:
    """Close after a sealed open vs after an unsealed one (which re-runs quick_check)."""
    blob = os.urandom(1000).hex()  # 2000 characters per row
    with EncryptedLibSQLConnection(path, DB_KEY, settings=settings, seal_key=SEAL_KEY) as conn:
        conn.execute("CREATE TABLE big (id INTEGER PRIMARY KEY, body TEXT)")
        rows = megabytes * 1_000_000 // 2000
        for start in range(0, rows, 5000):
            conn.execute_many(
                "INSERT INTO big (body) VALUES (?)", [(blob,)] * min(5000, rows - start)
            )
    seal = path.with_name(path.name + ".seal")
    samples: dict[str, list[float]] = {
        "close_after_sealed_open": [],
        "close_after_unsealed_open": [],
    }
    for _ in range(3):
        for name in samples:
            if name == "close_after_unsealed_open":
                seal.unlink()  # what a crash leaves: the next session starts unsealed
            conn = EncryptedLibSQLConnection(path, DB_KEY, settings=settings, seal_key=SEAL_KEY)
            started = time.perf_counter()
            conn.close()
            samples[name].append(time.perf_counter() - started)
            assert seal.exists()
    report: dict[str, Any] = {"db_bytes": path.stat().st_size}
    report.update({name: {"runs": len(v), **summary(v)} for name, v in samples.items()})
    return report


def bench_open(path: Path, settings: SQLiteSettings, repeats: int) -> list[float]:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        conn = EncryptedLibSQLConnection(path, DB_KEY, settings=settings, seal_key=SEAL_KEY)
        conn.fetch_value("SELECT count(*) FROM sqlite_master")
        samples.append(time.perf_counter() - started)
        conn.close()  # re-seals, so the next open verifies the seal again
    return samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inserts", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--transactions", type=int, default=2000)
    parser.add_argument("--check-mb", type=int, default=50)
    parser.add_argument("--synchronous", default="NORMAL", choices=["NORMAL", "FULL"])
    parser.add_argument("--out", type=Path, default=Path(".bench/libsql.json"))
    args = parser.parse_args(argv)

    settings = SQLiteSettings(synchronous=args.synchronous)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        with EncryptedLibSQLConnection(path, DB_KEY, settings=settings, seal_key=SEAL_KEY) as conn:
            conn.execute(
                "CREATE TABLE messages (id INTEGER PRIMARY KEY, session INTEGER, body TEXT)"
            )
            single = bench_single_inserts(conn, args.inserts)
            batches = bench_batches(conn, args.batch, args.repeats)
        size = path.stat().st_size
        opens = bench_open(path, settings, args.repeats)
        counter = bench_counter(Path(tmp) / "counter.db", settings, args.transactions)
        close_check = bench_close_check(Path(tmp) / "check.db", settings, args.check_mb)

    report = {
        "benchmark": "libsql",
        "settings": {"journal_mode": settings.journal_mode, "synchronous": settings.synchronous},
        "single_insert": {"runs": args.inserts, **summary(single)},
        "batch_insert": {"rows": args.batch, "runs": args.repeats, **summary(batches)},
        "open_with_seal_verify": {"runs": args.repeats, "db_bytes": size, **summary(opens)},
        "commit_counter": counter,
        "close_quick_check": close_check,
        "machine": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    for name, unit in (
        ("single_insert", f"{args.inserts} committed single-row inserts"),
        ("batch_insert", f"{args.batch}-row execute_many x{args.repeats}"),
        ("open_with_seal_verify", f"open + seal verify of {size / 1e6:.1f} MB x{args.repeats}"),
    ):
        r = report[name]
        assert isinstance(r, dict)
        print(f"{name:22s} {unit}: median {r['median_ms']:.3f} ms, p95 {r['p95_ms']:.3f} ms")
    for kind in ("transaction", "autocommit"):
        on, off = counter[f"{kind}_on"], counter[f"{kind}_off"]
        ratio = counter[f"{kind}_ratio"]
        print(
            f"commit counter, {kind:11s} x{on['runs']}: median {on['median_ms']:.3f} vs "
            f"{off['median_ms']:.3f} ms (x{ratio['median']:.2f}), p95 {on['p95_ms']:.3f} vs "
            f"{off['p95_ms']:.3f} ms (x{ratio['p95']:.2f})"
        )
    for name in ("close_after_sealed_open", "close_after_unsealed_open"):
        r = close_check[name]
        mb = close_check["db_bytes"] / 1e6
        print(f"{name} ({mb:.0f} MB): median {r['median_ms']:.1f} ms, max {r['max_ms']:.1f} ms")
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
