"""Ingest benchmark: the MemoryManager's store + consolidation against the bare encoder.

    .venv/bin/python scripts/bench/bench_ingest.py [--sessions 50] [--messages 20]
        [--sentences 2] [--rounds 5] [--paths end_session,end_deferred,ended,idle,add_segments]
        [--warm-index] [--workdir DIR] [--out .bench/ingest.json]

The real encoder (``aico.ai.embeddings.default_encoder``: MiniLM over ONNX, offline, loaded
once; one untimed ingest first pays chromadb's import) and a fresh data dir per
measurement, whose Chroma index loads inside the timed part (``--warm-index``: before it).
Chat-like sessions of ``--messages`` messages (user and assistant in turn, 1 to
``--sentences`` generated sentences each, bench_semantic.py's text) become the default
segments (one per exchange). Every path ends with each segment stored, embedded and in
Chroma (checked after each run), and is timed from the first ``store_message`` to there:

- ``end_session``: per session, its messages then ``end_session`` (what a chat client
  does), then ``semantic.process_outbox()`` (the backend's outbox job) for any work left;
- ``end_deferred``: as ``end_session``, with the ``end_session`` proposed for the manager
  (``deferred_manager``: embed only once ``Consolidator.index_due()``); skipped in a tree
  without it;
- ``ended``: per session, its messages then ``end_session(consolidate=False)``; then one
  ``maintenance()``, which consolidates the ended sessions and drains the outbox;
- ``idle``: every message, then ``maintenance()`` once the sessions went idle (the clock
  is the manager's, advanced by hand);
- ``add_segments``: the same segments through ``semantic.add_segments`` alone (no log).

The bare encoder (``encode`` of the same segment texts, the store's ``embed_batch_size``)
runs right before each path, so each ratio (bare seconds / path seconds, the throughput
ratio) pairs two neighbouring measurements on this shared 2-core host; the paths' order
rotates per round. The report gives median and p95 of every time and ratio, the
``store_message`` share of each path, and ``ratio_after_store`` (bare / the path without
its ``store_message`` calls). ``cpu_ratio`` is the same ratio of the process's CPU time
(every thread), which other load on the host disturbs less, but which leaves out waits
(fsync, locks). Goal (issue 15): ``ratio`` >= 0.85.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

for _key, _value in {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "ANONYMIZED_TELEMETRY": "False",
    "OPENBLAS_NUM_THREADS": "1",
    "TOKENIZERS_PARALLELISM": "false",
}.items():
    os.environ.setdefault(_key, _value)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_semantic import TextGen  # noqa: E402

PASSPHRASE = "bench passphrase, not a secret"
T0 = 1_700_000_000.0
GOAL = 0.85
PATHS = ("end_session", "end_deferred", "ended", "idle", "add_segments")

Session = list[tuple[str, str]]


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile (no interpolation), as the other benches."""
    ordered = sorted(samples)
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]


def summary(samples: list[float], digits: int = 3) -> dict[str, Any]:
    return {
        "n": len(samples),
        "median": round(statistics.median(samples), digits),
        "p5": round(percentile(samples, 5), digits),
        "p95": round(percentile(samples, 95), digits),
        "min": round(min(samples), digits),
        "max": round(max(samples), digits),
    }


def corpus(sessions: int, messages: int, sentences: int, seed: int) -> list[Session]:
    gen = TextGen(seed=seed)
    out: list[Session] = []
    for _ in range(sessions):
        turns: Session = []
        for i in range(messages):
            count = 1 + int(gen.rng.integers(0, sentences))
            turns.append(
                (("user", "assistant")[i % 2], " ".join(gen.sentence() for _ in range(count)))
            )
        out.append(turns)
    return out


def segments_of(user_id: str, sessions: list[Session]) -> list[Any]:
    """The segments consolidation cuts from ``sessions`` (default segmentation)."""
    from aico.ai.memory.semantic import Message, SemanticConfig, segment_messages

    config = SemanticConfig().segmentation
    cut: list[Any] = []
    for s, turns in enumerate(sessions):
        messages = [
            Message(role, text, T0 + i, f"m{s}-{i}") for i, (role, text) in enumerate(turns)
        ]
        cut += segment_messages(user_id, messages, session_id=f"s{s}", config=config)
    return cut


def config() -> Any:
    from aico.config import load_config

    # Cheap Argon2 (as the tests' config): unlocking is not what is measured.
    security = {"use_keyring": False, "kdf_time_cost": 1, "kdf_memory_cost_kib": 8}
    return load_config(env={}, overrides={"security": {**security, "kdf_parallelism": 1}})


class Clock:
    """The manager's clock: one second per message, moved past the idle limit by hand."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def deferred_manager() -> Any:
    """``MemoryManager`` with the proposed ``end_session`` (a preview: manager.py is the
    coordinator's): embed now only once a full outbox batch is queued, else leave it to
    the next outbox pass. None when this tree has no ``Consolidator.index_due``."""
    from aico.ai.memory import MemoryManager
    from aico.ai.memory.consolidation import Consolidator

    if not hasattr(Consolidator, "index_due"):
        return None

    class DeferredEnd(MemoryManager):
        def end_session(self, session_id: str, *, consolidate: bool = True) -> int:
            if not consolidate:
                return super().end_session(session_id, consolidate=False)
            self._check_writable("end_session")
            made = self._consolidator.consolidate(session_id, trigger="session_end", end=True)
            if made and self._consolidator.index_due():
                self._index()
            return made

    return DeferredEnd


class Run:
    """One fresh data dir and manager; ``store`` times the ``store_message`` calls."""

    def __init__(
        self, work: Path, name: str, encoder: Any, warm_index: bool, manager: Any = None
    ) -> None:
        from aico.ai.memory import MemoryManager
        from aico.data.repositories import UserService

        self.dir = work / name
        shutil.rmtree(self.dir, ignore_errors=True)
        self.clock = Clock()
        self.manager = (manager or MemoryManager).initialize(
            self.dir, PASSPHRASE, config=config(), encoder=encoder, clock=self.clock
        )
        self.user = UserService(self.manager.store.connection("core")).create_user("B").user_id
        if warm_index:
            self.manager.semantic.wait_ready(60)
        self.store_s = 0.0

    def store(self, s: int, turns: Session) -> None:
        started = time.perf_counter()
        for role, text in turns:
            self.clock.now += 1.0
            self.manager.store_message(self.user, f"s{s}", role, text)
        self.store_s += time.perf_counter() - started

    def check(self, segments: int) -> None:
        semantic = self.manager.semantic
        stored = semantic.count(self.user)
        pending = semantic.pending_outbox()
        vectors = self.manager.store.connection("core").fetch_value(
            "SELECT count(*) FROM semantic_segments WHERE vector IS NOT NULL"
        )
        if stored != segments or pending or vectors != segments:
            raise RuntimeError(
                f"incomplete ingest: {stored} segments, {vectors} vectors, {pending} queued,"
                f" expected {segments}"
            )

    def close(self) -> None:
        self.manager.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def path_end_session(run: Run, sessions: list[Session]) -> None:
    for s, turns in enumerate(sessions):
        run.store(s, turns)
        run.manager.end_session(f"s{s}")
    run.manager.semantic.process_outbox()


def path_ended(run: Run, sessions: list[Session]) -> None:
    for s, turns in enumerate(sessions):
        run.store(s, turns)
        run.manager.end_session(f"s{s}", consolidate=False)
    run.manager.maintenance()


def path_idle(run: Run, sessions: list[Session]) -> None:
    for s, turns in enumerate(sessions):
        run.store(s, turns)
    idle = float(run.manager.config.get("memory.consolidation.idle_minutes")) * 60.0
    run.clock.now += idle + 60.0
    run.manager.maintenance()


def path_end_deferred(run: Run, sessions: list[Session]) -> None:
    for s, turns in enumerate(sessions):
        run.store(s, turns)
        run.manager.end_session(f"s{s}")
    run.manager.semantic.process_outbox()


def path_add_segments(run: Run, sessions: list[Session]) -> None:
    run.manager.semantic.add_segments(segments_of(run.user, sessions))


RUNNERS: dict[str, Callable[[Run, list[Session]], None]] = {
    "end_session": path_end_session,
    "end_deferred": path_end_deferred,
    "ended": path_ended,
    "idle": path_idle,
    "add_segments": path_add_segments,
}


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from aico.ai.embeddings import default_encoder
    from aico.ai.memory.semantic import SemanticConfig

    encoder = default_encoder()
    encoder.load()
    sessions = corpus(args.sessions, args.messages, args.sentences, args.seed)
    texts = [s.embed_text or s.text for s in segments_of("u", sessions)]
    batch_size = SemanticConfig().embed_batch_size
    # Untimed warm-up: the model's session, and chromadb's import (paid once per process).
    encoder.encode(texts[:64], batch_size=batch_size)
    warm = Run(args.workdir, "warm-up", encoder, args.warm_index)
    try:
        path_end_session(warm, sessions[:2])
    finally:
        warm.close()
    deferred = deferred_manager()
    skipped = [p for p in args.paths if p == "end_deferred" and deferred is None]
    args.paths = [p for p in args.paths if p not in skipped]
    samples: dict[str, dict[str, list[float]]] = {
        p: {key: [] for key in ("bare_s", "total_s", "store_s", "ratio", "ratio_after_store")}
        | {"bare_cpu_s": [], "cpu_s": [], "cpu_ratio": []}
        for p in args.paths
    }
    load_before = os.getloadavg()
    for r in range(args.rounds):
        order = args.paths[r % len(args.paths) :] + args.paths[: r % len(args.paths)]
        for name in order:
            started, cpu = time.perf_counter(), time.process_time()
            encoder.encode(texts, batch_size=batch_size)
            bare, bare_cpu = time.perf_counter() - started, time.process_time() - cpu
            manager = deferred if name == "end_deferred" else None
            run = Run(args.workdir, f"{name}-{r}", encoder, args.warm_index, manager)
            try:
                started, cpu = time.perf_counter(), time.process_time()
                RUNNERS[name](run, sessions)
                total, path_cpu = time.perf_counter() - started, time.process_time() - cpu
                run.check(len(texts))
            finally:
                run.close()
            got = samples[name]
            got["bare_s"].append(bare)
            got["total_s"].append(total)
            got["store_s"].append(run.store_s)
            got["ratio"].append(bare / total)
            got["ratio_after_store"].append(bare / max(total - run.store_s, 1e-9))
            got["bare_cpu_s"].append(bare_cpu)
            got["cpu_s"].append(path_cpu)
            got["cpu_ratio"].append(bare_cpu / path_cpu)
            print(
                f"round {r} {name:12s} bare {bare:6.2f}s  path {total:6.2f}s"
                f"  (store_message {run.store_s:5.2f}s)  ratio {bare / total:.3f}"
                f"  cpu ratio {bare_cpu / path_cpu:.3f}",
                flush=True,
            )
    return {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_avg_before": [round(x, 2) for x in load_before],
            "load_avg_after": [round(x, 2) for x in os.getloadavg()],
        },
        "encoder": {"name": encoder.name, "dimension": encoder.dimension},
        "corpus": {
            "sessions": args.sessions,
            "messages_per_session": args.messages,
            "max_sentences_per_message": args.sentences,
            "messages": args.sessions * args.messages,
            "segments": len(texts),
            "mean_segment_chars": round(statistics.fmean(len(t) for t in texts)),
        },
        "settings": {
            "rounds": args.rounds,
            "warm_index": args.warm_index,
            "embed_batch_size": batch_size,
            "outbox_batch_size": SemanticConfig().outbox_batch_size,
        },
        "goal_ratio": GOAL,
        "skipped": skipped,
        "paths": {
            name: {key: summary(values) for key, values in got.items()}
            for name, got in samples.items()
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--messages", type=int, default=20)
    parser.add_argument("--sentences", type=int, default=2, help="at most, per message")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--paths", type=lambda s: s.split(","), default=list(PATHS))
    parser.add_argument(
        "--warm-index", action="store_true", help="load Chroma before timing (not a fresh store)"
    )
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path(".bench/ingest.json"))
    args = parser.parse_args(argv)
    unknown = [p for p in args.paths if p not in RUNNERS]
    if unknown:
        parser.error(f"unknown paths: {', '.join(unknown)}")
    temporary = args.workdir is None
    args.workdir = Path(tempfile.mkdtemp(prefix="aico-ingest-")) if temporary else args.workdir
    args.workdir.mkdir(parents=True, exist_ok=True)
    try:
        report = measure(args)
    finally:
        if temporary:
            shutil.rmtree(args.workdir, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    for name, got in report["paths"].items():
        ratio, after, cpu = got["ratio"], got["ratio_after_store"], got["cpu_ratio"]
        print(
            f"{name:12s} ratio median {ratio['median']:.3f} p5 {ratio['p5']:.3f}"
            f"  (without store_message {after['median']:.3f}; cpu {cpu['median']:.3f})"
            f"  path {got['total_s']['median']:.2f}s  bare {got['bare_s']['median']:.2f}s"
        )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
