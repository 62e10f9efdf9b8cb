#!/usr/bin/env python3
"""Embedding benchmark: ONNX (default) vs sentence-transformers (reference) MiniLM.

Measures, each in fresh child processes so imports and memory do not leak between cases:
- cold start of the ONNX encoder: import + load + first encode (N runs), RSS after load;
- the same for sentence-transformers (fewer runs: it is slow);
- single-query encode latency (p50/p95 over N queries);
- batch throughput (texts/s) on 1000 deterministic sentences of 30-80 words;
for 1 and 2 intra-op threads. Prints median and p95; writes a JSON report (--out).

    .venv/bin/python scripts/bench/bench_embeddings.py [--out .bench/embeddings.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

SUBJECTS = [
    "my sister", "the doctor", "our landlord", "my manager", "the kids", "Grandma",
    "my running coach", "the new neighbour", "my best friend Ana", "the plumber",
]  # fmt: skip
VERBS = [
    "mentioned", "forgot", "promised", "suggested", "asked about", "complained about",
    "booked", "cancelled", "recommended", "finally finished",
]  # fmt: skip
OBJECTS = [
    "the trip to Lisbon in June", "a vegetarian lasagna recipe", "the dentist appointment",
    "the half marathon training plan", "the broken dishwasher", "a book about Roman history",
    "the quarterly budget review", "the birthday party on Saturday", "a cheaper phone plan",
    "the basil plants on the balcony", "the insurance paperwork", "a jazz concert downtown",
]  # fmt: skip
TAILS = [
    "and I said I would think about it", "because the weather looked terrible",
    "although nobody remembered the exact date", "so we moved everything to next week",
    "which honestly surprised me a little", "while we were waiting for the train",
    "after the long meeting on Tuesday", "before I had my first coffee",
]  # fmt: skip
QUERIES = [
    "What did my sister say about Lisbon?", "When is the dentist appointment?",
    "Which book did my friend recommend?", "What happened with the dishwasher?",
    "Did I finish the marathon plan?", "Where is the jazz concert?",
]  # fmt: skip


def make_texts(count: int, seed: int = 1234) -> list[str]:
    """Deterministic sentences of roughly 30-80 words, built from everyday fragments."""
    rng = random.Random(seed)
    texts = []
    for _ in range(count):
        target = rng.randint(30, 80)
        words: list[str] = []
        while len(words) < target:
            clause = (
                f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} "
                f"{rng.choice(TAILS)}."
            )
            words.extend(clause.split())
        texts.append(" ".join(words[:target]))
    return texts


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "median": statistics.median(values),
        "p95": percentile(values, 95),
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def rss_mb(field: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


# --- child side ------------------------------------------------------------------------


def make_encoder(backend: str, threads: int, cache_dir: Path | None) -> Any:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from aico.ai.embeddings import OnnxMiniLMEncoder, SentenceTransformerEncoder

    if backend == "onnx":
        return OnnxMiniLMEncoder(cache_dir=cache_dir, threads=threads)
    import torch

    torch.set_num_threads(threads)
    return SentenceTransformerEncoder(cache_dir=cache_dir)


def child_cold(args: argparse.Namespace, started: float) -> dict[str, Any]:
    encoder = make_encoder(args.backend, args.threads, args.cache_dir)
    imported = time.perf_counter()
    encoder.load()
    loaded = time.perf_counter()
    rss_loaded = rss_mb()
    encoder.encode_query("What did my sister say about Lisbon?")
    first = time.perf_counter()
    return {
        "import_s": imported - started,
        "load_s": loaded - imported,
        "first_encode_s": first - loaded,
        "total_s": first - started,
        "rss_after_load_mb": rss_loaded,
        "rss_after_first_encode_mb": rss_mb(),
        "torch_imported": "torch" in sys.modules,
    }


def child_warm(args: argparse.Namespace) -> dict[str, Any]:
    encoder = make_encoder(args.backend, args.threads, args.cache_dir)
    encoder.load()
    texts = make_texts(args.texts)
    encoder.encode(texts[:64], batch_size=args.batch_size)  # warm-up
    latencies = []
    for i in range(args.queries):
        start = time.perf_counter()
        encoder.encode_query(QUERIES[i % len(QUERIES)])
        latencies.append((time.perf_counter() - start) * 1000)
    runs = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        encoder.encode(texts, batch_size=args.batch_size)
        runs.append(len(texts) / (time.perf_counter() - start))
    return {
        "query_ms": summary(latencies),
        "throughput_texts_per_s": summary(runs),
        "rss_after_batches_mb": rss_mb(),
        "rss_peak_mb": rss_mb("VmHWM"),
    }


def child_main(args: argparse.Namespace, started: float) -> None:
    result = child_cold(args, started) if args.child == "cold" else child_warm(args)
    print(json.dumps(result))


# --- parent side -----------------------------------------------------------------------


def run_child(args: argparse.Namespace, task: str, backend: str, threads: int) -> dict[str, Any]:
    command = [
        sys.executable, __file__, "--child", task, "--backend", backend,
        "--threads", str(threads), "--queries", str(args.queries), "--texts", str(args.texts),
        "--repeats", str(args.repeats), "--batch-size", str(args.batch_size),
    ]  # fmt: skip
    if args.cache_dir is not None:
        command += ["--cache-dir", str(args.cache_dir)]
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.setdefault("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"child {task}/{backend}/{threads} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_wall_s"] = wall
    return result


def cold_summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ["import_s", "load_s", "first_encode_s", "total_s", "process_wall_s"]
    keys += ["rss_after_load_mb", "rss_after_first_encode_mb"]
    out: dict[str, Any] = {key: summary([run[key] for run in runs]) for key in keys}
    out["torch_imported"] = any(run["torch_imported"] for run in runs)
    return out


def parent_main(args: argparse.Namespace) -> None:
    # Make sure the ONNX file exists so cold starts measure loading, not the one-time export.
    start = time.perf_counter()
    run_child(args, "cold", "onnx", 1)
    report: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "loadavg_at_start": os.getloadavg(),
        },
        "params": {
            "cold_runs": args.cold_runs,
            "st_cold_runs": args.st_cold_runs,
            "queries": args.queries,
            "texts": args.texts,
            "batch_size": args.batch_size,
            "repeats": args.repeats,
        },
        "ensure_export_s": time.perf_counter() - start,
        "cold_start": {},
        "warm": {},
    }
    for backend, runs in (("onnx", args.cold_runs), ("sentence-transformers", args.st_cold_runs)):
        name = "onnx" if backend == "onnx" else "st"
        results = [run_child(args, "cold", name, 1) for _ in range(runs)]
        report["cold_start"][backend] = cold_summary(results)
        c = report["cold_start"][backend]
        print(
            f"cold {backend:22s} total median {c['total_s']['median']:.3f}s "
            f"p95 {c['total_s']['p95']:.3f}s (process wall {c['process_wall_s']['median']:.3f}s)"
            f" | RSS after load {c['rss_after_load_mb']['median']:.0f} MB"
        )
    for backend in ("onnx", "st"):
        for threads in (1, 2):
            result = run_child(args, "warm", backend, threads)
            label = f"{'onnx' if backend == 'onnx' else 'sentence-transformers'}/threads={threads}"
            report["warm"][label] = result
            q, t = result["query_ms"], result["throughput_texts_per_s"]
            print(
                f"warm {label:32s} query p50 {q['median']:.1f} ms p95 {q['p95']:.1f} ms | "
                f"batch {t['median']:.1f} texts/s (p95-slowest {t['min']:.1f}) | "
                f"RSS {result['rss_after_batches_mb']:.0f} MB peak {result['rss_peak_mb']:.0f} MB"
            )
    report["machine"]["loadavg_at_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


def main() -> None:
    started = time.perf_counter()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / ".bench" / "embeddings.json")
    parser.add_argument("--cache-dir", type=Path, default=None, help="model cache directory")
    parser.add_argument("--cold-runs", type=int, default=5)
    parser.add_argument("--st-cold-runs", type=int, default=2)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--texts", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--child", choices=["cold", "warm"], help=argparse.SUPPRESS)
    parser.add_argument("--backend", choices=["onnx", "st"], default="onnx", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main(args, started)
    else:
        parent_main(args)


if __name__ == "__main__":
    main()
