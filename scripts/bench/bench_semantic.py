"""Semantic memory benchmark: hybrid search latency at scale, cold start, RSS, ingest throughput.

    .venv/bin/python scripts/bench/bench_semantic.py [--sizes 10000 100000] [--skip-100k]
        [--queries 200] [--workdir DIR] [--out .bench/semantic.json]

- Search latency: p50/p95 of ``search(mode="hybrid", k=10)`` including the query embedding,
  over deterministic synthetic segments (one user), plus the bm25 / dense / embed-only parts.
  Stores are built once in ``--workdir`` (default ``.bench/semantic-data``) and reused.
- Cold start: a fresh interpreter imports aico, unlocks the key file (default Argon2 cost),
  opens the core database and the store, and runs one search; wall time from the parent,
  phases from the child, and the child's RSS (``VmRSS``/``VmHWM``) with the model loaded.
- Ingest: ``add_segments`` (insert + embed + blobs + Chroma upsert) against the bare
  ``encoder.encode`` on the same texts; the ratio is store throughput / encoder throughput.

Goals (issue 4): p95 <= 25 ms at 100k; cold start <= 1.5 s; RSS <= 350 MB; ratio >= 0.85.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np

PASSPHRASE = "bench passphrase, not a secret"
USER = "bench-user"
T0 = 1_700_000_000.0

_SYLLABLE_TEXT = "ka lo mi ra ve tu sen dor bel fin gar hul ix jo qua ny pre sto wil zar"
_FUNCTION_TEXT = "i you we my your the a an to of and in on for with it is was that this at"


def _words(text: str) -> list[str]:
    return text.split()


SYLLABLES = _words(_SYLLABLE_TEXT)
FUNCTION_WORDS = _words(_FUNCTION_TEXT)


def _content_vocabulary(size: int = 15000) -> list[str]:
    """English words in frequency order: the whole-word entries of MiniLM's WordPiece vocab."""
    import re

    from aico.ai.embeddings import model_package_dir
    from aico.ai.memory.semantic.fts import ENGLISH_STOPWORDS

    vocab = json.loads((model_package_dir() / "tokenizer.json").read_text())["model"]["vocab"]
    ordered = sorted(vocab, key=vocab.__getitem__)
    words = [w for w in ordered if re.fullmatch("[a-z]{3,}", w) and w not in ENGLISH_STOPWORDS]
    return words[:size]


def _rare_words(rng: np.random.Generator, count: int) -> list[str]:
    words: set[str] = set()
    while len(words) < count:
        words.add("".join(rng.choice(SYLLABLES, size=rng.integers(2, 5))).capitalize())
    return sorted(words)


def _zipf_cdf(count: int, shift: float, exponent: float) -> np.ndarray:
    weights = 1 / (np.arange(1, count + 1) + shift) ** exponent
    cdf = np.cumsum(weights)
    return cdf / cdf[-1]


class TextGen:
    """Deterministic chat-like text: Zipf-Mandelbrot English words, function words, names.

    Calibrated so a query matches a similar share of segments as LongMemEval questions do
    against its user turns (LongMemEval: mean 16%, median 12%; this generator: 14% and 12%).
    """

    _content: list[str] | None = None

    def __init__(self, seed: int) -> None:
        if TextGen._content is None:
            TextGen._content = _content_vocabulary()
        self.content = TextGen._content
        self.rng = np.random.default_rng(seed)
        rare = _rare_words(np.random.default_rng(12345), 20000)
        np.random.default_rng(54321).shuffle(rare)
        self.rare = rare
        self.cdf_content = _zipf_cdf(len(self.content), shift=5.0, exponent=1.0)
        self.cdf_rare = _zipf_cdf(len(rare), shift=0.0, exponent=0.8)

    def _word(self) -> str:
        return self.content[int(np.searchsorted(self.cdf_content, self.rng.random()))]

    def _rare(self) -> str:
        return self.rare[int(np.searchsorted(self.cdf_rare, self.rng.random()))]

    def sentence(self) -> str:
        words = []
        for _ in range(int(self.rng.integers(8, 41))):
            draw = self.rng.random()
            if draw < 0.4:
                words.append(FUNCTION_WORDS[int(self.rng.integers(len(FUNCTION_WORDS)))])
            elif draw < 0.43:
                words.append(self._rare())
            else:
                words.append(self._word())
        return " ".join(words).capitalize() + "."

    def query(self) -> str:
        words = [self._word() for _ in range(int(self.rng.integers(2, 5)))]
        if self.rng.random() < 0.5:
            words.insert(int(self.rng.integers(len(words) + 1)), self._rare())
        return "what did I say about " + " ".join(words)


def _percentiles(samples: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples)
    return {
        "n": len(ms),
        "median_ms": round(statistics.median(ms), 3),
        "p95_ms": round(ms[max(0, round(0.95 * len(ms)) - 1)], 3),
        "mean_ms": round(statistics.fmean(ms), 3),
        "max_ms": round(ms[-1], 3),
    }


def _config():
    from aico.config import load_config

    return load_config(env={}, overrides={"security": {"use_keyring": False}})


STORE_SETTINGS: dict = {}  # --set key=value: SemanticConfig.from_mapping overrides


def _open(data_dir: Path, encoder):
    from aico.ai.memory.semantic import SemanticConfig, SemanticMemoryStore
    from aico.ai.memory.stores import open_data_store

    data = open_data_store(data_dir, passphrase=PASSPHRASE, config=_config())
    data.migrate()  # a store built by an older version of this script
    conn = data.connection("core")
    store = SemanticMemoryStore.open(
        conn,
        data.master_key,
        encoder,
        chroma_path=data.layout.chroma,
        config=SemanticConfig.from_mapping(STORE_SETTINGS),
    )
    return data, store


def build(data_dir: Path, size: int, encoder) -> dict:
    """Create (or reuse) a data dir holding ``size`` synthetic segments of one user."""
    from aico.ai.memory.semantic import Segment
    from aico.ai.memory.stores import initialize_data_store
    from aico.data.repositories import UserService
    from aico.layout import DataDir

    if DataDir(data_dir).key_file.exists():
        data, store = _open(data_dir, encoder)
        try:
            if store.count() == size and store.pending_outbox() == 0:
                return {"reused": True}
        finally:
            store.close()
            data.close()
        raise SystemExit(f"{data_dir} holds a different corpus; delete it or pick another dir")
    data = initialize_data_store(data_dir, PASSPHRASE, config=_config())
    UserService(data.connection("core")).create_user("Bench", user_id=USER)
    data.close()
    data, store = _open(data_dir, encoder)
    gen = TextGen(seed=size)
    started = time.perf_counter()
    chunk = 2000
    try:
        for base in range(0, size, chunk):
            segments = [
                Segment(
                    USER,
                    gen.sentence(),
                    T0 + 60.0 * (base + i),
                    conversation_id=f"conv-{(base + i) // 50}",
                    roles=("user",),
                )
                for i in range(min(chunk, size - base))
            ]
            store.add_segments(segments)
            done = base + len(segments)
            rate = done / (time.perf_counter() - started)
            print(f"  ingested {done}/{size} ({rate:.0f} segments/s)", flush=True)
    finally:
        store.close()
        data.close()
    elapsed = time.perf_counter() - started
    return {"reused": False, "ingest_s": round(elapsed, 1), "segments_per_s": round(size / elapsed)}


def latency(data_dir: Path, size: int, encoder, queries: int) -> dict:
    data, store = _open(data_dir, encoder)
    try:
        gen = TextGen(seed=7)
        warm = [gen.query() for _ in range(20)]
        timed = [gen.query() for _ in range(queries)]
        # As a service after start-up: Chroma loaded, the in-memory BM25 built.
        store.wait_ready()
        for q in warm:
            store.search(USER, q, k=10)
        out: dict[str, dict] = {}
        for mode in ("hybrid", "bm25", "dense"):
            samples = []
            for q in timed:
                t = time.perf_counter()
                store.search(USER, q, k=10, mode=mode)
                samples.append(time.perf_counter() - t)
            out[mode] = _percentiles(samples)
        samples = []
        for q in timed:
            t = time.perf_counter()
            encoder.encode_query(q)
            samples.append(time.perf_counter() - t)
        out["embed_query_only"] = _percentiles(samples)
        samples = []
        for q in timed[:50]:
            t = time.perf_counter()
            store.search(USER, q, k=10, conversation_id="conv-3")
            samples.append(time.perf_counter() - t)
        out["hybrid_conversation_filter"] = _percentiles(samples)
        stats = store.postings_stats()
        out["bm25_in_memory"] = None if stats is None else dataclasses.asdict(stats)
        report = store.verify_index()
        out["index_ok"] = report.ok
        out["segments"] = report.segments
        return out
    finally:
        store.close()
        data.close()


def refresh(data_dir: Path, size: int, encoder, writes: int = 5) -> dict:
    """The in-memory BM25 after a write: how soon it serves again, when it is warm, and
    what BM25 searches cost right after. The added segments are deleted at the end, so
    the store keeps its corpus."""
    from aico.ai.memory.semantic import Segment

    data, store = _open(data_dir, encoder)
    index = store._searcher._postings
    if index is None:
        raise SystemExit("the in-memory BM25 is off (bm25_in_memory) or the schema is old")
    try:
        started = time.perf_counter()
        store.wait_ready()
        first = time.perf_counter() - started
        gen = TextGen(seed=11)
        timed = [gen.query() for _ in range(200)]
        for q in timed:
            store.search(USER, q, k=10, mode="bm25")
        served, warmed, after = [], [], []
        added = []
        for i in range(writes):
            segment_id = f"bench-refresh-{i}"
            store.add_segments([Segment(USER, gen.sentence(), T0 - 1e6 - i, segment_id=segment_id)])
            added.append(segment_id)
            started = time.perf_counter()
            while not index._current():
                index.refresh()
                time.sleep(0.002)
            served.append(time.perf_counter() - started)
            store.wait_ready()
            warmed.append(time.perf_counter() - started)
            for q in timed[:50]:
                t = time.perf_counter()
                store.search(USER, q, k=10, mode="bm25")
                after.append(time.perf_counter() - t)
        store.delete_segments(added)
        return {
            "first_build_and_warm_s": round(first, 3),
            "serving_again_after_write": _percentiles(served),
            "warm_after_write": _percentiles(warmed),
            "bm25_after_warm": _percentiles(after),
            "stats": dataclasses.asdict(store.postings_stats()),
        }
    finally:
        store.close()
        data.close()


def baseline(data_dir: Path, size: int, encoder, queries: int) -> dict:
    """Hand-written queries on the same data, timed in the same run as ``latency``.

    - ``fts_stdlib``: stdlib ``sqlite3`` FTS5 in memory over the same BM25 text (the same
      tokenizer, the same OR-of-literals MATCH, top 50): what BM25 costs without aico.
    - ``fts_libsql_raw``: that one statement through the store's encrypted connection, so
      the engine (page decryption, the libsql driver) is told apart from aico's overhead.
    - ``hybrid_raw``: the query embedding, then the stdlib FTS5 query and a raw Chroma
      ``collection.query`` (top 50), one after the other, with no fusion and no text read.
    Each is compared with aico's ``bm25`` and ``hybrid`` searches over the same queries
    (``ratio_*``: aico / baseline, median and p95).
    """
    import sqlite3

    from aico.ai.memory.semantic.fts import DEFAULT_FTS_TOKENIZER, match_expression, query_terms

    data, store = _open(data_dir, encoder)
    try:
        store.wait_ready()
        conn = data.connection("core")
        mem = sqlite3.connect(":memory:")
        mem.execute(f"CREATE VIRTUAL TABLE f USING fts5(body, tokenize='{DEFAULT_FTS_TOKENIZER}')")
        rows = conn.fetch_all("SELECT id, coalesce(fts_text, text) AS body FROM semantic_segments")
        mem.executemany(
            "INSERT INTO f(rowid, body) VALUES (?, ?)", [(r["id"], r["body"]) for r in rows]
        )
        mem.commit()
        collection = store._index._collection(store._collection_name(USER), create=False)
        gen = TextGen(seed=7)
        warm = [gen.query() for _ in range(20)]
        timed = [gen.query() for _ in range(queries)]
        for q in warm:
            store.search(USER, q, k=10)
        exprs = {q: match_expression(query_terms(q)) for q in warm + timed}
        sql_mem = "SELECT rowid, bm25(f) AS s FROM f WHERE f MATCH ? ORDER BY s LIMIT 50"
        sql_raw = (
            "SELECT rowid, bm25(semantic_fts, 1.0, 0.0) AS s FROM semantic_fts "
            "WHERE semantic_fts MATCH ? ORDER BY s LIMIT 50"
        )
        out: dict[str, dict] = {}
        samples: dict[str, list[float]] = {
            k: [] for k in ("fts_stdlib", "fts_libsql_raw", "hybrid_raw", "bm25", "hybrid")
        }
        for q in warm:
            mem.execute(sql_mem, (exprs[q],)).fetchall()
        # Interleaved per query, so a noisy moment hits every method alike.
        for q in timed:
            t = time.perf_counter()
            mem.execute(sql_mem, (exprs[q],)).fetchall()
            samples["fts_stdlib"].append(time.perf_counter() - t)
            t = time.perf_counter()
            conn.fetch_all(sql_raw, ("{body} : (" + exprs[q] + ")",))
            samples["fts_libsql_raw"].append(time.perf_counter() - t)
            t = time.perf_counter()
            vector = store._rotation.rotate(encoder.encode_query(q))
            mem.execute(sql_mem, (exprs[q],)).fetchall()
            collection.query(
                query_embeddings=vector.reshape(1, -1), n_results=50, include=["distances"]
            )
            samples["hybrid_raw"].append(time.perf_counter() - t)
            t = time.perf_counter()
            store.search(USER, q, k=10, mode="bm25")
            samples["bm25"].append(time.perf_counter() - t)
            t = time.perf_counter()
            store.search(USER, q, k=10)
            samples["hybrid"].append(time.perf_counter() - t)
        out = {name: _percentiles(values) for name, values in samples.items()}
        for ours, theirs in (
            ("bm25", "fts_stdlib"),
            ("bm25", "fts_libsql_raw"),
            ("hybrid", "hybrid_raw"),
        ):
            out[f"ratio_{ours}_vs_{theirs}"] = {
                stat: round(out[ours][stat] / out[theirs][stat], 3)
                for stat in ("median_ms", "p95_ms")
            }
        mem.close()
        return out
    finally:
        store.close()
        data.close()


def cold_start_child(data_dir: str) -> None:
    """Run in a fresh interpreter: what the product does before a first search, by phase.

    ``MemoryManager.open`` is the product path: it starts the model and Chroma loads, then
    unlocks (Argon2 at the shipped cost), opens the databases and the stores.
    """
    t0 = time.perf_counter()
    from aico.ai.memory import MemoryManager

    t1 = time.perf_counter()
    manager = MemoryManager.open(Path(data_dir), passphrase=PASSPHRASE, config=_config())
    t2 = time.perf_counter()
    hits = manager.semantic.search(USER, "what did I say about the weekend trip", k=10)
    t3 = time.perf_counter()
    print(json.dumps({"first_result": True}), flush=True)  # the parent's wall clock stops here
    at_first = _memory_mb()
    manager.semantic.wait_ready()
    t4 = time.perf_counter()
    loaded = _memory_mb()
    print(
        json.dumps(
            {
                "import_s": t1 - t0,
                "open_s": t2 - t1,
                "first_search_s": t3 - t2,
                "in_process_total_s": t3 - t0,
                "index_ready_s": t4 - t0,
                "hits": len(hits),
                "rss_mb": at_first["VmRSS"],
                "peak_rss_mb": at_first["VmHWM"],
                "rss_index_loaded_mb": loaded["VmRSS"],
                "peak_rss_index_loaded_mb": loaded["VmHWM"],
            }
        ),
        flush=True,
    )
    manager.close()


def _memory_mb() -> dict[str, float]:
    status = Path("/proc/self/status").read_text()
    return {
        line.split(":")[0]: round(int(line.split()[1]) / 1024, 1)
        for line in status.splitlines()
        if line.startswith(("VmRSS", "VmHWM"))
    }


def cold_start(data_dir: Path, runs: int) -> dict:
    """Median over ``runs`` fresh interpreters; ``wall_s`` ends when the first result is out
    (the child's ``close`` afterwards waits for the background Chroma load: not counted)."""
    results = []
    for _ in range(runs):
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, __file__, "--child-cold-start", str(data_dir)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert process.stdout is not None
        process.stdout.readline()  # {"first_result": true}
        wall = time.perf_counter() - started
        line = process.stdout.readline()
        process.stdout.read()
        if process.wait(timeout=300) != 0 or not line:
            raise SystemExit("cold-start child failed")
        child = json.loads(line)
        child["wall_s"] = wall
        child["wall_until_exit_s"] = time.perf_counter() - started
        results.append(child)
    keys = [k for k in results[0] if k.endswith("_s")]
    summary = {k: round(statistics.median(r[k] for r in results), 3) for k in keys}
    for key in ("rss_mb", "peak_rss_mb", "rss_index_loaded_mb", "peak_rss_index_loaded_mb"):
        summary[key] = max(r[key] for r in results)
    summary["runs"] = runs
    summary["wall_max_s"] = round(max(r["wall_s"] for r in results), 3)
    summary["in_process_max_s"] = round(max(r["in_process_total_s"] for r in results), 3)
    return summary


def ingest_ratio(work: Path, encoder, count: int, rounds: int) -> dict:
    import shutil

    import aico.ai.memory.semantic.schema  # noqa: F401
    from aico.ai.memory.semantic import Segment, SemanticMemoryStore
    from aico.data.libsql import EncryptedLibSQLConnection
    from aico.data.schema import SchemaRegistry
    from aico.security import MasterKey, Purpose

    gen = TextGen(seed=99)
    texts = [gen.sentence() for _ in range(count)]
    bare, piped = [], []
    for r in range(rounds):
        t = time.perf_counter()
        encoder.encode(texts, batch_size=32)
        bare.append(time.perf_counter() - t)
        target = work / f"ingest-{r}"
        shutil.rmtree(target, ignore_errors=True)
        master = MasterKey.generate()
        conn = EncryptedLibSQLConnection(target / "aico.db", master.subkey(Purpose.libsql("core")))
        SchemaRegistry.apply_core_schemas(conn)
        conn.execute("INSERT INTO users (user_id, display_name) VALUES (?, 'b')", (USER,))
        store = SemanticMemoryStore.open(conn, master, encoder, chroma_path=target / "chroma")
        segments = [Segment(USER, text, T0 + i) for i, text in enumerate(texts)]
        t = time.perf_counter()
        store.add_segments(segments)
        piped.append(time.perf_counter() - t)
        store.close()
        conn.close()
        shutil.rmtree(target, ignore_errors=True)
    b, p = statistics.median(bare), statistics.median(piped)
    return {
        "texts": count,
        "rounds": rounds,
        "bare_encoder_s": round(b, 3),
        "store_ingest_s": round(p, 3),
        "bare_texts_per_s": round(count / b),
        "store_texts_per_s": round(count / p),
        "ratio": round(b / p, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--skip-100k", action="store_true", help="drop sizes >= 100000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--cold-runs", type=int, default=5)
    parser.add_argument("--ingest-texts", type=int, default=2000)
    parser.add_argument("--ingest-rounds", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path(".bench/semantic-data"))
    parser.add_argument("--out", type=Path, default=Path(".bench/semantic.json"))
    parser.add_argument(
        "--parts",
        nargs="+",
        default=["ingest", "latency", "baseline", "cold"],
        help="what to measure (ingest latency baseline cold refresh)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=JSON",
        help="store setting for the latency runs, e.g. --set bm25_max_postings=20000",
    )
    parser.add_argument(
        "--encoder",
        choices=("onnx", "hashing"),
        default="onnx",
        help="hashing: fast fake (BM25 latency and agreement only; no cold start)",
    )
    parser.add_argument("--child-cold-start", help=argparse.SUPPRESS)
    args = parser.parse_args()
    for item in args.set:
        key, _, value = item.partition("=")
        STORE_SETTINGS[key] = json.loads(value)
    if args.child_cold_start:
        cold_start_child(args.child_cold_start)
        return

    from aico.ai.embeddings import HashingEncoder, default_encoder

    if args.encoder == "hashing":
        # Lexical latency and BM25 agreement only: the fake encoder ingests 100k segments
        # in minutes where MiniLM takes most of an hour on a busy 2-core machine.
        encoder = HashingEncoder(dimension=384)
    else:
        encoder = default_encoder()
        encoder.load()
    sizes = [s for s in args.sizes if not (args.skip_100k and s >= 100_000)]
    report: dict = {
        "machine": {"cpus": os.cpu_count(), "load_avg": os.getloadavg()},
        "encoder": {"name": encoder.name, "dimension": encoder.dimension},
        "goals": {
            "hybrid_p95_ms_at_100k": 25,
            "cold_start_s": 1.5,
            "rss_mb": 350,
            "ingest_ratio": 0.85,
        },
        "store_settings": STORE_SETTINGS,
        "sizes": {},
    }
    args.workdir.mkdir(parents=True, exist_ok=True)
    if "ingest" in args.parts:
        print("ingest throughput vs bare encoder ...", flush=True)
        report["ingest"] = ingest_ratio(
            args.workdir, encoder, args.ingest_texts, args.ingest_rounds
        )
        print(json.dumps(report["ingest"]), flush=True)
    for size in sizes:
        data_dir = args.workdir / f"size-{size}"
        print(f"[{size}] build ...", flush=True)
        entry = {"build": build(data_dir, size, encoder)}
        if "latency" in args.parts:
            print(f"[{size}] latency ...", flush=True)
            entry["latency"] = latency(data_dir, size, encoder, args.queries)
        if "refresh" in args.parts:
            print(f"[{size}] in-memory BM25 after writes ...", flush=True)
            entry["refresh"] = refresh(data_dir, size, encoder)
        if "baseline" in args.parts:
            print(f"[{size}] hand-written baseline ...", flush=True)
            entry["baseline"] = baseline(data_dir, size, encoder, args.queries)
        if "cold" in args.parts:
            print(f"[{size}] cold start ...", flush=True)
            entry["cold_start"] = cold_start(data_dir, args.cold_runs)
        report["sizes"][str(size)] = entry
        print(json.dumps(entry, indent=1), flush=True)
    report["machine"]["load_avg_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
