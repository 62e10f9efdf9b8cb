"""End-to-end demo on the shipped sample data: ``python -m aico.demo`` (README's first command).

It creates an encrypted store in a temporary folder (or ``--data-dir``), applies every
schema, writes the sample users, memories, feedback and conversations through the
repositories and the MemoryManager (working memory, consolidation into long-term memory,
embedding), assembles a prompt context with hybrid search, runs maintenance, forgets a
user and scans every decrypted database page for their words, runs ``aico db status`` and
``aico lmdb status`` as a user would, then proves the privacy claims it can check: no sample
text is anywhere on disk in plaintext (libSQL, LMDB, Chroma), and a wrong passphrase is
refused before any database is touched.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from aico.ai.memory import MemoryManager
from aico.ai.memory.stores import configured_encoder, initialize_data_store
from aico.config import load_config
from aico.data.repositories import FactRepository, FeedbackRepository, LogRepository, UserService
from aico.data.store import DataStore
from aico.errors import WrongPassphrase

DEMO_PASSPHRASE = "demo: correct horse battery staple"


def sample_path() -> Path:
    """``data/sample/companion.json`` in a checkout (the demo runs from an editable install)."""
    here = Path(str(resources.files("aico")))
    for candidate in (here.parent.parent / "data" / "sample" / "companion.json",):
        if candidate.is_file():
            return candidate
    raise SystemExit("sample data not found: run the demo from a checkout of the repository")


def step(title: str) -> None:
    print(f"\n== {title}")


@contextmanager
def timed(label: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    print(f"   {label}: {(time.perf_counter() - start) * 1000:.1f} ms")


def load_sample(manager: MemoryManager, sample: dict[str, Any], clock: DemoClock) -> dict[str, str]:
    """Write the sample through the repositories and the MemoryManager; key -> user id."""
    store = manager.store
    core = store.connection("core")
    users, facts, feedback = UserService(core), FactRepository(core), FeedbackRepository(core)
    logs = LogRepository(core)
    ids: dict[str, str] = {}
    for person in sample["users"]:
        profile = users.create_user(
            person["display_name"],
            nickname=person.get("nickname"),
            preferences=person["preferences"],
        )
        ids[person["key"]] = profile.user_id
        for fact in person["facts"]:
            facts.remember(profile.user_id, **fact)
        for event in person["feedback"]:
            feedback.record(profile.user_id, **event)
        for n, conv in enumerate(person["conversations"]):
            conv_id = f"{person['key']}-c{n}"
            clock.now += 3 * 86400  # conversations a few days apart
            for role, text in conv["messages"]:
                clock.now += 45
                manager.store_message(
                    profile.user_id,
                    f"{conv_id}-s",
                    role,
                    text,
                    conversation_id=conv_id,
                    title=conv["title"],
                    provider="local",
                    model="demo",
                )
            manager.end_session(f"{conv_id}-s")  # consolidate into long-term memory
        logs.insert_log(level="INFO", message="sample user loaded", user_id=profile.user_id)
    return ids


def decrypted_pages(manager: MemoryManager) -> bytes:
    """Every page of every database, decrypted with the key (``sqlite_dbpage``)."""
    out = bytearray()
    for name in manager.store.databases:
        if manager.store.path_of(name).exists():
            for row in manager.store.connection(name).fetch_all("SELECT data FROM sqlite_dbpage"):
                out += row["data"]
    return bytes(out)


def scan_for_plaintext(root: Path, needles: list[str]) -> list[str]:
    """Every (file, needle) pair where user text appears in plaintext under ``root``."""
    hits = []
    for path in root.rglob("*"):
        if path.is_file():
            blob = path.read_bytes()
            hits += [f"{path}: {n[:20]}…" for n in needles if n.encode() in blob]
    return hits


class DemoClock:
    """The demo's clock: real time to start, then moved forward to age the sample."""

    def __init__(self) -> None:
        self.now = time.time() - 30 * 86400

    def __call__(self) -> float:
        return self.now


def run(data_dir: Path) -> int:
    sample = json.loads(sample_path().read_text(encoding="utf-8"))
    config = load_config(env={}, overrides={"security": {"use_keyring": False}})
    clock = DemoClock()

    step(f"create an encrypted store in {data_dir}")
    with timed("key file (Argon2id t=3, m=64 MiB, p=4) + databases + migrations"):
        store = initialize_data_store(data_dir, DEMO_PASSPHRASE, config=config)
    for db in store.status():
        schemas = ", ".join(f"{s.schema} v{s.current}" for s in db.schemas)
        print(f"   {db.database:<14} {db.path.relative_to(data_dir)}  {schemas}")

    step("open memory: sealed LMDB working memory, FTS5 + Chroma long-term memory, MiniLM")
    with timed("load the embedding model (ONNX, exported locally on first use)"):
        encoder = configured_encoder(config)
        encoder.encode_query("warm up")  # loads (and on first use exports) the model
    manager = MemoryManager.from_store(store, config=config, encoder=encoder, clock=clock)

    step("write the sample: profiles, memory album, feedback, conversations")
    with timed("load + consolidate + embed"):
        ids = load_sample(manager, sample, clock)
    core = store.connection("core")
    print(
        f"   {len(ids)} users, {core.fetch_value('SELECT count(*) FROM facts')} memories, "
        f"{manager.log.count()} messages in the log, "
        f"{manager.semantic.count()} long-term segments"
    )
    manager.close()

    step("unlock again; Maya starts a new session")
    with timed("open + unlock + open every store"):
        manager = MemoryManager.open(
            data_dir, passphrase=DEMO_PASSPHRASE, config=config, encoder=encoder, clock=clock
        )
    maya, tom = ids["maya"], ids["tom"]
    clock.now = time.time()
    question = "My knees are sore again after running, should I still do strength work?"
    manager.store_message(maya, "maya-today", "user", question)
    with timed("assemble_context (working memory + hybrid search + facts)"):
        bundle = manager.assemble_context(maya, "maya-today", question)
    print(f"   {bundle.token_estimate} of {bundle.max_tokens} tokens; prompt block:")
    print("     " + bundle.render().replace("\n", "\n     "))

    step("hybrid search: both halves and the fused score")
    for hit in manager.search(maya, "sister visiting in summer", 3):
        print(
            f"   {hit.score:.3f}  bm25 #{hit.bm25_rank}  dense #{hit.dense_rank}  "
            f"{hit.text.splitlines()[0][:70]}"
        )
    own = [h.text.splitlines()[0][:50] for h in manager.search(tom, "Ingrid June", 3)]
    print(f"   Tom searching for Maya's 'Ingrid June' sees only his own segments: {own}")

    step("maintenance a day later: sweep working memory, consolidate idle sessions")
    clock.now += 25 * 3600
    print(f"   {manager.maintenance()}")

    step("forget Tom everywhere, then look at every decrypted page")
    tom_person = next(u for u in sample["users"] if u["key"] == "tom")
    maya_person = next(u for u in sample["users"] if u["key"] == "maya")

    def said(person: dict[str, Any]) -> list[str]:
        return [m[1] for c in person["conversations"] for m in c["messages"]] + [
            f["content"] for f in person["facts"]
        ]

    report = manager.forget(tom)
    print(
        f"   removed {report.messages} messages, {report.conversations} conversations, "
        f"{report.segments} segments, {report.facts} facts, {report.working_entries} "
        f"working-memory sessions, {report.logs} log rows"
    )
    pages = decrypted_pages(manager)
    left = [t for t in said(tom_person) if t.encode() in pages]
    kept = [t for t in said(maya_person) if t.encode() in pages]
    print(
        f"   decrypted pages of every database: {len(left)} of Tom's {len(said(tom_person))} "
        f"texts left; {len(kept)} of Maya's {len(said(maya_person))} still there"
    )
    manager.close()
    if left or len(kept) != len(said(maya_person)):
        print("   forget left Tom's words behind or lost Maya's (this is a bug)", file=sys.stderr)
        return 1

    step("aico db status and aico lmdb status (the CLI, as a user runs it)")
    env = {**os.environ, "AICO_PASSPHRASE": DEMO_PASSPHRASE, "AICO_SECURITY__USE_KEYRING": "false"}
    for args in (["db", "status", "--check"], ["lmdb", "status"]):
        proc = subprocess.run(
            [sys.executable, "-m", "aico.cli", "--data-dir", str(data_dir), *args],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        print("   " + proc.stdout.strip().replace("\n", "\n   "))
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            return proc.returncode

    step("privacy checks")
    needles = [f["content"] for u in sample["users"] for f in u["facts"]]
    needles += [m[1] for u in sample["users"] for c in u["conversations"] for m in c["messages"]]
    needles.append(question)
    hits = scan_for_plaintext(data_dir, needles)
    files = sum(1 for p in data_dir.rglob("*") if p.is_file())
    print(
        f"   plaintext scan of {files} files (libSQL, LMDB, Chroma, keys) for "
        f"{len(needles)} sample texts: {len(hits)} hits"
    )
    try:
        DataStore.open(data_dir, passphrase="not the passphrase", config=config)
        print("   wrong passphrase: ACCEPTED (this is a bug)")
        return 1
    except WrongPassphrase as exc:
        print(f"   wrong passphrase refused: {type(exc).__name__}: {exc}")
    if hits:
        print("\n".join(hits), file=sys.stderr)
        return 1
    print("\ndemo finished: all checks passed")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aico.demo", description=__doc__)
    parser.add_argument("--data-dir", type=Path, help="Where to create the store (must be new).")
    args = parser.parse_args(argv)
    if args.data_dir is not None:
        return run(args.data_dir)
    with tempfile.TemporaryDirectory(prefix="aico-demo-") as tmp:
        return run(Path(tmp) / "data")


if __name__ == "__main__":
    raise SystemExit(main())
