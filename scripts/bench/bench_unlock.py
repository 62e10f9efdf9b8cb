"""Benchmark: open + unlock the key file with the default Argon2id parameters.

Unlock cost is dominated by Argon2id (t=3, m=64 MiB, p=4 by default); this measures what a
user waits for at start-up and what an attacker pays per guess on the same machine.

    .venv/bin/python scripts/bench/bench_unlock.py [--runs 15] [--out .bench/unlock.json]
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

from aico.security import KdfParams, KeyFile

PASSPHRASE = "benchmark passphrase"


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile (no interpolation: with 15 runs p95 is the 15th value)."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--out", type=Path, default=Path(".bench/unlock.json"))
    args = parser.parse_args(argv)

    params = KdfParams()
    with tempfile.TemporaryDirectory() as tmp:
        path = KeyFile.default_path(tmp)
        started = time.perf_counter()
        master = KeyFile.create(path, PASSPHRASE, params)
        create_s = time.perf_counter() - started
        samples: list[float] = []
        for _ in range(args.runs):
            started = time.perf_counter()
            info = KeyFile.load(path)  # open
            unlocked = KeyFile.unlock(info.path, PASSPHRASE)
            samples.append(time.perf_counter() - started)
            assert unlocked == master

    report = {
        "benchmark": "unlock",
        "what": "KeyFile.load + KeyFile.unlock (Argon2id KEK + AES-GCM unwrap)",
        "kdf": {"name": "argon2id", **params.to_dict()},
        "runs": args.runs,
        "create_s": create_s,
        "median_s": statistics.median(samples),
        "p95_s": percentile(samples, 95),
        "min_s": min(samples),
        "max_s": max(samples),
        "samples_s": samples,
        "machine": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"unlock (argon2id t={params.time_cost} m={params.memory_cost_kib} KiB "
        f"p={params.parallelism}), {args.runs} runs: "
        f"median {report['median_s'] * 1000:.1f} ms, p95 {report['p95_s'] * 1000:.1f} ms "
        f"-> {args.out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
