"""Shared by the backup, restore and export tests: real data dirs, filled through the API.

Every data dir is real: encrypted libSQL files, LMDB, embedded Chroma, with the fast fake
``HashingEncoder`` (its vectors are deterministic, so search results compare exactly).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from aico.ai.embeddings import HashingEncoder
from aico.ai.memory import MemoryManager
from aico.config import Config, load_config
from aico.data.repositories import FactRepository, UserService
from aico.data.repositories.conversations import Attachment
from aico.security import KdfParams

PASSPHRASE = "backup test passphrase"
ALICE, BOB = "alice", "bob"


def config(**backup: Any) -> Config:
    """Cheap Argon2, no keyring, every role's words in BM25; ``backup``: [storage.backup]."""
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
    if backup:
        overrides["storage"] = {"backup": backup}
    return load_config(env={}, overrides=overrides)


def new_manager(
    data_dir: Path, cfg: Config | None = None, *, users: tuple[str, ...] = (ALICE, BOB)
) -> MemoryManager:
    manager = MemoryManager.initialize(
        data_dir, PASSPHRASE, config=cfg or config(), encoder=HashingEncoder()
    )
    service = UserService(manager.store.connection("core"))
    for user in users:
        service.create_user(user.title(), user_id=user)
    return manager


def open_manager(data_dir: Path, cfg: Config | None = None, **kw: Any) -> MemoryManager:
    """Opened, with the dense index loaded (before that, search ranks by BM25 alone)."""
    manager = MemoryManager.open(
        data_dir, passphrase=PASSPHRASE, config=cfg or config(), encoder=HashingEncoder(), **kw
    )
    manager.semantic.wait_ready(60)
    return manager


def healed(manager: MemoryManager, user: str = ALICE, timeout: float = 120.0) -> bool:
    """Wait until the dense index serves again (a restored one is rebuilt in the background,
    started by the first search that finds it missing)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        health = manager.semantic.index_health()
        if health.state == "ok" and health.serving:
            return True
        manager.search(user, "harbour", 1)
        time.sleep(0.1)
    return False


def fill(manager: MemoryManager, user: str, tag: str, *, conversations: int = 2) -> list[str]:
    """Two consolidated conversations of ``user`` (markers ``zq<tag>…``), a fact, an
    attachment; returns the message ids."""
    ids = []
    for c in range(conversations):
        session = f"{tag}-s{c}"
        for i in range(4):
            ids.append(
                manager.store_message(
                    user,
                    session,
                    "user" if i % 2 == 0 else "assistant",
                    f"about zq{tag}c{c}m{i} and the harbour",
                    conversation_id=f"{tag}-conv{c}",
                    title=f"title {tag} {c}",
                    attachments=[Attachment("file", f"bytes zq{tag}att{c}".encode())]
                    if i == 0
                    else (),
                )
            )
        manager.end_session(session)
    FactRepository(manager.store.connection("core")).remember(user, f"fact zq{tag}fact")
    manager.maintenance()
    return ids


class Hits:
    """Search results compared as a set of segment ids with their scores (to 1e-5: the
    dense index is approximate in float32), whatever the order of ties."""

    def __init__(self, found: list[tuple[str, float]]) -> None:
        self.scores = dict(found)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Hits) or self.scores.keys() != other.scores.keys():
            return False
        return all(abs(v - other.scores[k]) < 1e-5 for k, v in self.scores.items())

    def __len__(self) -> int:
        return len(self.scores)

    def __repr__(self) -> str:
        return f"Hits({sorted(self.scores.items())})"


def hits(manager: MemoryManager, user: str, query: str, k: int = 50) -> Hits:
    """Every hit of ``user`` for ``query`` (up to ``k``)."""
    return Hits([(h.segment_id, h.score) for h in manager.search(user, query, k)])


def tree_digest(root: Path, *, skip: tuple[str, ...] = ("locks",)) -> dict[str, str]:
    """SHA-256 of every file under ``root`` (relative path -> digest), to prove "untouched"."""
    out = {}
    for dirpath, _dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root)
        if rel_dir.parts and rel_dir.parts[0] in skip:
            continue
        for name in filenames:
            path = Path(dirpath) / name
            out[str(rel_dir / name)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def lexical(manager: MemoryManager, user: str, marker: str) -> list[str]:
    """Segments whose words match ``marker`` (BM25 only: dense search always answers)."""
    return [h.segment_id for h in manager.search(user, marker, 10, mode="bm25")]
