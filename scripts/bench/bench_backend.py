"""Companion backend benchmark: the HTTP service under load, and its own overhead.

    .venv/bin/python scripts/bench/bench_backend.py [--segments 10000] [--clients 8]
        [--duration 60] [--append-share 0.7] [--overhead-calls 300] [--workdir DIR]
        [--out .bench/backend.json]

1. **Corpus** (not timed): a data dir with one user, 30 facts and ``--segments`` long-term
   segments (bench_manager's text generator and its fast build: ``segment_messages`` +
   ``add_segments``), indexed; the fake ``HashingEncoder`` so the model's cost does not hide
   the service's (the same choice as bench_manager).
2. **Mix**: ``aico serve``'s code (``open_memory`` + ``serve``, scheduler on) in a child
   process on a loopback port; ``--clients`` concurrent clients (asyncio + httpx, one
   connection each, each in its own conversation with 20 recent turns) for ``--duration``
   seconds, each request an append (``POST /v1/conversations/{id}/messages``) with
   probability ``--append-share``, else a context (``POST /v1/context``). Reported:
   requests/s, median and p95 per endpoint, errors (any non-2xx or transport error).
3. **Overhead**: one client, one request at a time, ``--overhead-calls`` of each endpoint
   over HTTP, and the same calls in this process on ``MemoryManager`` (``store_message``,
   ``assemble_context``) on the same data dir, in ``--rounds`` turns (the server is stopped
   for the in-process turn: the embedded index serves one process). The ratio of the two
   medians is the service's own cost (auth, routing, JSON, threads, the loopback); the
   goal is <= 1.5x for context.

Durability is the shipped default (libSQL WAL ``synchronous=NORMAL``, LMDB ``sync`` and
``metasync``), so an append pays the fsyncs of working memory, in both columns.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_manager  # noqa: E402  (its text generator and corpus builder)

PASSPHRASE = bench_manager.PASSPHRASE
RECENT_TURNS = 20

for _key, _value in bench_manager.ENV.items():
    os.environ.setdefault(_key, _value)

SERVER = """
import sys
from aico.ai.embeddings import HashingEncoder
from aico.config import load_config
from aico_backend import BackendSettings, open_memory, serve

config = load_config()
memory = open_memory(config, sys.argv[1], encoder=HashingEncoder(), interactive=False)
memory.sync.semantic.wait_ready(120)  # as after a warm start: the index is loaded
serve(memory, BackendSettings.from_config(config), log_level="warning")
"""


def percentile(samples: list[float], q: float) -> float:
    return bench_manager.percentile(samples, q)


def summarize(samples: list[float]) -> dict[str, Any]:
    return bench_manager.summarize(samples) if samples else {"n": 0}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---- corpus ---------------------------------------------------------------------------------


def build(workdir: Path, segments: int) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    texts_path = workdir / "texts.json"
    bench_manager.child_generate(
        {"seed": 7, "count": max(segments, 2000), "queries": 500, "out": str(texts_path)}
    )
    data_dir = workdir / "data"
    built = bench_manager.child_build(
        {"texts": str(texts_path), "size": segments, "dir": str(data_dir), "side": "corpus"}
    )
    return data_dir, json.loads(texts_path.read_text()), built


def add_token(data_dir: Path) -> tuple[str, str]:
    from aico.data.repositories import TOKEN_HASH_PURPOSE, TokenRepository
    from aico.data.store import DataStore

    with DataStore.open(data_dir, passphrase=PASSPHRASE, config=bench_manager._config()) as s:
        user = json.loads((data_dir / "bench-user.json").read_text())["user_id"]
        repo = TokenRepository(
            s.connection("core"),
            s.master_key.subkey(TOKEN_HASH_PURPOSE),
            key_id=s.master_key.key_id,
        )
        return user, repo.create(user, label="bench")[1]


# ---- the server -------------------------------------------------------------------------------


class Server:
    def __init__(self, workdir: Path, data_dir: Path) -> None:
        self.port = free_port()
        config = workdir / "aico.toml"
        config.write_text(
            "[security]\nuse_keyring = false\nkdf_time_cost = 1\nkdf_memory_cost_kib = 8\n"
            f"kdf_parallelism = 1\n[backend]\nport = {self.port}\n"
        )
        env = {
            **os.environ,
            "AICO_CONFIG": str(config),
            "AICO_PASSPHRASE": PASSPHRASE,
            "AICO_DATA_DIR": "",
        }
        self.log = (workdir / "server.log").open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-c", SERVER, str(data_dir)],
            env=env,
            stdout=self.log,
            stderr=self.log,
        )
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, token: str) -> float:
        import httpx

        started = time.perf_counter()
        while True:
            if self.process.poll() is not None:
                raise RuntimeError("the server exited; see server.log")
            try:
                response = httpx.get(
                    self.url + "/v1/ready", headers={"Authorization": f"Bearer {token}"}
                )
                if response.status_code == 200:
                    return time.perf_counter() - started
            except httpx.TransportError:
                pass
            time.sleep(0.1)

    def stop(self) -> int:
        self.process.terminate()
        code = self.process.wait(120)
        self.log.close()
        return code


# ---- the load ---------------------------------------------------------------------------------


async def _client_setup(client: Any, texts: dict[str, list[str]], offset: int) -> str:
    response = await client.post("/v1/conversations", json={"title": f"bench {offset}"})
    response.raise_for_status()
    conversation = str(response.json()["id"])
    for i in range(RECENT_TURNS):
        role = ("user", "assistant")[i % 2]
        text = texts["user"][(offset * RECENT_TURNS + i) % len(texts["user"])]
        body = {"role": role, "content": text}
        (
            await client.post(f"/v1/conversations/{conversation}/messages", json=body)
        ).raise_for_status()
    return conversation


async def mix(
    url: str, token: str, texts: dict[str, list[str]], clients: int, duration: float, share: float
) -> dict[str, Any]:
    import httpx

    samples: dict[str, list[float]] = {"append": [], "context": []}
    errors: dict[str, int] = {"append": 0, "context": 0}
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    set_up = asyncio.Barrier(clients + 1)
    go = asyncio.Event()
    deadline = [0.0]

    async def one(index: int) -> None:
        rng = random.Random(index)
        async with httpx.AsyncClient(
            base_url=url, headers=headers, timeout=60, limits=limits
        ) as client:
            conversation = await _client_setup(client, texts, index)
            await set_up.wait()
            await go.wait()
            i = 0
            while time.perf_counter() < deadline[0]:
                i += 1
                if rng.random() < share:
                    kind = "append"
                    path = f"/v1/conversations/{conversation}/messages"
                    text = texts["user"][(index * 7919 + i) % len(texts["user"])]
                    body: dict[str, Any] = {"role": ("user", "assistant")[i % 2], "content": text}
                else:
                    kind = "context"
                    path = "/v1/context"
                    query = texts["queries"][(index * 104729 + i) % len(texts["queries"])]
                    body = {"conversation_id": conversation, "query": query, "max_tokens": 1500}
                started = time.perf_counter()
                try:
                    ok = (await client.post(path, json=body)).is_success
                except httpx.TransportError:
                    ok = False
                elapsed = time.perf_counter() - started
                if ok:
                    samples[kind].append(elapsed)
                else:
                    errors[kind] += 1

    tasks = [asyncio.create_task(one(index)) for index in range(clients)]
    await set_up.wait()
    started = time.perf_counter()
    deadline[0] = started + duration
    go.set()
    await asyncio.gather(*tasks)
    wall = time.perf_counter() - started
    total = sum(len(v) for v in samples.values())
    return {
        "clients": clients,
        "duration_s": round(wall, 2),
        "requests": total,
        "requests_per_s": round(total / wall, 1),
        "errors": sum(errors.values()),
        "errors_by_endpoint": errors,
        "share": {k: round(len(v) / max(total, 1), 3) for k, v in samples.items()},
        "endpoints": {k: summarize(v) for k, v in samples.items()},
    }


def _overhead_conversation(url: str, token: str, texts: dict[str, list[str]]) -> str:
    import httpx

    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as client:
        conversation = str(
            client.post("/v1/conversations", json={"title": "overhead"}).json()["id"]
        )
        for i in range(RECENT_TURNS):
            client.post(
                f"/v1/conversations/{conversation}/messages",
                json={"role": ("user", "assistant")[i % 2], "content": texts["user"][-1 - i]},
            ).raise_for_status()
    return conversation


def sequential_http(
    url: str, token: str, conversation: str, texts: dict[str, list[str]], calls: range
) -> dict[str, list[float]]:
    """One request at a time, an append then a context, ``calls`` of each (10 warm-up)."""
    import httpx

    samples: dict[str, list[float]] = {"append": [], "context": []}
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as client:
        for n, i in enumerate([*calls[:10], *calls]):
            for kind in ("append", "context"):
                if kind == "append":
                    path = f"/v1/conversations/{conversation}/messages"
                    body: dict[str, Any] = {"role": "user", "content": texts["user"][i]}
                else:
                    path = "/v1/context"
                    body = {
                        "conversation_id": conversation,
                        "query": texts["queries"][i % len(texts["queries"])],
                        "max_tokens": 1500,
                    }
                started = time.perf_counter()
                response = client.post(path, json=body)
                elapsed = time.perf_counter() - started
                response.raise_for_status()
                if n >= 10:
                    samples[kind].append(elapsed)
    return samples


def in_process(
    data_dir: Path, user: str, conversation: str, texts: dict[str, list[str]], calls: range
) -> dict[str, list[float]]:
    """The same calls on ``MemoryManager`` in this process (index loaded, 10 warm-up)."""
    from aico.ai.embeddings import HashingEncoder
    from aico.ai.memory import MemoryManager

    samples: dict[str, list[float]] = {"append": [], "context": []}
    with MemoryManager.open(
        data_dir, passphrase=PASSPHRASE, config=bench_manager._config(), encoder=HashingEncoder()
    ) as manager:
        manager.semantic.wait_ready(120)
        for n, i in enumerate([*calls[:10], *calls]):
            started = time.perf_counter()
            manager.store_message(
                user, conversation, "user", texts["user"][i], conversation_id=conversation
            )
            append = time.perf_counter() - started
            started = time.perf_counter()
            manager.assemble_context(
                user, conversation, texts["queries"][i % len(texts["queries"])], max_tokens=1500
            )
            context = time.perf_counter() - started
            if n >= 10:
                samples["append"].append(append)
                samples["context"].append(context)
    return samples


def overhead(
    workdir: Path,
    data_dir: Path,
    user: str,
    token: str,
    texts: dict[str, list[str]],
    calls: int,
    rounds: int,
) -> dict[str, Any]:
    """HTTP and in-process batches in turn (the server is stopped for the latter: the
    embedded index serves one process), so load from elsewhere hits both alike."""
    http: dict[str, list[float]] = {"append": [], "context": []}
    local: dict[str, list[float]] = {"append": [], "context": []}
    per_round = max(1, calls // rounds)
    conversation = None
    for r in range(rounds):
        batch = range(r * per_round, (r + 1) * per_round)
        server = Server(workdir, data_dir)
        try:
            server.wait_ready(token)
            if conversation is None:
                conversation = _overhead_conversation(server.url, token, texts)
            for kind, values in sequential_http(
                server.url, token, conversation, texts, batch
            ).items():
                http[kind] += values
        finally:
            server.stop()
        for kind, values in in_process(data_dir, user, conversation, texts, batch).items():
            local[kind] += values
        print(f"  overhead round {r + 1}/{rounds} done", file=sys.stderr)
    return {
        "rounds": rounds,
        "http": {k: summarize(v) for k, v in http.items()},
        "in_process": {k: summarize(v) for k, v in local.items()},
        "ratio_p50": {
            k: round(statistics.median(http[k]) / statistics.median(local[k]), 3) for k in http
        },
        "added_ms_p50": {
            k: round((statistics.median(http[k]) - statistics.median(local[k])) * 1000, 3)
            for k in http
        },
    }


# ---- main ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--append-share", type=float, default=0.7)
    parser.add_argument("--overhead-calls", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3, help="overhead: HTTP/in-process turns")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=REPO / ".bench" / "backend.json")
    args = parser.parse_args(argv)

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="aico-bench-backend-"))
    workdir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "bench": "backend",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "commit": subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
        ).stdout.strip(),
        "settings": vars(args) | {"out": str(args.out), "workdir": str(workdir)},
    }
    try:
        print(f"building {args.segments} segments in {workdir} ...", file=sys.stderr)
        data_dir, texts, built = build(workdir, args.segments)
        report["corpus"] = built
        user, token = add_token(data_dir)

        server = Server(workdir, data_dir)
        try:
            report["server_ready_s"] = round(server.wait_ready(token), 2)
            print(f"mix: {args.clients} clients for {args.duration:.0f} s ...", file=sys.stderr)
            report["mix"] = asyncio.run(
                mix(server.url, token, texts, args.clients, args.duration, args.append_share)
            )
        finally:
            report["server_exit_code"] = server.stop()
        print("overhead: one client over HTTP, then in-process, in turn ...", file=sys.stderr)
        report["overhead"] = overhead(
            workdir, data_dir, user, token, texts, args.overhead_calls, args.rounds
        )
        report["goal_context_ratio_le_1_5"] = report["overhead"]["ratio_p50"]["context"] <= 1.5
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
