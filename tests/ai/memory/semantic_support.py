"""Helpers for the semantic-memory tests: the core database, a small corpus, crash children.

Child-process functions live at module level so ``multiprocessing`` (spawn) can import them.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import numpy as np

import aico.ai.memory.semantic.schema  # noqa: F401  (registers the schema until the lead wires it)
from aico.ai.embeddings import HashingEncoder
from aico.ai.memory.semantic import Segment, SemanticConfig, SemanticMemoryStore
from aico.data.libsql import EncryptedLibSQLConnection
from aico.data.schema import SchemaRegistry
from aico.security import MasterKey, Purpose

T0 = 1_700_000_000.0
HOUR = 3600.0
USERS = ("alice", "bob")

# (user, conversation, role, hours after T0, text): small, distinct topics.
CORPUS: tuple[tuple[str, str, str, float, str], ...] = (
    ("alice", "c1", "user", 0, "My dog Biscuit is a golden retriever who loves swimming."),
    ("alice", "c1", "assistant", 0.1, "Golden retrievers are famously fond of water."),
    ("alice", "c1", "user", 1, "I started learning the cello last spring."),
    ("alice", "c2", "user", 24, "My sister Maya is getting married in Lisbon in June."),
    ("alice", "c2", "assistant", 24.1, "A June wedding in Lisbon sounds lovely."),
    ("alice", "c2", "user", 25, "I am allergic to peanuts, so I avoid satay."),
    ("alice", "c3", "user", 48, "Work has been stressful since the product launch slipped."),
    ("alice", "c3", "user", 49, "I ran my first half marathon in 1:58 last Sunday."),
    ("alice", "c3", "user", 50, "My favourite dish is mushroom risotto with parmesan."),
    ("alice", "c3", "assistant", 50.1, "Risotto takes patience: keep stirring the rice."),
    ("bob", "b1", "user", 2, "My cat Pixel knocks glasses off the kitchen table."),
    ("bob", "b1", "user", 3, "I am training for a marathon in Berlin."),
    ("bob", "b1", "user", 4, "I play the violin in a community orchestra."),
)


def open_core(path: Path, master: MasterKey) -> EncryptedLibSQLConnection:
    """The core database at its latest schema (semantic included) with the test users."""
    conn = EncryptedLibSQLConnection(path, master.subkey(Purpose.libsql("core")))
    SchemaRegistry.apply_core_schemas(conn)
    for user in USERS:
        conn.execute(
            "INSERT OR IGNORE INTO users (user_id, display_name) VALUES (?, ?)", (user, user)
        )
    return conn


def corpus_segments(rows: Sequence[tuple[str, str, str, float, str]] = CORPUS) -> list[Segment]:
    return [
        Segment(
            user_id=user,
            text=text,
            start_ts=T0 + hours * HOUR,
            conversation_id=conversation,
            roles=(role,),
            segment_id=f"{user}-{index:03d}",
        )
        for index, (user, conversation, role, hours, text) in enumerate(rows)
    ]


def ranked_ids(store: SemanticMemoryStore, user: str, query: str, **kwargs: object) -> list[str]:
    return [hit.segment_id for hit in store.search(user, query, **kwargs)]  # type: ignore[arg-type]


def scan_for(root: Path, needles: Sequence[bytes]) -> list[tuple[str, bytes]]:
    """Every (file, needle) where a needle occurs in a file under ``root`` (raw bytes)."""
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        for needle in needles:
            if needle in data:
                found.append((str(path), needle))
    return found


def digests(root: Path) -> dict[str, str]:
    """Every file and directory under ``root``: the sha256 of each file, ``<dir>`` for dirs.

    Two equal results mean nothing under ``root`` was created, removed or changed. A WAL
    database's ``-shm`` file is recorded by name only: it is shared memory, where every
    reader of the database marks its position by design (it holds no data).
    """
    out: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        name = str(path.relative_to(root))
        if path.is_dir():
            out[name] = "<dir>"
        elif path.name.endswith("-shm"):
            out[name] = "<shm>"
        else:
            out[name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


class CountingEncoder:
    """Wraps an encoder and counts the texts it embeds (to prove work is not redone)."""

    def __init__(self, inner: HashingEncoder) -> None:
        self.inner = inner
        self.encoded = 0

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    @property
    def fingerprint(self) -> str:
        return self.inner.fingerprint

    def encode(self, texts: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
        self.encoded += len(texts)
        return self.inner.encode(texts, batch_size=batch_size)

    def encode_query(self, text: str) -> np.ndarray:
        return self.inner.encode_query(text)


# -- crash children ----------------------------------------------------------------------


def crash_after_vectors_child(db: str, chroma: str, key_hex: str) -> None:
    """Store vectors in libSQL, then die (``os._exit``) before Chroma sees them."""
    from aico.ai.memory.semantic import _chroma

    def die(*_args: object, **_kwargs: object) -> None:
        os._exit(3)

    master = MasterKey(bytes.fromhex(key_hex))
    conn = open_core(Path(db), master)
    store = SemanticMemoryStore.open(conn, master, HashingEncoder(), chroma_path=chroma)
    _chroma.ChromaIndex.upsert = die  # type: ignore[method-assign,assignment]
    store.process_outbox()
    os._exit(0)  # not reached


def crash_in_encoder_child(db: str, chroma: str, key_hex: str) -> None:
    """Index the first outbox batch fully, then die inside the encoder on the second."""

    class DyingEncoder(HashingEncoder):
        calls = 0

        def encode(self, texts: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
            if len(texts) > 1:  # outbox batches, not the store's one-text warm-up
                DyingEncoder.calls += 1
            if DyingEncoder.calls == 2:
                os._exit(4)
            return super().encode(texts, batch_size=batch_size)

    master = MasterKey(bytes.fromhex(key_hex))
    conn = open_core(Path(db), master)
    config = SemanticConfig(outbox_batch_size=4)
    store = SemanticMemoryStore.open(
        conn, master, DyingEncoder(), chroma_path=chroma, config=config
    )
    store.process_outbox()
    os._exit(0)  # not reached


def hold_index_child(db: str, chroma: str, key_hex: str) -> None:
    """Open a writable store (so this process holds embedded Chroma) until stdin closes."""
    master = MasterKey(bytes.fromhex(key_hex))
    conn = open_core(Path(db), master)
    store = SemanticMemoryStore.open(conn, master, HashingEncoder(), chroma_path=chroma)
    store.wait_ready()
    print("ready", flush=True)
    sys.stdin.readline()
    store.close()
    conn.close()


def _child_command(function: str, *args: str) -> list[str]:
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import semantic_support as s; "
        f"s.{function}(*sys.argv[2:])"
    )
    return [sys.executable, "-c", code, str(Path(__file__).parent), *args]


def _child_env() -> dict[str, str]:
    return dict(os.environ, ANONYMIZED_TELEMETRY="False", HF_HUB_OFFLINE="1")


def spawn_child(function: str, *args: str) -> subprocess.Popen[str]:
    """Start ``function`` of this module in a fresh interpreter, stdin and stdout piped."""
    return subprocess.Popen(
        _child_command(function, *args),
        env=_child_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def run_child(function: str, *args: str, timeout: float = 120.0) -> int:
    """Run ``function`` of this module in a fresh interpreter; its exit code."""
    done = subprocess.run(
        _child_command(function, *args),
        env=_child_env(),
        timeout=timeout,
        capture_output=True,
        check=False,
    )
    return done.returncode


# -- a real Chroma server -------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_chroma_server(path: Path, port: int, timeout: float = 60.0) -> subprocess.Popen[bytes]:
    """``chroma run`` on 127.0.0.1, returned once its heartbeat answers (bounded wait)."""
    chroma = Path(sys.executable).parent / "chroma"
    env = dict(os.environ, ANONYMIZED_TELEMETRY="False")
    process = subprocess.Popen(
        [str(chroma), "run", "--path", str(path), "--port", str(port), "--host", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    deadline = time.monotonic() + timeout
    url = f"http://127.0.0.1:{port}/api/v2/heartbeat"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"chroma run exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return process
        except OSError:
            time.sleep(0.2)
    stop_process(process)
    raise RuntimeError("chroma server did not answer its heartbeat in time")


def stop_process(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)
