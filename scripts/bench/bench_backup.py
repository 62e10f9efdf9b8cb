"""Backup benchmark: create / verify / restore throughput, and the writer while a backup runs.

    .venv/bin/python scripts/bench/bench_backup.py [--segments 10000] [--recent 2000]
        [--writer-s 4] [--workdir DIR] [--keep] [--out .bench/backup.json]

1. **Corpus** (not timed): one user, ``--segments`` long-term segments made from a message
   log of 2 messages per segment (bench_manager's text generator; log rows written in bulk,
   segments through ``add_segments`` with their source messages, then indexed into Chroma),
   plus ``--recent`` messages of live sessions through ``store_message`` (working memory
   holds them). Fake ``HashingEncoder``: the model is not what is measured.
2. **create / verify / restore**: ``create_backup`` of the closed-then-reopened data dir,
   ``verify_backup``, ``restore_backup`` into a new directory. MB/s is the databases' bytes
   (the manifest's total) over the wall time. Reported apart: the time every database's
   write lock is held (the snapshot copy).
3. **First open after the restore**: ``MemoryManager.open`` of the restored dir (working
   memory refilled from the log), the background rebuild of the Chroma index from the
   libSQL vectors until it serves again (and how long searches take meanwhile: BM25 + the
   exact scan), then an open with LMDB deleted (the refill alone) and a plain open. Against
   it: the Chroma directory's and the LMDB environment's size and the time to archive and
   unpack them (``--copy-derived``).
4. **The writer**: ``store_message`` in a loop on one thread for ``--writer-s`` seconds
   with no backup, then while ``create_backup`` runs, (a) on another thread of the same
   process (the backend's scheduler) and (b) in another process (``aico backup create``
   beside a running service). Reported: p50 / p95 / max in ms, and the samples inside the
   snapshot's lock window.
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
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_manager  # noqa: E402  (its text generator and config)

for _key, _value in bench_manager.ENV.items():
    os.environ.setdefault(_key, _value)

PASSPHRASE = bench_manager.PASSPHRASE
T0 = bench_manager.T0
EXCHANGES = 10  # a session: 10 exchanges, 20 messages


def percentile(samples: list[float], q: float) -> float:
    return bench_manager.percentile(samples, q)


def summary_ms(samples: list[float]) -> dict[str, Any]:
    if not samples:
        return {"n": 0}
    ms = [s * 1000 for s in samples]
    return {
        "n": len(ms),
        "p50": round(statistics.median(ms), 3),
        "p95": round(percentile(ms, 95), 3),
        "max": round(max(ms), 3),
    }


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# ---- corpus ------------------------------------------------------------------------------------


def build(workdir: Path, segments: int, recent: int) -> tuple[Path, dict[str, Any]]:
    from aico.ai.memory.semantic import Message, segment_messages

    texts_path = workdir / "texts.json"
    bench_manager.child_generate(
        {"seed": 11, "count": max(segments, 2000), "queries": 10, "out": str(texts_path)}
    )
    data = json.loads(texts_path.read_text())
    users, replies = data["user"], data["assistant"]
    data_dir = workdir / "data"
    started = time.perf_counter()
    manager, user = bench_manager._initialize(data_dir, bench_manager._config())
    log = manager.store.connection("conversations")
    semantic = manager.semantic
    segmentation = semantic.config.segmentation
    sessions = math.ceil(segments / EXCHANGES)
    for first in range(0, sessions, 200):
        made = []
        with log.transaction():
            for s in range(first, min(first + 200, sessions)):
                conv, session, compaction = f"conv-{s}", f"hist-{s}", uuid.uuid4().hex
                start = T0 + 3600.0 * s
                log.execute(
                    "INSERT INTO conversations (id, user_id, title, created_at, updated_at, "
                    "provider) VALUES (?, ?, ?, ?, ?, 'aico')",
                    (conv, user, f"session {s}", start, start),
                )
                messages = []
                for e in range(min(EXCHANGES, segments - s * EXCHANGES)):
                    i = s * EXCHANGES + e
                    for role, text, ts in (
                        ("user", users[i % len(users)], start + 60.0 * e),
                        ("assistant", replies[i % len(replies)], start + 60.0 * e + 20),
                    ):
                        mid = uuid.uuid4().hex
                        log.execute(
                            "INSERT INTO messages (id, conversation_id, role, content, "
                            "timestamp, user_id, session_id, compaction_id, consolidated_at) "
                            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            (mid, conv, role, text, ts, user, session, compaction, ts + 900),
                        )
                        messages.append(Message(role, text, ts, mid))
                log.execute(
                    "INSERT INTO session_metadata (session_id, user_id, conversation_id, "
                    "started_at, last_activity_at, message_count, status, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, 'consolidated', ?)",
                    (session, user, conv, start, start + 600, len(messages), start + 900),
                )
                log.execute(
                    "INSERT INTO compaction_history (id, conversation_id, trigger_type, "
                    "performed_at, user_id, session_id, status) "
                    "VALUES (?, ?, 'idle', ?, ?, ?, 'done')",
                    (compaction, conv, start + 900, user, session),
                )
                made += segment_messages(
                    user, messages, conversation_id=conv, session_id=session, config=segmentation
                )
            log.execute("DELETE FROM working_outbox")
        semantic.add_segments(made, index=False)
        print(f"  {min(first + 200, sessions) * EXCHANGES}/{segments} segments", file=sys.stderr)
    semantic.process_outbox()
    for i in range(recent):
        manager.store_message(
            user, f"live-{i // 20}", "user" if i % 2 == 0 else "assistant", users[i % len(users)]
        )
    count = semantic.count()
    manager.close()
    built = {
        "segments": count,
        "recent": recent,
        "build_s": round(time.perf_counter() - started, 1),
    }
    (data_dir / "bench-user.json").write_text(json.dumps({"user_id": user}))
    return data_dir, built


def open_manager(data_dir: Path) -> Any:
    from aico.ai.memory import MemoryManager

    return MemoryManager.open(
        data_dir,
        passphrase=PASSPHRASE,
        config=bench_manager._config(),
        encoder=bench_manager._encoder(),
    )


# ---- create / verify / restore -----------------------------------------------------------------


def measure_operations(data_dir: Path, workdir: Path) -> dict[str, Any]:
    from aico.operations import create_backup, restore_backup, verify_backup

    config = bench_manager._config()
    out: dict[str, Any] = {
        "sizes_mb": {
            "databases": round(dir_size(data_dir / "db") / 1e6, 1),
            "chroma": round(dir_size(data_dir / "memory" / "semantic") / 1e6, 1),
            "lmdb": round(dir_size(data_dir / "memory" / "working") / 1e6, 1),
        }
    }
    manager = open_manager(data_dir)
    try:
        started = time.perf_counter()
        report = create_backup(manager.store, config=config, prune=False)
        wall = time.perf_counter() - started
    finally:
        manager.close()
    mb = report.raw_bytes / 1e6
    out["create"] = {
        "s": round(wall, 2),
        "mb": round(mb, 1),
        "mb_s": round(mb / wall, 1),
        "archive_mb": round(report.archive_bytes / 1e6, 1),
        "locks_held_s": round(report.snapshot_s, 3),
    }
    started = time.perf_counter()
    verify_backup(report.info.path, PASSPHRASE)
    wall = time.perf_counter() - started
    out["verify"] = {"s": round(wall, 2), "mb_s": round(mb / wall, 1)}
    target = workdir / "restored"
    started = time.perf_counter()
    restore_backup(report.info.path, PASSPHRASE, data_dir=target, config=config)
    wall = time.perf_counter() - started
    out["restore"] = {"s": round(wall, 2), "mb_s": round(mb / wall, 1)}
    out["create_verify_restore_s"] = round(
        out["create"]["s"] + out["verify"]["s"] + out["restore"]["s"], 2
    )
    user = json.loads((data_dir / "bench-user.json").read_text())["user_id"]
    out["first_open"] = first_open(target, user)
    out["archive"] = str(report.info.path)
    return out


def first_open(target: Path, user: str) -> dict[str, Any]:
    """The restored dir's first open (working memory refilled from the log), the background
    rebuild of its Chroma index (searches meanwhile: BM25 + the exact scan), then an open
    with working memory deleted (the refill alone) and a plain one."""

    def timed_open() -> tuple[float, Any]:
        started = time.perf_counter()
        manager = open_manager(target)
        return time.perf_counter() - started, manager

    opened, manager = timed_open()
    restored = manager.last_repair.working_restored
    started = time.perf_counter()
    searches: list[float] = []
    while time.perf_counter() - started < 3600:
        health = manager.semantic.index_health()
        if health.state == "ok" and health.serving and manager.semantic.wait_ready(0):
            break
        t = time.perf_counter()
        manager.search(user, "the weather this week", 8)
        searches.append(time.perf_counter() - t)
        time.sleep(0.2)
    healed = time.perf_counter() - started
    manager.close()
    shutil.rmtree(target / "memory" / "working")
    refill, manager = timed_open()
    manager.close()
    plain, manager = timed_open()
    manager.close()
    return {
        "open_after_restore_s": round(opened, 2),
        "working_messages_refilled": restored,
        "index_rebuilt_in_background_s": round(healed, 2),
        "search_while_rebuilding_ms": summary_ms(searches),
        "lmdb_refill_s": round(refill - plain, 2),
        "plain_open_s": round(plain, 2),
    }


def copy_derived(data_dir: Path, workdir: Path) -> dict[str, Any]:
    """What archiving the derived stores instead would cost: pack and unpack them."""

    from aico.operations.archive import (
        PayloadReader,
        PayloadWriter,
        SealedReader,
        SealedWriter,
        derive_archive_key,
        new_header,
        read_header,
    )

    out = {}
    for name, rel in (("chroma", "memory/semantic/chroma"), ("lmdb", "memory/working")):
        root = data_dir / rel
        files = [p for p in sorted(root.rglob("*")) if p.is_file()]
        size = sum(p.stat().st_size for p in files)
        secret = os.urandom(32)
        header, key = new_header("backup", {}, lambda salt, s=secret: s)
        archive = workdir / f"{name}.pack"
        started = time.perf_counter()
        with open(archive, "wb") as fh:
            payload = PayloadWriter(SealedWriter(fh, key, header), compression_threshold=65536)
            for p in files:
                with open(p, "rb") as src:
                    payload.add_file(str(p.relative_to(root)), src, p.stat().st_size)
            payload.end()
        pack = time.perf_counter() - started
        unpacked = workdir / f"{name}.unpacked"
        started = time.perf_counter()
        with open(archive, "rb") as fh:
            h = read_header(fh)
            reader = PayloadReader(SealedReader(fh, derive_archive_key(secret, h.salt), h))
            for entry in reader.entries():
                dest = unpacked / entry.name
                dest.parent.mkdir(parents=True, exist_ok=True)
                with open(dest, "wb") as w:
                    for block in entry.blocks():
                        w.write(block)
        unpack = time.perf_counter() - started
        out[name] = {
            "mb": round(size / 1e6, 1),
            "packed_mb": round(archive.stat().st_size / 1e6, 1),
            "pack_s": round(pack, 2),
            "unpack_s": round(unpack, 2),
        }
        archive.unlink()
        shutil.rmtree(unpacked, ignore_errors=True)
    return out


# ---- the writer while a backup runs ------------------------------------------------------------

BACKUP_CHILD = """
import sys, time
from aico.data.store import DataStore
from aico.config import load_config
from aico.operations import create_backup
cfg = load_config(env={}, overrides={"security": {"use_keyring": False, "kdf_time_cost": 1,
      "kdf_memory_cost_kib": 8, "kdf_parallelism": 1}})
store = DataStore.open(sys.argv[1], passphrase=sys.argv[2], config=cfg)
print("START", time.time(), flush=True)
r = create_backup(store, config=cfg, prune=False)
print("END", time.time(), r.snapshot_s, flush=True)
store.close()
"""


def writer_under_backup(data_dir: Path, seconds: float) -> dict[str, Any]:
    from aico.operations import create_backup

    config = bench_manager._config()
    user = json.loads((data_dir / "bench-user.json").read_text())["user_id"]
    manager = open_manager(data_dir)
    manager.semantic.wait_ready(600)
    samples: list[tuple[float, float]] = []
    stop = threading.Event()

    def writer() -> None:
        i = 0
        while not stop.is_set():
            t = time.time()
            started = time.perf_counter()
            manager.store_message(user, f"bench-writer-{i // 20}", "user", f"writer turn {i}")
            samples.append((t, time.perf_counter() - started))
            i += 1

    def window(a: float, b: float) -> list[float]:
        return [d for t, d in samples if a <= t <= b]

    results: dict[str, Any] = {}
    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        time.sleep(1.0)  # warm up
        a = time.time()
        time.sleep(seconds)
        results["no_backup"] = summary_ms(window(a, time.time()))
        # (a) the backup on another thread of this process
        a = time.time()
        report = create_backup(manager.store, config=config, prune=False)
        b = time.time()
        results["backup_in_process"] = {
            **summary_ms(window(a, b)),
            "backup_s": round(b - a, 2),
            "locks_held_s": round(report.snapshot_s, 3),
        }
        time.sleep(1.0)
        # (b) the backup in another process (aico backup create beside the service)
        env = {**os.environ, "PYTHONPATH": str(REPO / "shared")}
        child = subprocess.run(
            [sys.executable, "-c", BACKUP_CHILD, str(data_dir), PASSPHRASE],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        lines = dict(line.split(" ", 1) for line in child.stdout.strip().splitlines())
        a, (b, held) = float(lines["START"]), lines["END"].split()
        results["backup_other_process"] = {
            **summary_ms(window(a, float(b))),
            "backup_s": round(float(b) - a, 2),
            "locks_held_s": round(float(held), 3),
        }
    finally:
        stop.set()
        thread.join()
        manager.close()
    return results


# ---- report ------------------------------------------------------------------------------------


def print_table(report: dict[str, Any]) -> None:
    ops = report["operations"]
    print(f"\ncorpus: {report['corpus']}  sizes (MB): {ops['sizes_mb']}")
    print("| step | time s | MB/s | notes |\n|---|---|---|---|")
    c = ops["create"]
    print(
        f"| create | {c['s']} | {c['mb_s']} | {c['mb']} MB -> {c['archive_mb']} MB archive; "
        f"every write lock held {c['locks_held_s']} s |"
    )
    print(f"| verify | {ops['verify']['s']} | {ops['verify']['mb_s']} | every chunk and file |")
    r = ops["restore"]
    print(f"| restore | {r['s']} | {r['mb_s']} | staged, verified, renamed |")
    print(f"| create + verify + restore | {ops['create_verify_restore_s']} | | |")
    fo = ops["first_open"]
    print(
        f"\nfirst open after restore: {fo['open_after_restore_s']} s (working memory refill "
        f"{fo['lmdb_refill_s']} s for {fo['working_messages_refilled']} messages; a plain "
        f"open {fo['plain_open_s']} s); Chroma rebuilt in the background in "
        f"{fo['index_rebuilt_in_background_s']} s, searches meanwhile "
        f"{fo['search_while_rebuilding_ms']} ms"
    )
    if "derived" in report:
        for name, d in report["derived"].items():
            print(
                f"archiving {name} instead: {d['mb']} MB -> {d['packed_mb']} MB, pack "
                f"{d['pack_s']} s, unpack {d['unpack_s']} s"
            )
    w = report["writer"]
    print("\n| store_message | n | p50 ms | p95 ms | max ms | backup s | locks held s |")
    print("|---|---|---|---|---|---|---|")
    for key in ("no_backup", "backup_in_process", "backup_other_process"):
        r = w[key]
        print(
            f"| {key} | {r['n']} | {r.get('p50')} | {r.get('p95')} | {r.get('max')} | "
            f"{r.get('backup_s', '')} | {r.get('locks_held_s', '')} |"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--segments", type=int, default=10_000)
    parser.add_argument("--recent", type=int, default=2_000)
    parser.add_argument("--writer-s", type=float, default=4.0)
    parser.add_argument("--copy-derived", action="store_true")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--out", type=Path, default=REPO / ".bench" / "backup.json")
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="aico-bench-backup-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        print(f"building {args.segments} segments in {workdir} ...", file=sys.stderr)
        data_dir, built = build(workdir, args.segments, args.recent)
        report: dict[str, Any] = {
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
            "corpus": built,
        }
        if args.copy_derived:
            report["derived"] = copy_derived(data_dir, workdir)
        report["operations"] = measure_operations(data_dir, workdir)
        report["writer"] = writer_under_backup(data_dir, args.writer_s)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2))
        print_table(report)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
