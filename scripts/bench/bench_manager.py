"""MemoryManager benchmark: the public API, the working tree against a baseline commit.

    .venv/bin/python scripts/bench/bench_manager.py [--baseline ff8ca57] [--current-rev REV]
        [--sizes 10000,100000] [--quick] [--rounds 3] [--parts store,consolidate,assemble]
        [--workdir DIR] [--keep] [--out .bench/manager.json]

Measured through ``MemoryManager``'s public API only (the timed parts), with the fake
``HashingEncoder`` so the model's cost does not hide the manager's:

- ``store_message``: one chat turn, at the shipped durability and with
  ``[memory.working] metasync = false`` (goal p50 <= 1 ms there; one fdatasync costs ~4 ms
  on this disk and the default mode pays two);
- consolidation: ``end_session`` of sessions of 20 messages (10 exchanges): per-session
  latency, and messages consolidated per second (end_session calls plus the final
  ``maintenance()`` that drains whatever indexing is left);
- ``assemble_context`` (20 recent turns, 30 facts, default budget) at each ``--sizes``
  count of long-term segments. The corpus is built fast, as bench_semantic.py does:
  ``segment_messages`` + ``add_segments`` on the manager's semantic store (a shim, not timed),
  with no message-log rows behind it; both sides build it the same way from the same text.

Both sides run *this file's* measurement code in child interpreters, with
``PYTHONPATH=<tree>/shared`` (ahead of the editable install): the baseline in a temporary
``git worktree`` of ``--baseline``, the current side in this working tree (or in a worktree
of ``--current-rev``, to compare two revisions). A round starts one child per side; the
parent then asks them for small batches in turn (ABBA...), only one working at a time, so
machine noise on this shared host hits both alike; samples are pooled over the rounds.
Every ratio is current / baseline of a cost (ms), so > 1.10 is printed as REGRESSION. A
failing measurement is reported as an error and the run goes on; the exit status is 0.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
PASSPHRASE = "bench passphrase, not a secret"
RESULT = "BENCH-RESULT "
THRESHOLD = 1.10
T0 = 1_700_000_000.0
SESSION_MESSAGES = 20
RECENT_TURNS = 20
FACTS = 30

ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "ANONYMIZED_TELEMETRY": "False",
    "OPENBLAS_NUM_THREADS": "1",
    "TOKENIZERS_PARALLELISM": "false",
}
for _key, _value in ENV.items():
    os.environ.setdefault(_key, _value)

_FUNCTION_TEXT = "i you we my your the a an to of and in on for with it is was that this at"
_SYLLABLE_TEXT = "ka lo mi ra ve tu sen dor bel fin gar hul ix jo qua ny pre sto wil zar"
FUNCTION_WORDS = _FUNCTION_TEXT.split(" ")
SYLLABLES = _SYLLABLE_TEXT.split(" ")


# ---- statistics ---------------------------------------------------------------------------


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile (no interpolation), as bench_working_memory.py."""
    ordered = sorted(samples)
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]


def summarize(samples: list[float]) -> dict[str, Any]:
    """Seconds in, milliseconds out."""
    return {
        "n": len(samples),
        "median_ms": round(statistics.median(samples) * 1000, 4),
        "p95_ms": round(percentile(samples, 95) * 1000, 4),
        "mean_ms": round(statistics.fmean(samples) * 1000, 4),
        "min_ms": round(min(samples) * 1000, 4),
        "max_ms": round(max(samples) * 1000, 4),
    }


# ---- child side: runs under PYTHONPATH=<tree>/shared --------------------------------------


def _config(metasync: bool | None = None) -> Any:
    from aico.config import load_config

    overrides: dict[str, Any] = {
        # cheap Argon2 (as the tests' config): unlocking is not what is measured
        "security": {
            "use_keyring": False,
            "kdf_time_cost": 1,
            "kdf_memory_cost_kib": 8,
            "kdf_parallelism": 1,
        }
    }
    if metasync is not None:
        overrides["memory"] = {"working": {"metasync": metasync}}
    return load_config(env={}, overrides=overrides)


def _encoder() -> Any:
    from aico.ai.embeddings import HashingEncoder

    return HashingEncoder()


def _initialize(data_dir: Path, config: Any) -> tuple[Any, str]:
    from aico.ai.memory import MemoryManager
    from aico.data.repositories import UserService

    manager = MemoryManager.initialize(data_dir, PASSPHRASE, config=config, encoder=_encoder())
    user = UserService(manager.store.connection("core")).create_user("Bench").user_id
    return manager, user


def _semantic(manager: Any) -> Any:
    """Shim (untimed corpus build only): the manager's semantic store."""
    for name in ("semantic", "_semantic"):
        store = getattr(manager, name, None)
        if store is not None and hasattr(store, "add_segments"):
            return store
    raise RuntimeError("the manager exposes no semantic store with add_segments")


def _wait_index(manager: Any) -> str:
    """Shim: load the Chroma index before timing (searches before it are exact scans)."""
    for target in (manager, getattr(manager, "semantic", None)):
        wait = getattr(target, "wait_ready", None)
        if callable(wait):
            wait()
            return f"{type(target).__name__}.wait_ready"
    return "none"


def _texts(path: str) -> dict[str, list[str]]:
    data: dict[str, list[str]] = json.loads(Path(path).read_text())
    return data


def _timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def child_generate(spec: dict[str, Any]) -> dict[str, Any]:
    """Deterministic chat-like text, as bench_semantic.TextGen, vectorised (200k in ~1 s).

    Words: 40 % function words, 3 % invented names (Zipf 0.8), the rest English words in
    MiniLM's vocabulary order minus the product stopwords (Zipf-Mandelbrot, shift 5).
    """
    import re

    import numpy as np

    from aico.ai.embeddings import model_package_dir

    try:
        from aico.ai.memory.semantic.fts import ENGLISH_STOPWORDS
    except ImportError:
        ENGLISH_STOPWORDS = frozenset()
    vocab = json.loads((model_package_dir() / "tokenizer.json").read_text())["model"]["vocab"]
    ordered = sorted(vocab, key=vocab.__getitem__)
    content = [w for w in ordered if re.fullmatch("[a-z]{3,}", w) and w not in ENGLISH_STOPWORDS]
    content = np.array(content[:15000], dtype=object)
    name_rng = np.random.default_rng(12345)
    names: set[str] = set()
    while len(names) < 20000:
        names.add("".join(name_rng.choice(SYLLABLES, size=name_rng.integers(2, 5))).capitalize())
    rare = np.array(sorted(names), dtype=object)
    np.random.default_rng(54321).shuffle(rare)
    function = np.array(FUNCTION_WORDS, dtype=object)

    def cdf(count: int, shift: float, exponent: float) -> Any:
        weights = 1 / (np.arange(1, count + 1) + shift) ** exponent
        out = np.cumsum(weights)
        return out / out[-1]

    cdf_content, cdf_rare = cdf(len(content), 5.0, 1.0), cdf(len(rare), 0.0, 0.8)
    rng = np.random.default_rng(int(spec["seed"]))

    def sentences(count: int, low: int, high: int) -> list[str]:
        lengths = rng.integers(low, high, size=count)
        total = int(lengths.sum())
        kind, u = rng.random(total), rng.random(total)
        words = content[np.minimum(np.searchsorted(cdf_content, u), len(content) - 1)]
        named = kind < 0.43
        words[named] = rare[np.minimum(np.searchsorted(cdf_rare, u[named]), len(rare) - 1)]
        func = kind < 0.4
        words[func] = function[(u[func] * len(function)).astype(int)]
        out, start = [], 0
        for length in lengths.tolist():
            out.append(" ".join(words[start : start + length]).capitalize() + ".")
            start += length
        return out

    def queries(count: int) -> list[str]:
        out = []
        for _ in range(count):
            draws = rng.random(int(rng.integers(2, 5)))
            idx = np.minimum(np.searchsorted(cdf_content, draws), len(content) - 1)
            words = [str(w) for w in content[idx]]
            if rng.random() < 0.5:
                name = rare[min(np.searchsorted(cdf_rare, rng.random()), len(rare) - 1)]
                words.insert(int(rng.integers(len(words) + 1)), str(name))
            out.append("what did I say about " + " ".join(words))
        return out

    count = int(spec["count"])
    texts = {
        "user": sentences(count, 8, 41),
        "assistant": sentences(count, 8, 26),
        "queries": queries(int(spec["queries"])),
        "facts": [
            f"The user mentioned that {s[0].lower()}{s[1:]}" for s in sentences(FACTS, 6, 16)
        ],
    }
    Path(spec["out"]).write_text(json.dumps(texts))
    return {"count": count, "mean_user_chars": round(statistics.fmean(map(len, texts["user"])))}


class StoreTask:
    """``store_message`` into one session of a fresh data dir; a batch is ``k`` calls."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.texts = _texts(spec["texts"])["user"]
        self.manager, self.user = _initialize(Path(spec["dir"]), _config(spec["metasync"]))
        self.i = 0
        for _ in range(20):  # create the session, warm up
            self._store()

    def _store(self) -> None:
        role = ("user", "assistant")[self.i % 2]
        text = self.texts[self.i % len(self.texts)]
        self.i += 1
        self.manager.store_message(self.user, "s-store", role, text)

    def batch(self, k: int) -> list[float]:
        return [_timed(self._store) for _ in range(k)]

    def finish(self) -> dict[str, Any]:
        self.manager.close()
        return {}


class ConsolidateTask:
    """Sessions of 20 messages (10 exchanges); a batch stores and ends ``k`` sessions and
    times only their ``end_session``. ``finish`` times the ``maintenance()`` that drains what
    indexing is left, so deferring work past ``end_session`` is still counted."""

    def __init__(self, spec: dict[str, Any]) -> None:
        data = _texts(spec["texts"])
        self.users, self.replies = data["user"], data["assistant"]
        self.manager, self.user = _initialize(Path(spec["dir"]), _config())
        self.sessions = self.cursor = self.segments = 0
        self.batch(2)  # the first sessions load Chroma: not counted
        self.sessions = self.segments = 0

    def batch(self, k: int) -> list[float]:
        samples = []
        for _ in range(k):
            session = f"s-{self.cursor}"
            for _ in range(SESSION_MESSAGES // 2):
                i = self.cursor % len(self.users)
                self.cursor += 1
                for role, text in (("user", self.users[i]), ("assistant", self.replies[i])):
                    self.manager.store_message(
                        self.user, session, role, text, conversation_id=session
                    )
            started = time.perf_counter()
            made = self.manager.end_session(session)
            samples.append(time.perf_counter() - started)
            self.sessions += 1
            self.segments += int(made or 0)
        return samples

    def finish(self) -> dict[str, Any]:
        try:
            drain = _timed(self.manager.maintenance)
        finally:
            self.manager.close()
        return {
            "messages": self.sessions * SESSION_MESSAGES,
            "segments": self.segments,
            "drain_s": drain,
        }


class AssembleTask:
    """``assemble_context`` on a built corpus, with 20 recent turns in the session."""

    def __init__(self, spec: dict[str, Any]) -> None:
        from aico.ai.memory import MemoryManager

        data = _texts(spec["texts"])
        data_dir = Path(spec["dir"])
        self.user = json.loads((data_dir / "bench-user.json").read_text())["user_id"]
        opened = time.perf_counter()
        self.manager = MemoryManager.open(
            data_dir, passphrase=PASSPHRASE, config=_config(), encoder=_encoder()
        )
        self.open_s = time.perf_counter() - opened
        self.session = f"live-{spec['round']}"
        for i in range(RECENT_TURNS):
            role = ("user", "assistant")[i % 2]
            self.manager.store_message(self.user, self.session, role, data["user"][-1 - i])
        self.index_wait = _wait_index(self.manager)
        self.queries, self.i = data["queries"], 0
        self.memories = self.tokens = self.calls = 0
        self.batch(20)  # warm up
        self.memories = self.tokens = self.calls = 0

    def batch(self, k: int) -> list[float]:
        samples = []
        for _ in range(k):
            query = self.queries[self.i % len(self.queries)]
            self.i += 1
            started = time.perf_counter()
            bundle = self.manager.assemble_context(self.user, self.session, query, max_tokens=1500)
            samples.append(time.perf_counter() - started)
            self.memories += len(bundle.memories)
            self.tokens += bundle.token_estimate
            self.calls += 1
        return samples

    def finish(self) -> dict[str, Any]:
        self.manager.close()
        calls = max(1, self.calls)
        return {
            "open_s": self.open_s,
            "index_wait": self.index_wait,
            "mean_memories": self.memories / calls,
            "mean_token_estimate": self.tokens / calls,
        }


def child_build(spec: dict[str, Any]) -> dict[str, Any]:
    """A corpus of ``size`` segments (10 exchanges a session) for one user; not timed API."""
    from aico.ai.memory.semantic import Message, segment_messages
    from aico.data.repositories import FactRepository

    data = _texts(spec["texts"])
    users, replies = data["user"], data["assistant"]
    size, data_dir = int(spec["size"]), Path(spec["dir"])
    started = time.perf_counter()
    manager, user = _initialize(data_dir, _config())
    try:
        facts = FactRepository(manager.store.connection("core"))
        for fact in data["facts"]:
            facts.remember(user, fact)
        semantic = _semantic(manager)
        segmentation = getattr(getattr(semantic, "config", None), "segmentation", None)
        exchanges = SESSION_MESSAGES // 2
        chunk, added = 200, 0  # sessions per add_segments call: 2,000 segments
        for first in range(0, math.ceil(size / exchanges), chunk):
            segments = []
            for s in range(first, min(first + chunk, math.ceil(size / exchanges))):
                messages = []
                for e in range(min(exchanges, size - s * exchanges)):
                    i = s * exchanges + e
                    ts = T0 + 3600.0 * s + 60.0 * e
                    messages += [
                        Message("user", users[i], ts),
                        Message("assistant", replies[i], ts + 20),
                    ]
                segments += segment_messages(
                    user,
                    messages,
                    conversation_id=f"conv-{s}",
                    session_id=f"hist-{s}",
                    config=segmentation,
                )
            semantic.add_segments(segments)
            added += len(segments)
            rate = added / (time.perf_counter() - started)
            print(f"  [{spec['side']}] {added}/{size} segments ({rate:.0f}/s)", file=sys.stderr)
        manager.maintenance()
        count = semantic.count() if hasattr(semantic, "count") else None
    finally:
        manager.close()
    (data_dir / "bench-user.json").write_text(json.dumps({"user_id": user}))
    elapsed = time.perf_counter() - started
    return {"segments": count, "added": added, "build_s": round(elapsed, 2)}


ONE_SHOT: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "generate": child_generate,
    "build": child_build,
}
SERVED: dict[str, Any] = {
    "store": StoreTask,
    "consolidate": ConsolidateTask,
    "assemble": AssembleTask,
}


def _reply(payload: dict[str, Any]) -> None:
    print(RESULT + json.dumps(payload), flush=True)


def child_main(raw: str) -> None:
    """One-shot tasks answer once; served tasks answer READY, then one line per command
    read from stdin (``{"batch": k}`` -> samples, ``{"stop": true}`` -> final details)."""
    spec = json.loads(raw)
    import aico

    where = {"aico_path": str(Path(aico.__file__).resolve().parent)}
    if spec["task"] in ONE_SHOT:
        _reply({**ONE_SHOT[spec["task"]](spec), **where})
        return
    task = SERVED[spec["task"]](spec)
    _reply({"ready": True, **where})
    for line in sys.stdin:
        command = json.loads(line)
        if command.get("stop"):
            _reply(task.finish())
            return
        _reply({"samples": task.batch(int(command["batch"]))})


# ---- parent side --------------------------------------------------------------------------


def git(*args: str) -> str:
    done = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


class Side:
    """One tree whose ``shared`` directory the children import aico from."""

    def __init__(self, name: str, label: str, tree: Path, commit: str, worktree: bool) -> None:
        self.name, self.label, self.tree, self.commit = name, label, tree, commit
        self.worktree = worktree

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rev": self.label, "commit": self.commit, "tree": str(self.tree)}
        if not self.worktree:
            dirty = git("status", "--short", "--", "shared").splitlines()
            out["uncommitted_in_shared"] = dirty
        return out


def add_worktree(rev: str, path: Path) -> str:
    commit = git("rev-parse", "--verify", f"{rev}^{{commit}}")
    git("worktree", "add", "--detach", str(path), commit)
    return commit


def remove_worktree(path: Path) -> None:
    try:
        git("worktree", "remove", "--force", str(path))
    except RuntimeError as exc:
        print(f"warning: {exc}", file=sys.stderr)
        shutil.rmtree(path, ignore_errors=True)
        git("worktree", "prune")


def _child_env(side: Side) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(ENV, PYTHONPATH=str(side.tree / "shared"))
    return env


def _failure(task: str, code: int | None, log: Path) -> RuntimeError:
    """The child's last stderr line and the innermost frame it names."""
    lines = log.read_text().strip().splitlines() or ["(no output)"]
    where = [ln.strip() for ln in lines if ln.strip().startswith('File "')][-1:]
    detail = " ".join([lines[-1].strip(), *(f"[{w}]" for w in where)])
    return RuntimeError(f"{task} exited {code}: {detail} (log {log.name})")


class Child:
    """A served task in a child interpreter, answering one command at a time."""

    def __init__(self, side: Side, task: str, spec: dict[str, Any], log: Path) -> None:
        self.side, self.task, self.log = side, task, log
        self._err = log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)],
            cwd=side.tree,
            env=_child_env(side),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._err,
            text=True,
        )

    def _read(self, timeout: float) -> dict[str, Any]:
        assert self.process.stdout is not None
        timer = threading.Timer(timeout, self.process.kill)
        timer.start()
        try:
            for line in self.process.stdout:
                if line.startswith(RESULT):
                    reply: dict[str, Any] = json.loads(line[len(RESULT) :])
                    return reply
        finally:
            timer.cancel()
        code = self.process.wait()
        self._err.flush()
        raise _failure(self.task, code, self.log)

    def ready(self, timeout: float) -> None:
        reply = self._read(timeout)
        expected = str((self.side.tree / "shared" / "aico").resolve())
        if reply.get("aico_path") != expected:
            self.kill()
            raise RuntimeError(f"imported aico from {reply.get('aico_path')}, not {expected}")

    def send(self, command: dict[str, Any], timeout: float) -> dict[str, Any]:
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(json.dumps(command) + "\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            pass  # it died; _read reports why
        return self._read(timeout)

    def stop(self, timeout: float) -> dict[str, Any]:
        try:
            return self.send({"stop": True}, timeout)
        finally:
            self.kill()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self._err.close()


class Runner:
    def __init__(self, work: Path, texts: Path) -> None:
        self.work, self.texts, self.calls = work, texts, 0

    def _spec(self, side: Side, task: str, spec: dict[str, Any]) -> tuple[dict[str, Any], Path]:
        self.calls += 1
        log = self.work / f"child-{self.calls:03d}-{side.name}-{task}.log"
        return {"task": task, "texts": str(self.texts), "side": side.name, **spec}, log

    def run(self, side: Side, task: str, timeout: float, **spec: Any) -> dict[str, Any]:
        """One one-shot child; raises RuntimeError naming its error when it fails."""
        full, log = self._spec(side, task, spec)
        with log.open("w") as err:
            try:
                done = subprocess.run(
                    [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(full)],
                    cwd=side.tree,
                    env=_child_env(side),
                    stdout=subprocess.PIPE,
                    stderr=err,
                    text=True,
                    timeout=timeout,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                raise RuntimeError(f"{task} timed out after {timeout:.0f} s") from None
        lines = [ln for ln in done.stdout.splitlines() if ln.startswith(RESULT)]
        if done.returncode != 0 or not lines:
            raise _failure(task, done.returncode, log)
        result: dict[str, Any] = json.loads(lines[-1][len(RESULT) :])
        expected = str((side.tree / "shared" / "aico").resolve())
        if result.pop("aico_path", None) != expected:
            raise RuntimeError(f"{task} did not import aico from {expected}")
        return result

    def start(self, side: Side, task: str, timeout: float, **spec: Any) -> Child:
        full, log = self._spec(side, task, spec)
        child = Child(side, task, full, log)
        try:
            child.ready(timeout)
        except BaseException:
            child.kill()
            raise
        return child


def fdatasync_probe(directory: Path, runs: int = 200) -> dict[str, Any]:
    """The floor under any durable commit here: one 4 KB write + fdatasync (for context)."""
    path = directory / "fsync.probe"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.write(fd, b"\0" * (runs * 4096))
        os.fsync(fd)
        samples = []
        for i in range(runs):
            os.pwrite(fd, b"x" * 4096, i * 4096)
            samples.append(_timed(lambda: os.fdatasync(fd)))
    finally:
        os.close(fd)
        path.unlink()
    return summarize(samples)


def alternate(sides: list[Side], turn: int) -> list[Side]:
    """Turn t runs the sides in turn, the order reversed every other turn (ABBA...)."""
    return sides if turn % 2 == 0 else sides[::-1]


class Measurement:
    """Pooled samples of one measurement per side, and what went wrong."""

    def __init__(self, name: str, extra: Callable[[list[dict[str, Any]]], dict[str, Any]]) -> None:
        self.name, self.extra = name, extra
        self.runs: dict[str, list[dict[str, Any]]] = {"current": [], "baseline": []}
        self.errors: dict[str, list[str]] = {"current": [], "baseline": []}

    def error(self, side: Side, exc: BaseException, what: str = "") -> None:
        message = f"{what}{type(exc).__name__}: {exc}"
        print(f"  {self.name} [{side.name}] ERROR {message}", flush=True)
        self.errors[side.name].append(message)

    def interleaved(
        self,
        runner: Runner,
        sides: list[Side],
        task: str,
        spec: Callable[[Side, int], dict[str, Any]],
        rounds: int,
        total: int,
        batch: int,
    ) -> None:
        """Per round a fresh child per side, then ``total`` samples each in batches of
        ``batch``, the sides taking turns batch by batch so noise hits both alike."""
        for r in range(rounds):
            print(f"{self.name} round {r + 1}/{rounds}", flush=True)
            children: dict[str, Child] = {}
            samples: dict[str, list[float]] = {}
            for side in alternate(sides, r):
                try:
                    children[side.name] = runner.start(side, task, 1800, **spec(side, r))
                    samples[side.name] = []
                except Exception as exc:
                    self.error(side, exc)
            done, turn = 0, r
            while done < total and children:
                k = min(batch, total - done)
                for side in alternate(sides, turn):
                    child = children.get(side.name)
                    if child is None:
                        continue
                    try:
                        samples[side.name] += child.send({"batch": k}, 1800)["samples"]
                    except Exception as exc:
                        self.error(side, exc)
                        child.kill()
                        del children[side.name]
                done, turn = done + k, turn + 1
            for name, child in children.items():
                try:
                    details = child.stop(600)
                    self.runs[name].append({"samples": samples[name], **details})
                except Exception as exc:
                    self.error(child.side, exc)

    def side_report(self, name: str) -> dict[str, Any]:
        runs = self.runs[name]
        if not runs:
            return {"error": "; ".join(self.errors[name]) or "not run"}
        samples = [s for run in runs for s in run["samples"]]
        out = summarize(samples)
        out["rounds"] = len(runs)
        out["round_medians_ms"] = [
            round(statistics.median(run["samples"]) * 1000, 4) for run in runs
        ]
        out.update(self.extra(runs))
        if self.errors[name]:
            out["errors"] = self.errors[name]
        return out

    def report(self) -> dict[str, Any]:
        current, baseline = self.side_report("current"), self.side_report("baseline")
        entry: dict[str, Any] = {"current": current, "baseline": baseline, "ratio": {}}
        for key in ("median_ms", "p95_ms", "ms_per_message"):
            if key in current and key in baseline and baseline[key] > 0:
                entry["ratio"][key.removesuffix("_ms")] = round(current[key] / baseline[key], 3)
        entry["regression"] = any(r > THRESHOLD for r in entry["ratio"].values())
        return entry


def _throughput(runs: list[dict[str, Any]]) -> dict[str, Any]:
    n = sum(len(run["samples"]) for run in runs)
    total = sum(sum(run["samples"]) for run in runs)
    return {"calls_per_s": round(n / total, 1)}


def _consolidation(runs: list[dict[str, Any]]) -> dict[str, Any]:
    messages = sum(run["messages"] for run in runs)
    total = sum(sum(run["samples"]) + run["drain_s"] for run in runs)
    return {
        "messages": messages,
        "segments": sum(run["segments"] for run in runs),
        "messages_per_s": round(messages / total, 1),
        "ms_per_message": round(total / messages * 1000, 4),
        "drain_ms_mean": round(statistics.fmean(run["drain_s"] for run in runs) * 1000, 2),
    }


def _assembly(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out = _throughput(runs)
    out["open_s_median"] = round(statistics.median(run["open_s"] for run in runs), 3)
    out["index_wait"] = runs[0]["index_wait"]
    out["mean_memories"] = round(statistics.fmean(run["mean_memories"] for run in runs), 2)
    out["mean_token_estimate"] = round(
        statistics.fmean(run["mean_token_estimate"] for run in runs), 1
    )
    return out


def run_all(args: argparse.Namespace, sides: list[Side], runner: Runner) -> dict[str, Any]:
    measurements: dict[str, Any] = {}
    data = runner.work / "data"

    def fresh(name: str) -> Path:
        path = data / name
        shutil.rmtree(path, ignore_errors=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    if "store" in args.parts:
        for name, metasync in (
            ("store_message_default", None),
            ("store_message_metasync_off", False),
        ):
            m = Measurement(name, _throughput)

            def store_spec(
                side: Side, r: int, n: str = name, ms: bool | None = metasync
            ) -> dict[str, Any]:
                return {"dir": str(fresh(f"{n}-{r}-{side.name}")), "metasync": ms}

            m.interleaved(
                runner,
                sides,
                "store",
                store_spec,
                args.rounds,
                args.appends,
                args.batch["store"],
            )
            measurements[name] = m.report()
            measurements[name]["goal_p50_ms"] = 1.0 if metasync is False else None
            shutil.rmtree(data, ignore_errors=True)

    if "consolidate" in args.parts:
        m = Measurement("consolidate_end_session", _consolidation)
        m.interleaved(
            runner,
            sides,
            "consolidate",
            lambda side, r: {"dir": str(fresh(f"consolidate-{r}-{side.name}"))},
            args.rounds,
            args.sessions,
            args.batch["consolidate"],
        )
        measurements[m.name] = m.report()
        shutil.rmtree(data, ignore_errors=True)

    if "assemble" in args.parts:
        for index, size in enumerate(args.sizes):
            m = Measurement(f"assemble_context_{size}", _assembly)
            dirs, builds = {}, {}
            for side in alternate(sides, index):
                print(f"build {size} segments [{side.name}] ...", flush=True)
                dirs[side.name] = fresh(f"corpus-{size}-{side.name}")
                try:
                    builds[side.name] = runner.run(
                        side, "build", 4 * 3600, dir=str(dirs[side.name]), size=size
                    )
                    print(f"  {builds[side.name]}", flush=True)
                except Exception as exc:
                    m.error(side, exc, "build: ")
            built = [side for side in sides if side.name in builds]

            def assemble_spec(side: Side, r: int, d: dict[str, Path] = dirs) -> dict[str, Any]:
                return {"dir": str(d[side.name]), "round": r}

            m.interleaved(
                runner,
                built,
                "assemble",
                assemble_spec,
                args.rounds,
                args.queries,
                args.batch["assemble"],
            )
            measurements[m.name] = m.report()
            for name, build in builds.items():
                measurements[m.name][name]["build"] = build
            if not args.keep:
                for path in dirs.values():
                    shutil.rmtree(path, ignore_errors=True)
    return measurements


def print_table(report: dict[str, Any]) -> None:
    def cell(side: dict[str, Any]) -> str:
        if "median_ms" not in side:
            return f"{'error':>19}"
        return f"{side['median_ms']:9.3f} /{side['p95_ms']:9.3f}"

    print()
    print(f"current  = {report['current']['rev']} ({report['current']['commit'][:10]})")
    print(f"baseline = {report['baseline']['rev']} ({report['baseline']['commit'][:10]})")
    for when in ("start", "end"):
        if f"fdatasync_4k_{when}" in report:
            probe = report[f"fdatasync_4k_{when}"]
            print(f"disk fdatasync 4k at {when}: p50 {probe['median_ms']:.3f} ms", end="  ")
    print()
    header = f"{'measurement':30s} {'current p50 / p95 ms':>20s} {'baseline p50 / p95 ms':>21s}"
    print(header + "   ratio p50    p95   throughput (current / baseline)")
    for name, entry in report["measurements"].items():
        cur, base, ratio = entry["current"], entry["baseline"], entry["ratio"]
        ratios = "".join(
            f"{ratio[k]:>7.3f}{'!' if ratio[k] > THRESHOLD else ' '}" if k in ratio else "      - "
            for k in ("median", "p95")
        )
        if "messages_per_s" in cur or "messages_per_s" in base:
            unit, key = "msg/s", "messages_per_s"
        else:
            unit, key = "calls/s", "calls_per_s"
        thr = f"{cur.get(key, '-')} / {base.get(key, '-')} {unit}"
        flag = "  REGRESSION" if entry["regression"] else ""
        print(f"{name:30s} {cell(cur):>20s} {cell(base):>21s}   {ratios} {thr}{flag}")
        if "ms_per_message" in ratio:
            print(f"{'':30s} ms/message ratio {ratio['ms_per_message']:.3f}")
        for side_name in ("current", "baseline"):
            if "error" in entry[side_name] or "errors" in entry[side_name]:
                detail = entry[side_name].get("error") or entry[side_name]["errors"]
                print(f"{'':30s} {side_name} error: {str(detail)[:300]}")


def parse_sizes(text: str) -> list[int]:
    return [int(s) for s in text.replace(" ", ",").split(",") if s]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="ff8ca57", help="revision to compare against")
    parser.add_argument(
        "--current-rev", default=None, help="measure this revision instead of the working tree"
    )
    parser.add_argument("--sizes", type=parse_sizes, default=[10_000, 100_000])
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--rounds", type=int, default=None, help="fresh child pairs (3)")
    parser.add_argument(
        "--appends", type=int, default=None, help="store_message calls a round (300)"
    )
    parser.add_argument("--sessions", type=int, default=None, help="sessions ended a round (30)")
    parser.add_argument(
        "--queries", type=int, default=None, help="assemble_context calls a round (150)"
    )
    parser.add_argument(
        "--parts", type=lambda s: s.split(","), default=["store", "consolidate", "assemble"]
    )
    parser.add_argument("--workdir", type=Path, default=None, help="where the temp dir goes")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (corpora, logs)")
    parser.add_argument("--out", type=Path, default=Path(".bench/manager.json"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child_main(args.child)
        return 0
    defaults = {"rounds": 3, "appends": 300, "sessions": 30, "queries": 150}
    args.batch = {"store": 25, "consolidate": 3, "assemble": 10}
    if args.quick:
        defaults = {"rounds": 2, "appends": 40, "sessions": 4, "queries": 20}
        args.batch = {"store": 10, "consolidate": 2, "assemble": 5}
        if args.sizes == [10_000, 100_000]:
            args.sizes = [2000]
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)

    started = time.perf_counter()
    load_start = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="bench-manager-", dir=args.workdir))
    report: dict[str, Any] = {"benchmark": "manager"}
    worktrees: list[Path] = []
    try:
        base_tree = work / "baseline"
        base_commit = add_worktree(args.baseline, base_tree)
        worktrees.append(base_tree)
        baseline = Side("baseline", args.baseline, base_tree, base_commit, True)
        if args.current_rev:
            cur_tree = work / "current"
            cur_commit = add_worktree(args.current_rev, cur_tree)
            worktrees.append(cur_tree)
            current = Side("current", args.current_rev, cur_tree, cur_commit, True)
        else:
            current = Side("current", "working tree", REPO, git("rev-parse", "HEAD"), False)
        sides = [current, baseline]
        report["current"], report["baseline"] = current.describe(), baseline.describe()
        report["settings"] = {
            k: getattr(args, k)
            for k in ("rounds", "appends", "sessions", "queries", "sizes", "batch")
        }
        report["settings"]["encoder"] = "HashingEncoder(384)"
        report["settings"]["quick"] = args.quick

        texts = work / "texts.json"
        runner = Runner(work, texts)
        needed = max([*args.sizes, (args.sessions + 2) * SESSION_MESSAGES, args.appends + 20])
        generated: dict[str, Any] | None = None
        for side in (baseline, current):  # the corpus is the baseline's text, if it can
            try:
                generated = runner.run(
                    side, "generate", 600, out=str(texts), count=needed, queries=400, seed=2024
                )
                generated["from"] = side.name
                break
            except Exception as exc:
                print(f"generate [{side.name}] failed: {exc}", flush=True)
        if generated is None:
            raise RuntimeError("could not generate the corpus text on either side")
        report["texts"] = generated
        print(f"texts: {generated}", flush=True)
        report["fdatasync_4k_start"] = fdatasync_probe(work)
        report["measurements"] = run_all(args, sides, runner)
        report["fdatasync_4k_end"] = fdatasync_probe(work)
    except Exception as exc:
        report["error"] = f"{type(exc).__name__}: {exc}"
        print(f"ERROR {report['error']}", flush=True)
    finally:
        for tree in worktrees:
            remove_worktree(tree)
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    report["elapsed_s"] = round(time.perf_counter() - started, 1)
    report["machine"] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average_start": load_start,
        "load_average_end": os.getloadavg(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    if "measurements" in report:
        print_table(report)
    print(f"elapsed {report['elapsed_s']} s -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
