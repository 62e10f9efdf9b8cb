"""Shared by the health, doctor and jobs tests: real data dirs filled through the API.

Real encrypted libSQL, LMDB and embedded Chroma, with the fast deterministic
``HashingEncoder``. ``fill`` leaves: alice's conversation c1 (session s1, ended and
consolidated) and c2 (session s2, live in working memory), bob's c3 (s3, consolidated).
``crash`` runs a snippet in a child that exits without closing anything, as a crash does.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from aico.ai.embeddings import HashingEncoder
from aico.ai.memory import MemoryManager
from aico.config import Config, load_config
from aico.data.repositories import UserService
from aico.operations.doctor import DoctorReport, doctor
from aico.security import KdfParams

ROOT = Path(__file__).resolve().parents[2]
PASSPHRASE = "operations test passphrase"
ALICE, BOB = "alice", "bob"
T0 = 1_700_000_000.0  # the messages' time: fixed, so retention tests can move the clock


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
    return base


def config(extra: dict[str, Any] | None = None) -> Config:
    """Cheap Argon2, no keyring, every role's words in BM25; ``extra``: more overrides."""
    p = KdfParams.for_tests()
    overrides: dict[str, Any] = {
        "security": {
            "use_keyring": False,
            "kdf_time_cost": p.time_cost,
            "kdf_memory_cost_kib": p.memory_cost_kib,
            "kdf_parallelism": p.parallelism,
        },
        "memory": {"semantic": {"fts_roles": []}},
    }
    return load_config(env={}, overrides=_merge(overrides, extra or {}))


class Clock:
    """A settable clock for the manager (and the jobs it runs)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def open_manager(data_dir: Path, cfg: Config | None = None, **kw: Any) -> MemoryManager:
    return MemoryManager.open(
        data_dir, passphrase=PASSPHRASE, config=cfg or config(), encoder=HashingEncoder(), **kw
    )


def create(data_dir: Path, cfg: Config | None = None) -> dict[str, str]:
    """A filled data dir (module docstring), closed cleanly; returns marker -> message id."""
    manager = MemoryManager.initialize(
        data_dir, PASSPHRASE, config=cfg or config(), encoder=HashingEncoder()
    )
    with manager:
        users = UserService(manager.store.connection("core"))
        users.create_user("Alice", user_id=ALICE)
        users.create_user("Bob", user_id=BOB)
        return fill(manager)


def fill(manager: MemoryManager) -> dict[str, str]:
    ids: dict[str, str] = {}

    def say(user: str, session: str, conv: str, marker: str, role: str = "user") -> None:
        text = f"note {marker} about harbours and kites"
        ids[marker] = manager.store_message(user, session, role, text, conversation_id=conv)

    for i in range(6):
        say(ALICE, "s1", "c1", f"zqone{i}", "user" if i % 2 == 0 else "assistant")
    manager.end_session("s1")
    for i in range(3):
        say(BOB, "s3", "c3", f"zqbob{i}")
    manager.end_session("s3")
    for i in range(4):
        say(ALICE, "s2", "c2", f"zqlive{i}")
    manager.semantic.process_outbox()
    return ids


def run_doctor(data_dir: Path, *, repair: bool = False, **kw: Any) -> DoctorReport:
    kw.setdefault("config", config())
    return doctor(data_dir, repair=repair, passphrase=PASSPHRASE, encoder=HashingEncoder(), **kw)


def problems(findings: Any) -> set[tuple[str, str]]:
    """``(check, store)`` of every finding at ``problem`` level."""
    return {(f.check, f.store) for f in findings if f.status == "problem"}


def warnings(findings: Any) -> set[tuple[str, str]]:
    return {(f.check, f.store) for f in findings if f.status == "warning"}


def tree_hashes(root: Path) -> dict[str, str]:
    """Every file under ``root`` (relative path -> SHA-256): to prove nothing was written.

    Except LMDB's ``lock.mdb``: its reader table, which LMDB itself rewrites for any reader
    where the file is writable (on read-only media the store opens without it). It holds
    no data; the same open by a read-only store changes it with or without aico's verbs.
    """
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "lock.mdb"
    }


def crash(data_dir: Path, code: str) -> None:
    """Run ``code`` in a child with ``manager`` open on ``data_dir``, then ``os._exit(0)``."""
    script = (
        textwrap.dedent(
            """
        import os, sys
        from pathlib import Path
        sys.path.insert(0, sys.argv[2])
        from ops_support import open_manager
        manager = open_manager(Path(sys.argv[1]))
        """
        )
        + textwrap.dedent(code)
        + "\nos._exit(0)\n"
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = f"{ROOT / 'shared'}{os.pathsep}{Path(__file__).parent}"
    subprocess.run(
        [sys.executable, "-c", script, str(data_dir), str(Path(__file__).parent)],
        check=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )


def search_markers(manager: MemoryManager, user: str, query: str) -> set[str]:
    """The ``zq…`` markers of the BM25 hits of ``query``."""
    hits = manager.search(user, query, k=50, mode="bm25")
    return {word for h in hits for word in h.text.split() if word.startswith("zq")}
