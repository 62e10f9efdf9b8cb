"""End-to-end demo on the shipped sample data: ``python -m aico.demo`` (README's first command).

It creates an encrypted store in a temporary folder (or ``--data-dir``), applies every
schema, writes and reads the sample users, memories, feedback and conversations through the
repositories, runs ``aico db status`` as a user would, then proves the privacy claims it
can check: the sample text is nowhere on disk in plaintext, and a wrong passphrase is refused
before any database is touched.
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


def load_sample(store: DataStore, sample: dict[str, Any]) -> dict[str, str]:
    """Write the sample through the repositories; returns sample key -> user id."""
    core = store.connection("core")
    conversations = store.connection("conversations")
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
            conv_id = f"{profile.user_id}-c{n}"
            with conversations.transaction():
                conversations.execute(
                    "INSERT INTO conversations (id, title, provider, model) VALUES (?, ?, ?, ?)",
                    (conv_id, conv["title"], "local", "demo"),
                )
                conversations.execute_many(
                    "INSERT INTO messages (id, conversation_id, role, content) VALUES (?, ?, ?, ?)",
                    [
                        (f"{conv_id}-m{i}", conv_id, role, text)
                        for i, (role, text) in enumerate(conv["messages"])
                    ],
                )
        logs.insert_log(level="INFO", message="sample user loaded", user_id=profile.user_id)
    return ids


def scan_for_plaintext(root: Path, needles: list[str]) -> list[str]:
    """Every (file, needle) pair where user text appears in plaintext under ``root``."""
    hits = []
    for path in root.rglob("*"):
        if path.is_file():
            blob = path.read_bytes()
            hits += [f"{path}: {n[:20]}…" for n in needles if n.encode() in blob]
    return hits


def run(data_dir: Path) -> int:
    sample = json.loads(sample_path().read_text(encoding="utf-8"))
    config = load_config(env={}, overrides={"security": {"use_keyring": False}})

    step(f"create an encrypted store in {data_dir}")
    with timed("key file (Argon2id t=3, m=64 MiB, p=4) + 5 databases + migrations"):
        store = DataStore.initialize(data_dir, DEMO_PASSPHRASE, config=config)
    for db in store.status():
        print(
            f"   {db.database:<14} {db.path.relative_to(data_dir)}  "
            + ", ".join(f"{s.schema} v{s.current}" for s in db.schemas)
        )

    step("write the sample data through the repositories")
    with timed("load"):
        ids = load_sample(store, sample)
    print(
        f"   {len(ids)} users, "
        f"{store.connection('core').fetch_value('SELECT count(*) FROM facts')} memories, "
        f"{store.connection('conversations').fetch_value('SELECT count(*) FROM messages')} messages"
    )
    store.close()

    step("unlock again and read back")
    with timed("open + unlock"):
        store = DataStore.open(data_dir, passphrase=DEMO_PASSPHRASE, config=config)
    core = store.connection("core")
    for key, user_id in ids.items():
        profile = UserService(core).get_profile(user_id)
        album = FactRepository(core).list(user_id)
        print(
            f"   {profile.display_name} ({key}): {len(album)} memories, favourites: "
            + "; ".join(f.content for f in album if f.is_favorite)
        )
        print(f"     feedback: {FeedbackRepository(core).summary(user_id)['counts']}")
    store.close()

    step("aico db status (the CLI, as a user runs it)")
    env = {**os.environ, "AICO_PASSPHRASE": DEMO_PASSPHRASE, "AICO_SECURITY__USE_KEYRING": "false"}
    proc = subprocess.run(
        [sys.executable, "-m", "aico.cli", "--data-dir", str(data_dir), "db", "status", "--check"],
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
    hits = scan_for_plaintext(data_dir, needles)
    files = sum(1 for p in data_dir.rglob("*") if p.is_file())
    print(f"   plaintext scan of {files} files for {len(needles)} sample texts: {len(hits)} hits")
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
