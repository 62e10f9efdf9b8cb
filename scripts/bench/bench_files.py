"""File index throughput: a first index and a no-change re-index of a generated tree.

    .venv/bin/python scripts/bench/bench_files.py [--files 5000] [--runs 3] \
        [--out .bench/files.json]

The tree (Python, TypeScript, Markdown and text files, a few binaries, in nested folders)
is generated in a temporary directory. Each run makes a fresh data dir (fast fake encoder,
so the numbers are the index's, not the model's) and measures:

- ``first_index``: ``FileMemory.index`` of the whole tree (walk, read, hash, detect,
  snippets, relationships, chunks into the semantic store; ``embed=False``: vectors are the
  outbox's work, measured by bench_semantic.py);
- ``reindex_unchanged``: the same call again (stat cache: no file content is read);
- the baseline, in the same run: a hand-written ``os.walk`` + ``hashlib.sha256`` pass over
  the same tree (every file read and hashed; nothing stored), and an ``os.walk`` +
  ``lstat`` pass (what a no-change re-index cannot avoid).

Reports files/s (median and p95 over runs of the per-run rate) and the ratios.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

from aico.ai.embeddings import HashingEncoder
from aico.ai.memory import MemoryManager
from aico.config import load_config
from aico.data.repositories import UserService
from aico.security import KdfParams

WORDS = ["garden", "tomato", "shed", "paint", "green", "river", "notes", "plan", "budget"]


def make_tree(root: Path, n: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    for i in range(n):
        folder = root / f"d{i % 50:02d}" / f"s{i % 7}"
        folder.mkdir(parents=True, exist_ok=True)
        kind = i % 10
        words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(40, 400)))
        if kind < 3:
            body = f'"""Module {i}."""\n\nimport os\nfrom . import m{(i + 1) % n}\n\n\n'
            body += f"class C{i}:\n    def run(self):\n        return {i}\n\n\n# {words}\n"
            (folder / f"m{i}.py").write_text(body)
        elif kind < 5:
            body = f"import {{ x }} from './t{(i + 1) % n}';\n"
            body += f"export function f{i}() {{}}\n// {words}\n"
            (folder / f"t{i}.ts").write_text(body)
        elif kind < 8:
            (folder / f"n{i}.md").write_text(f"# Note {i}\n\n{words}\n\n[next](n{i + 1}.md)\n")
        elif kind < 9:
            (folder / f"f{i}.txt").write_text(words + "\n")
        else:
            (folder / f"b{i}.bin").write_bytes(rng.randbytes(2048) + b"\x00")


def baseline_hash(root: Path) -> int:
    count = 0
    for directory, _, names in os.walk(root):
        for name in names:
            with open(os.path.join(directory, name), "rb") as fh:
                hashlib.sha256(fh.read()).hexdigest()
            count += 1
    return count


def baseline_stat(root: Path) -> int:
    count = 0
    for directory, _, names in os.walk(root):
        for name in names:
            os.lstat(os.path.join(directory, name))
            count += 1
    return count


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def summary(rates: list[float]) -> dict[str, float]:
    return {
        "median_files_per_s": statistics.median(rates),
        "p95_files_per_s": percentile(rates, 5),  # the slow tail of a rate is its low end
        "min_files_per_s": min(rates),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(".bench/files.json"))
    args = parser.parse_args()
    params = KdfParams.for_tests()
    config = load_config(
        env={},
        overrides={
            "security": {
                "use_keyring": False,
                "kdf_time_cost": params.time_cost,
                "kdf_memory_cost_kib": params.memory_cost_kib,
                "kdf_parallelism": params.parallelism,
            }
        },
    )
    first: list[float] = []
    again: list[float] = []
    base_hash: list[float] = []
    base_stat: list[float] = []
    chunks = 0
    with tempfile.TemporaryDirectory(prefix="aico-bench-files-") as tmp:
        tree = Path(tmp) / "tree"
        make_tree(tree, args.files)
        for run in range(args.runs):
            t = time.perf_counter()
            n = baseline_hash(tree)
            base_hash.append(n / (time.perf_counter() - t))
            t = time.perf_counter()
            baseline_stat(tree)
            base_stat.append(n / (time.perf_counter() - t))
            manager = MemoryManager.initialize(
                Path(tmp) / f"data{run}", "bench", config=config, encoder=HashingEncoder(384)
            )
            try:
                UserService(manager.store.connection("core")).create_user("B", user_id="bench")
                t = time.perf_counter()
                report = manager.files.index("bench", tree, embed=False)
                first.append(report.files / (time.perf_counter() - t))
                chunks = report.chunks_added
                t = time.perf_counter()
                report2 = manager.files.index("bench", tree, embed=False)
                again.append(report2.files / (time.perf_counter() - t))
                assert report2.read == 0 and report2.unchanged == report.files
            finally:
                manager.close()
    result = {
        "files": args.files,
        "runs": args.runs,
        "chunks": chunks,
        "first_index": summary(first),
        "reindex_unchanged": summary(again),
        "baseline_walk_sha256": summary(base_hash),
        "baseline_walk_lstat": summary(base_stat),
        "ratio_first_index_to_walk_sha256": statistics.median(first) / statistics.median(base_hash),
        "ratio_reindex_to_walk_lstat": statistics.median(again) / statistics.median(base_stat),
        "ratio_reindex_to_walk_sha256": statistics.median(again) / statistics.median(base_hash),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, sort_keys=True))
    json.dump(result, sys.stdout, indent=2, sort_keys=True)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
