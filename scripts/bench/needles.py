"""Benchmark: the generated needle corpus (``needles_data``) through ``SemanticMemoryStore``.

Every conversation is stored with ``add_messages`` under the store's configuration (the
product defaults unless ``--set``), so segmentation, whose words BM25 sees and fusion are
what the product does. Each needle's relevant segment is the one made from its message
(``segments_of_messages``). Reported per kind and mode: share of queries whose segment is
first, in the top 3 and in the top 5 (recall@5), and MRR@10.

    .venv/bin/python scripts/bench/needles.py [--out .bench/needles.json] [--scale 1]
        [--filler 200] [--mode all] [--set fts_roles=[]] [--encoder onnx|hashing]

Goals (issue 15): unique tokens first in hybrid 100 %, two-word names in the hybrid top 3
100 %. ``dated`` queries are asked at the corpus's ``NOW`` (``search(..., now=...)``).
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from needles_data import KINDS, Corpus, Needle, generate

from aico.ai.embeddings import Encoder, HashingEncoder, default_encoder
from aico.ai.memory.semantic import Message, SemanticConfig, SemanticMemoryStore
from aico.data.libsql import EncryptedLibSQLConnection
from aico.data.schema import SchemaRegistry
from aico.security import MasterKey, Purpose

USER = "needle-user"
MODES = ("hybrid", "bm25", "dense")
DEPTH = 10


class Bench:
    """A fresh encrypted core database + local Chroma, as the product opens them; the store
    can be reopened with other search settings over the same data (``reopen``)."""

    def __init__(self, workdir: Path, encoder: Encoder, config: SemanticConfig) -> None:
        import aico.ai.memory.semantic.schema  # noqa: F401  (registers the semantic schema)

        self.workdir, self.encoder = workdir, encoder
        self.master = MasterKey.generate()
        self.conn = EncryptedLibSQLConnection(
            workdir / "aico.db", self.master.subkey(Purpose.libsql("core"))
        )
        SchemaRegistry.apply_core_schemas(self.conn)
        self.conn.execute("INSERT INTO users (user_id, display_name) VALUES (?, ?)", (USER, "b"))
        self.store = self._open(config)

    def _open(self, config: SemanticConfig) -> SemanticMemoryStore:
        return SemanticMemoryStore.open(
            self.conn, self.master, self.encoder, chroma_path=self.workdir / "chroma", config=config
        )

    def reopen(self, config: SemanticConfig) -> SemanticMemoryStore:
        self.store.close()
        self.store = self._open(config)
        self.store.wait_ready()
        return self.store

    def close(self) -> None:
        self.store.close()
        self.conn.close()


def ingest(store: SemanticMemoryStore, corpus: Corpus, user: str = USER) -> dict[str, Any]:
    started = time.perf_counter()
    segments = 0
    for conv in corpus.conversations:
        messages = [Message(t.role, t.text, t.timestamp, t.message_id) for t in conv.turns]
        segments += len(
            store.add_messages(
                user,
                messages,
                conversation_id=conv.conversation_id,
                session_id=conv.conversation_id,
                index=False,
            )
        )
    store.process_outbox()
    return {
        "conversations": len(corpus.conversations),
        "messages": corpus.messages,
        "segments": segments,
        "ingest_s": round(time.perf_counter() - started, 1),
    }


def _search(store: SemanticMemoryStore, needle: Needle, mode: str, user: str) -> list[str]:
    kwargs: dict[str, Any] = {"k": DEPTH, "mode": mode}
    if "now" in inspect.signature(store.search).parameters:
        kwargs["now"] = needle.query_time
    return [h.segment_id for h in store.search(user, needle.query, **kwargs)]


def evaluate(
    store: SemanticMemoryStore, corpus: Corpus, modes: Sequence[str], user: str = USER
) -> dict[str, dict[str, dict[str, float]]]:
    """``{mode: {kind: metrics}}`` plus an ``all`` entry per mode."""
    relevant = {
        n.message_id: set(store.segments_of_messages([n.message_id])) for n in corpus.needles
    }
    results: dict[str, dict[str, dict[str, float]]] = {}
    for mode in modes:
        ranks: dict[str, list[int | None]] = {kind: [] for kind in KINDS}
        for needle in corpus.needles:
            ids = _search(store, needle, mode, user)
            gold = relevant[needle.message_id]
            rank = next((i + 1 for i, sid in enumerate(ids) if sid in gold), None)
            ranks[needle.kind].append(rank)
        per_kind = {kind: _metrics(r) for kind, r in ranks.items() if r}
        per_kind["all"] = _metrics([r for rs in ranks.values() for r in rs])
        results[mode] = per_kind
    return results


def _metrics(ranks: Sequence[int | None]) -> dict[str, float]:
    n = len(ranks)

    def share(k: int) -> float:
        return round(sum(1 for r in ranks if r is not None and r <= k) / n, 4)

    return {
        "queries": n,
        "first": share(1),
        "top3": share(3),
        "recall@5": share(5),
        "recall@10": share(10),
        "mrr@10": round(sum(1 / r for r in ranks if r is not None) / n, 4),
    }


def print_table(results: dict[str, dict[str, dict[str, float]]]) -> None:
    kinds = [k for k in (*KINDS, "all") if k in next(iter(results.values()))]
    print(f"{'mode':7s} {'kind':15s} {'n':>4s} {'first':>6s} {'top3':>6s} {'r@5':>6s} {'mrr':>6s}")
    for mode, per_kind in results.items():
        for kind in kinds:
            m = per_kind[kind]
            print(
                f"{mode:7s} {kind:15s} {int(m['queries']):4d} {m['first']:6.3f} {m['top3']:6.3f}"
                f" {m['recall@5']:6.3f} {m['mrr@10']:6.3f}"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(".bench/needles.json"))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--scale", type=int, default=1)
    parser.add_argument("--filler", type=int, default=200, help="filler conversations")
    parser.add_argument("--mode", choices=(*MODES, "all"), default="all")
    parser.add_argument("--encoder", choices=("onnx", "hashing"), default="onnx")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=JSON",
        help="store setting (SemanticConfig.from_mapping), e.g. --set fts_roles=[]",
    )
    parser.add_argument(
        "--variants",
        type=json.loads,
        default={},
        help="JSON {name: {search setting: value}}, each scored on the same store after the "
        'base run, e.g. \'{"w7": {"fusion_bm25_weight": 0.7}}\'',
    )
    args = parser.parse_args(argv)
    settings = {}
    for item in args.set:
        key, _, value = item.partition("=")
        settings[key] = json.loads(value)
    config = SemanticConfig.from_mapping(settings)
    corpus = generate(args.seed, scale=args.scale, filler_conversations=args.filler)
    encoder: Encoder = default_encoder() if args.encoder == "onnx" else HashingEncoder()
    modes = MODES if args.mode == "all" else (args.mode,)
    variants: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="aico-needles-") as tmp:
        bench = Bench(Path(tmp), encoder, config)
        try:
            stats = ingest(bench.store, corpus)
            print(f"ingested {stats}", file=sys.stderr)
            bench.store.wait_ready()
            started = time.perf_counter()
            results = evaluate(bench.store, corpus, modes)
            stats["evaluate_s"] = round(time.perf_counter() - started, 1)
            for name, extra in args.variants.items():
                store = bench.reopen(SemanticConfig.from_mapping({**settings, **extra}))
                variants[name] = {"settings": extra, "results": evaluate(store, corpus, modes)}
                print(f"variant {name}: {extra}", file=sys.stderr)
                print_table(variants[name]["results"])
        finally:
            bench.close()
    hybrid = results.get("hybrid", {})
    report = {
        "benchmark": "needles",
        "seed": args.seed,
        "scale": args.scale,
        "settings": settings,
        "encoder": {"name": encoder.name, "dimension": encoder.dimension},
        "corpus": stats,
        "goals": {
            "unique_token_first_hybrid": {
                "goal": 1.0,
                "got": hybrid.get("unique_token", {}).get("first"),
            },
            "name_top3_hybrid": {"goal": 1.0, "got": hybrid.get("name", {}).get("top3")},
        },
        "results": results,
        "variants": variants,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2), encoding="utf-8")
    print_table(results)
    print(f"report: {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
