"""Integrations benchmark: ``AicoStore.search`` against LangGraph's own stores, and MCP calls.

    .venv/bin/python scripts/bench/bench_integrations.py [--items 10000] [--queries 200]
        [--mcp-calls 200] [--encoder hashing|minilm] [--workdir DIR]
        [--out .bench/integrations.json]

1. **Corpus** (load timed, not the point): ``--items`` memory-like items (a seeded word
   generator, plus 20 "needle" items each with one unique token) put in the namespace
   ``("bench", "memories")`` of three stores, in batches of 100, with the same embedding
   function: ``AicoStore`` on a fresh encrypted data dir, ``InMemoryStore`` and
   ``SqliteStore`` (``langgraph-checkpoint-sqlite``; skipped with a note if missing) on a
   file. ``--encoder hashing`` (default) is aico's deterministic test encoder, so the
   model's cost does not hide the stores'; ``minilm`` is the shipped model.
2. **Search**: the same ``--queries`` three-word queries (``limit=10``) against each store
   in the same run, in alternating order, after 10 warm-up queries each. Reported: p50 and
   p95 per store and the ratio of AicoStore's to each. Also hit@1 of the needle queries
   (the unique token alone): hybrid BM25 + dense against dense only.
3. **MCP**: the data dir of step 1 served by ``aico.integrations.mcp`` (``serve_stdio``,
   the code ``aico mcp`` runs) in a child process, driven by the SDK's client over stdio:
   ``--mcp-calls`` calls of ``search_memories`` and of ``add_memory``, one at a time.
   Reported: round-trip p50 and p95.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "ANONYMIZED_TELEMETRY": "False",
    "OPENBLAS_NUM_THREADS": "1",
    "TOKENIZERS_PARALLELISM": "false",
}
for _key, _value in ENV.items():
    os.environ.setdefault(_key, _value)

PASSPHRASE = "bench passphrase, not a secret"
NAMESPACE = ("bench", "memories")
NEEDLES = 20
BATCH = 100

SERVER = """
import sys
from aico.ai.embeddings import HashingEncoder, OnnxMiniLMEncoder
from aico.ai.memory import MemoryManager
from aico.config import load_config
from aico.integrations.mcp import build_server, serve_stdio

data_dir, kind = sys.argv[1], sys.argv[2]
encoder = HashingEncoder() if kind == "hashing" else OnnxMiniLMEncoder()
config = load_config(env={}, overrides={"security": {"use_keyring": False}})
memory = MemoryManager.open(data_dir, passphrase=sys.argv[3], config=config,
                            encoder=encoder, interactive=False)
try:
    serve_stdio(build_server(memory, user_id="bench"))
finally:
    memory.close()
"""


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summarize(samples: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in samples]
    return {
        "p50_ms": round(statistics.median(ms), 3),
        "p95_ms": round(percentile(ms, 0.95), 3),
        "n": len(ms),
    }


def corpus(n: int, seed: int = 7) -> tuple[list[dict[str, Any]], list[str]]:
    """``n`` items of 8-20 words from a 3000-word vocabulary, the needles among them."""
    rnd = random.Random(seed)
    vocab = [f"{rnd.choice('bcdfgklmnprstv')}{rnd.choice('aeiou')}{i}" for i in range(3000)]
    topics = ["sister", "garden", "coffee", "train", "doctor", "birthday", "music", "rowing"]
    items = []
    for _ in range(n - NEEDLES):
        words = [*rnd.choices(vocab, k=rnd.randint(8, 20)), rnd.choice(topics)]
        rnd.shuffle(words)
        items.append({"text": " ".join(words), "kind": rnd.choice(["fact", "event", "note"])})
    needles = [f"zq{rnd.randrange(10**9):09d}" for _ in range(NEEDLES)]
    for token in needles:
        words = [*rnd.choices(vocab, k=12), token]
        items.insert(rnd.randrange(len(items)), {"text": " ".join(words), "kind": "needle"})
    return items, needles


def make_encoder(kind: str) -> Any:
    from aico.ai.embeddings import HashingEncoder, OnnxMiniLMEncoder

    if kind == "hashing":
        return HashingEncoder()
    encoder = OnnxMiniLMEncoder()
    encoder.load()
    return encoder


def load(store: Any, items: list[dict[str, Any]]) -> float:
    from langgraph.store.base import PutOp

    start = time.perf_counter()
    for offset in range(0, len(items), BATCH):
        store.batch(
            [
                PutOp(NAMESPACE, f"item-{offset + i}", value)
                for i, value in enumerate(items[offset : offset + BATCH])
            ]
        )
    return time.perf_counter() - start


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def sqlite_connection(path: Path, notes: list[str]) -> Any:
    """A connection ``SqliteStore`` can load sqlite-vec into, or None (with a note why).

    ``SqliteStore(index=...)`` loads the sqlite-vec extension; a Python built without
    loadable extensions (``sqlite3.Connection.enable_load_extension`` missing) cannot, and
    then ``pysqlite3`` (``pysqlite3-binary``, its own SQLite) is used if installed.
    """
    try:
        import langgraph.store.sqlite  # noqa: F401
    except ImportError:
        notes.append("langgraph-checkpoint-sqlite is not installed: SqliteStore skipped")
        return None
    import sqlite3

    driver: Any = sqlite3
    if not hasattr(sqlite3.Connection, "enable_load_extension"):
        try:
            import pysqlite3.dbapi2 as driver  # type: ignore[no-redef]
        except ImportError:
            notes.append(
                "this Python's sqlite3 cannot load extensions and pysqlite3-binary is not "
                "installed: SqliteStore (sqlite-vec) skipped"
            )
            return None
        notes.append(f"SqliteStore on pysqlite3 (SQLite {driver.sqlite_version})")
    return driver.connect(str(path), check_same_thread=False, isolation_level=None)


def bench_search(args: argparse.Namespace, workdir: Path) -> tuple[dict[str, Any], Path]:
    from langgraph.store.memory import InMemoryStore

    from aico.ai.memory import MemoryManager
    from aico.config import load_config
    from aico.integrations.langgraph import AicoStore
    from aico.security import KdfParams

    encoder = make_encoder(args.encoder)

    def embed(texts: list[str]) -> list[list[float]]:
        vectors: list[list[float]] = encoder.encode(texts).tolist()
        return vectors

    index = {"dims": encoder.dimension, "embed": embed}
    items, needles = corpus(args.items)
    params = KdfParams.for_tests()  # the unlock is not what is measured
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
    data_dir = workdir / "data"
    manager = MemoryManager.initialize(data_dir, PASSPHRASE, config=config, encoder=encoder)
    stores: dict[str, Any] = {"aico": AicoStore(manager, encoder=encoder)}
    stores["inmemory"] = InMemoryStore(index=index)  # type: ignore[arg-type]
    notes: list[str] = []
    sqlite_conn = sqlite_connection(workdir / "sqlite.db", notes)
    if sqlite_conn is not None:
        from langgraph.store.sqlite import SqliteStore

        stores["sqlite"] = SqliteStore(sqlite_conn, index=index)  # type: ignore[arg-type]
        stores["sqlite"].setup()
    report: dict[str, Any] = {"notes": notes, "load_s": {}, "search": {}, "needle_hit_at_1": {}}
    try:
        for name, store in stores.items():
            report["load_s"][name] = round(load(store, items), 2)
            print(
                f"loaded {len(items)} items into {name} in {report['load_s'][name]} s", flush=True
            )
        rnd = random.Random(11)
        words = " ".join(i["text"] for i in items[:2000]).split()
        queries = [" ".join(rnd.sample(words, 3)) for _ in range(args.queries)]
        for store in stores.values():
            for q in queries[:10]:
                store.search(NAMESPACE, query=q, limit=10)
        samples: dict[str, list[float]] = {name: [] for name in stores}
        names = list(stores)
        for turn, q in enumerate(queries):
            order = names if turn % 2 == 0 else names[::-1]
            for name in order:
                store = stores[name]
                samples[name].append(
                    timed(lambda s=store, q=q: s.search(NAMESPACE, query=q, limit=10))
                )
        for name in names:
            report["search"][name] = summarize(samples[name])
            hits = 0
            for token in needles:
                found = stores[name].search(NAMESPACE, query=token, limit=1)
                hits += bool(found) and token in found[0].value["text"]
            report["needle_hit_at_1"][name] = f"{hits}/{len(needles)}"
        aico = report["search"]["aico"]
        report["ratio_aico_to"] = {
            name: {
                "p50": round(aico["p50_ms"] / report["search"][name]["p50_ms"], 2),
                "p95": round(aico["p95_ms"] / report["search"][name]["p95_ms"], 2),
            }
            for name in names
            if name != "aico"
        }
    finally:
        if sqlite_conn is not None:
            sqlite_conn.close()
        stores["aico"].close()
        manager.close()
    return report, data_dir


def bench_mcp(args: argparse.Namespace, data_dir: Path, workdir: Path) -> dict[str, Any]:
    import anyio
    from mcp import Client, StdioServerParameters
    from mcp.client.stdio import stdio_client

    script = workdir / "mcp_server.py"
    script.write_text(SERVER)
    params = StdioServerParameters(
        command=sys.executable,
        args=[str(script), str(data_dir), args.encoder, PASSPHRASE],
        env={**{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}, **ENV},
    )
    samples: dict[str, list[float]] = {"search_memories": [], "add_memory": []}

    async def run() -> None:
        with (workdir / "mcp_stderr.txt").open("w") as err:
            async with Client(stdio_client(params, errlog=err)) as client:
                for i in range(5):  # warm-up
                    await client.call_tool("search_memories", {"query": f"garden {i}"})
                for i in range(args.mcp_calls):
                    start = time.perf_counter()
                    result = await client.call_tool("search_memories", {"query": f"sister {i}"})
                    samples["search_memories"].append(time.perf_counter() - start)
                    assert not result.is_error
                    start = time.perf_counter()
                    result = await client.call_tool("add_memory", {"text": f"bench note {i}"})
                    samples["add_memory"].append(time.perf_counter() - start)
                    assert not result.is_error

    anyio.run(run)
    return {name: summarize(values) for name, values in samples.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--mcp-calls", type=int, default=200)
    parser.add_argument("--encoder", choices=["hashing", "minilm"], default="hashing")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path(".bench/integrations.json"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="aico-bench-int-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        search, data_dir = bench_search(args, workdir)
        mcp = bench_mcp(args, data_dir, workdir) if args.mcp_calls else {}
    report = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "args": {k: str(v) for k, v in vars(args).items()},
        **search,
        "mcp_stdio": mcp,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
