"""Master-key rotation across every store: libSQL, LMDB working memory and the Chroma index.

Real components throughout (encrypted libSQL, LMDB, local Chroma); the HashingEncoder stands
in for the model. Before this was covered, a rotation left working memory sealed under a key
the key file no longer held (``WrongPassphrase`` on every open, so ``MemoryManager.open``
failed) and Chroma holding the old-key collections while dense search silently found nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from aico.ai.embeddings import HashingEncoder
from aico.ai.memory import MemoryManager, WorkingMemoryStore
from aico.ai.memory.key_rotation import index_rebuild_pending
from aico.ai.memory.semantic.keys import SemanticKeys
from aico.ai.memory.semantic.rotation import VectorRotation
from aico.ai.memory.stores import initialize_data_store, open_data_store
from aico.config import Config
from aico.data.repositories import UserService
from aico.errors import WrongPassphrase
from aico.layout import DataDir
from aico.security import KdfParams, KeyFile, MasterKey

PASSPHRASE = "rotation test passphrase"
LIVE = "Remind me to call the vet about Pepper."
OLD_TURNS = [
    ("user", "My sister Ingrid adopted a grey greyhound called Pepper."),
    ("assistant", "Pepper is a lovely name for a greyhound."),
]
BOB_TURNS = [("user", "Bob is learning the cello and practises scales every evening.")]


class Clock:
    def __init__(self) -> None:
        self.now = time.time()  # real time: child processes use the real clock too

    def __call__(self) -> float:
        return self.now


def _fill(manager: MemoryManager, clock: Clock) -> dict[str, str]:
    """Two users with consolidated sessions (libSQL + Chroma) and live working memory."""
    users = UserService(manager.store.connection("core"))
    rae, bob = users.create_user("Rae").user_id, users.create_user("Bob").user_id
    for user, session, turns in ((rae, "s-old", OLD_TURNS), (bob, "s-bob", BOB_TURNS)):
        for role, text in turns:
            clock.now += 1
            manager.store_message(user, session, role, text)
        assert manager.end_session(session) >= 1
    manager.semantic.process_outbox()  # into Chroma (end_session defers small batches)
    clock.now += 1
    manager.store_message(rae, "s-live", "user", LIVE)
    manager.working.put_value("s-live", "mood", {"valence": 0.4})
    manager.working.put_value("s-scratch", "draft", "a value with no session record")
    return {"rae": rae, "bob": bob}


def _new_manager(data_dir: Path, config: Config, clock: Clock) -> MemoryManager:
    return MemoryManager.initialize(
        data_dir, PASSPHRASE, config=config, encoder=HashingEncoder(), clock=clock
    )


def _open(data_dir: Path, config: Config, clock: Clock) -> MemoryManager:
    return MemoryManager.open(
        data_dir, passphrase=PASSPHRASE, config=config, encoder=HashingEncoder(), clock=clock
    )


def _old_key_vectors_on_disk(manager: MemoryManager, old: MasterKey) -> int:
    """How many stored vectors, rotated under ``old``, can be found in the Chroma files."""
    blobs = manager.store.connection("core").fetch_all("SELECT vector FROM semantic_segments")
    rotation = VectorRotation(SemanticKeys.from_master_key(old).rotation_key, 384)
    needles = [
        rotation.rotate(np.frombuffer(r["vector"], dtype="<f4")).astype("<f4").tobytes()[:64]
        for r in blobs
    ]
    files = [f.read_bytes() for f in manager.store.layout.chroma.rglob("*") if f.is_file()]
    return sum(any(n in data for data in files) for n in needles)


def _assert_everything_readable(manager: MemoryManager, users: dict[str, str]) -> None:
    """Nothing lost: working memory, session values and a complete, current dense index."""
    assert [w.content for w in manager.working.recent("s-live")] == [LIVE]
    assert [w.content for w in manager.working.recent("s-old", newest_first=False)] == [
        text for _, text in OLD_TURNS
    ]
    assert manager.working.get_value("s-live", "mood") == {"valence": 0.4}
    assert manager.working.get_value("s-scratch", "draft") == "a value with no session record"
    assert manager.working.sessions(users["rae"])[:1] == ["s-live"]
    report = manager.semantic.verify_index()
    assert report.missing_count == 0 and report.extra_count == 0, report
    assert report.chroma_count == report.vectors == report.segments == 2
    hits = manager.semantic.search(users["rae"], "greyhound Pepper", 5, mode="dense")
    assert hits and "greyhound" in hits[0].text
    bobs = manager.semantic.search(users["bob"], "greyhound Pepper", 5, mode="dense")
    assert [h.text for h in bobs] and all("greyhound" not in h.text for h in bobs)
    assert not index_rebuild_pending(manager.store.data_dir)
    assert not KeyFile.load(manager.store.key_path).rotation_pending


def test_manager_rotation_covers_working_memory_and_the_index(tmp_path, test_config) -> None:
    clock = Clock()
    m = _new_manager(tmp_path / "data", test_config, clock)
    try:
        users = _fill(m, clock)
        old = m.store.master_key
        assert _old_key_vectors_on_disk(m, old) == 2  # the probe finds what is there
        report = m.rotate_master_key(PASSPHRASE)
        assert report.old_key_id == old.key_id != report.new_key_id == m.store.master_key.key_id
        assert report.steps["working_memory"] == {
            "messages": 4,
            "values": 2,
            "sessions": 3,
            "dropped_unreadable": 0,
            "dropped_legacy_values": 0,
            "already_current": 0,
        }
        assert report.steps["semantic_index"]["index_rebuild_pending"] == 1
        assert report.index_vectors == 2
        _assert_everything_readable(m, users)
        assert _old_key_vectors_on_disk(m, old) == 0
        # The manager keeps working under the new key.
        m.store_message(users["rae"], "s-live", "assistant", "I will remind you tomorrow.")
    finally:
        m.close()
    with pytest.raises(WrongPassphrase):
        WorkingMemoryStore(DataDir(tmp_path / "data").working_memory, old).close()
    again = _open(tmp_path / "data", test_config, clock)
    try:
        contents = [w.content for w in again.working.recent("s-live", newest_first=False)]
        assert contents == [LIVE, "I will remind you tomorrow."]
    finally:
        again.close()


def test_datastore_rotation_alone_covers_memory(tmp_path, test_config) -> None:
    """The path ``DataStore.open`` takes when it resumes: no manager, no encoder."""
    clock = Clock()
    m = _new_manager(tmp_path / "data", test_config, clock)
    users = _fill(m, clock)
    old = m.store.master_key
    m.close()
    with open_data_store(tmp_path / "data", passphrase=PASSPHRASE, config=test_config) as store:
        store.rotate_master_key(PASSPHRASE)
        assert store.last_rotation["working_memory"]["messages"] == 4
        assert not store.layout.chroma.exists()  # old-key vectors deleted at once
        assert index_rebuild_pending(store.data_dir)
    again = _open(tmp_path / "data", test_config, clock)  # rebuilds the index on open
    try:
        _assert_everything_readable(again, users)
        assert _old_key_vectors_on_disk(again, old) == 0
    finally:
        again.close()


def test_rotating_twice_and_an_empty_data_dir(tmp_path, test_config) -> None:
    with initialize_data_store(tmp_path / "bare", PASSPHRASE, config=test_config) as store:
        store.rotate_master_key(PASSPHRASE)
        assert store.last_rotation["semantic_index"]["index_rebuild_pending"] == 0
        assert not (tmp_path / "bare" / "memory").exists()  # nothing created
    clock = Clock()
    m = _new_manager(tmp_path / "data", test_config, clock)
    try:
        users = _fill(m, clock)
        m.rotate_master_key(PASSPHRASE)
        m.rotate_master_key(PASSPHRASE)
        _assert_everything_readable(m, users)
    finally:
        m.close()


def test_rotate_store_defers_the_index_when_the_model_differs(tmp_path, test_config) -> None:
    clock = Clock()
    m = _new_manager(tmp_path / "data", test_config, clock)
    _fill(m, clock)
    m.close()
    store = open_data_store(tmp_path / "data", passphrase=PASSPHRASE, config=test_config)
    try:
        other = HashingEncoder(seed=7)  # another model identity than the stored vectors'
        report = MemoryManager.rotate_store(store, PASSPHRASE, config=test_config, encoder=other)
    finally:
        store.close()
    assert report.index_rebuild_pending and report.index_vectors is None
    assert not KeyFile.load(DataDir(tmp_path / "data").key_file).rotation_pending
    assert index_rebuild_pending(tmp_path / "data")
    again = _open(tmp_path / "data", test_config, clock)  # the right model: rebuilt now
    try:
        assert again.semantic.verify_index().missing_count == 0
        assert not index_rebuild_pending(tmp_path / "data")
    finally:
        again.close()


def test_reseal_drops_only_unreadable_and_version_1_values(tmp_path) -> None:
    """Records the old key cannot open, and values without their key name, are counted."""
    path = tmp_path / "wm"
    old, new = MasterKey.generate(), MasterKey.generate()

    def plant(txn) -> None:
        key, sealed = next(iter(txn.cursor(db=wm._db_m)))
        txn.put(key + b"x", sealed, db=wm._db_m)  # sealed for another key: fails auth
        value_key = next(iter(txn.cursor(db=wm._db_v)))[0]
        # A version-1 value (bare JSON, no key name), sealed properly by an old build.
        raw_key = value_key[:16] + b"\x01" * 16
        legacy = wm._sealer.seal(b"values", raw_key, 2**63, b'"legacy"')
        txn.put(raw_key, legacy, db=wm._db_v)

    with WorkingMemoryStore(path, old) as wm:
        wm.append("u", "s", "user", "kept")
        wm.put_value("s", "k", 1)
        # Planted while open: a closed environment changed behind its seal (or, after a
        # crash, holding a record that fails authentication) is refused whole on open.
        wm._env().write(plant)
    report = WorkingMemoryStore.rekey(path, old, new)
    assert (report.messages, report.values, report.sessions) == (1, 1, 1)
    assert (report.dropped_unreadable, report.dropped_legacy_values) == (1, 1)
    assert WorkingMemoryStore.rekey(path, old, new).already_current
    with WorkingMemoryStore(path, new) as wm:
        assert [m.content for m in wm.recent("s")] == ["kept"]
        assert wm.get_value("s", "k") == 1
    with pytest.raises(WrongPassphrase):
        WorkingMemoryStore.rekey(path, MasterKey.generate(), MasterKey.generate())


# ---- crashes -------------------------------------------------------------------------

CRASHING_ROTATION = textwrap.dedent(
    """
    import os, sys
    from aico.ai.embeddings import HashingEncoder
    from aico.ai.memory.manager import MemoryManager
    from aico.config import load_config

    data_dir, passphrase, point, kdf = sys.argv[1:5]
    t, m, p = map(int, kdf.split(","))
    config = load_config(env={}, overrides={"security": {"use_keyring": False,
        "kdf_time_cost": t, "kdf_memory_cost_kib": m, "kdf_parallelism": p}})

    def die(*args, **kwargs):
        os._exit(17)  # power cut: no close, no commit, no cleanup

    def then_die(real):
        def wrapper(*args, **kwargs):
            real(*args, **kwargs)
            os._exit(17)
        return wrapper

    from aico.ai.memory import key_rotation
    steps = key_rotation.ROTATION_STEPS  # what every store the memory layer opens runs
    if point == "before-working-memory":
        steps["working_memory"] = die
    elif point == "inside-reseal":  # the LMDB transaction is written but not committed
        from aico.ai.memory.working import _store
        _store.reseal_records = then_die(_store.reseal_records)
    elif point == "after-working-memory":
        steps["working_memory"] = then_die(key_rotation.rekey_working_memory)
    elif point == "after-index-retired":
        steps["semantic_index"] = then_die(key_rotation.retire_semantic_index)
    elif point == "before-rebuild":
        from aico.ai.memory.semantic import SemanticMemoryStore
        SemanticMemoryStore.rebuild = die
    elif point == "inside-rebuild":  # one user's vectors written, the other's not
        from aico.ai.memory.semantic._chroma import ChromaIndex
        ChromaIndex.upsert = then_die(ChromaIndex.upsert)
    manager = MemoryManager.open(data_dir, passphrase=passphrase, config=config,
                                 encoder=HashingEncoder())
    manager.rotate_master_key(passphrase)
    os._exit(3)  # the crash point was never reached
    """
)

# Crash point -> which key opens working memory right after the crash.
CRASH_POINTS = {
    "before-working-memory": "current",
    "inside-reseal": "current",
    "after-working-memory": "pending",
    "after-index-retired": "pending",
    "before-rebuild": "current",  # the key file already made the new key current
    "inside-rebuild": "current",
}


def _working_memory_key(data_dir: Path) -> str:
    """Which key file slot opens working memory: never "neither"."""
    key_path = DataDir(data_dir).key_file
    candidates = {
        "current": KeyFile.unlock(key_path, PASSPHRASE),
        "pending": KeyFile.pending_rotation(key_path, PASSPHRASE),
    }
    for slot, key in candidates.items():
        if key is None:
            continue
        try:
            WorkingMemoryStore(DataDir(data_dir).working_memory, key).close()
        except WrongPassphrase:
            continue
        return slot
    return "neither"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("point", "resume"),
    [(p, "open") for p in CRASH_POINTS] + [("after-working-memory", "rerun")],
)
def test_rotation_survives_a_crash_anywhere(
    tmp_path, test_config, fast_kdf: KdfParams, point: str, resume: str
) -> None:
    data_dir = tmp_path / "data"
    clock = Clock()
    m = _new_manager(data_dir, test_config, clock)
    users = _fill(m, clock)
    old = m.store.master_key
    m.close()
    kdf = f"{fast_kdf.time_cost},{fast_kdf.memory_cost_kib},{fast_kdf.parallelism}"
    proc = subprocess.run(
        [sys.executable, "-c", CRASHING_ROTATION, str(data_dir), PASSPHRASE, point, kdf],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert proc.returncode == 17, proc.stderr
    assert _working_memory_key(data_dir) == CRASH_POINTS[point]
    finished = point.endswith("rebuild")  # the key file already names the new key
    assert KeyFile.load(DataDir(data_dir).key_file).rotation_pending != finished
    assert index_rebuild_pending(data_dir) == (finished or point == "after-index-retired")
    if resume == "rerun":  # `aico keys rotate` again: its rotation resumes the pending one
        store = open_data_store(
            data_dir, passphrase=PASSPHRASE, config=test_config, resume_rotation=False
        )
        try:
            MemoryManager.rotate_store(
                store, PASSPHRASE, config=test_config, encoder=HashingEncoder()
            )
        finally:
            store.close()
    again = _open(data_dir, test_config, clock)  # finishes whatever is left
    try:
        _assert_everything_readable(again, users)
        assert again.store.master_key.key_id != old.key_id
        assert _old_key_vectors_on_disk(again, old) == 0
    finally:
        again.close()


@pytest.mark.slow
def test_cli_rotate_reports_every_store(tmp_path, test_config, onnx_encoder, embedding_cache_dir):
    """``aico keys rotate`` with the configured (real) model rebuilds the index itself."""
    from click.testing import CliRunner

    from aico.cli.main import cli

    data_dir = tmp_path / "data"
    clock = Clock()
    m = MemoryManager.initialize(
        data_dir, PASSPHRASE, config=test_config, encoder=onnx_encoder, clock=clock
    )
    users = _fill(m, clock)
    m.close()
    params = KdfParams.for_tests()
    env = {
        "AICO_DATA_DIR": str(data_dir),
        "AICO_PASSPHRASE": PASSPHRASE,
        "AICO_CONFIG": "",
        "AICO_SECURITY__USE_KEYRING": "false",
        "AICO_SECURITY__KDF_TIME_COST": str(params.time_cost),
        "AICO_SECURITY__KDF_MEMORY_COST_KIB": str(params.memory_cost_kib),
        "AICO_SECURITY__KDF_PARALLELISM": str(params.parallelism),
        "AICO_MEMORY__SEMANTIC__MODEL_CACHE_DIR": str(embedding_cache_dir),
        "HF_HUB_OFFLINE": "1",
    }
    result = CliRunner().invoke(cli, ["keys", "rotate"], env=env)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("master key rotated: ")
    assert "working memory re-sealed: 4 messages, 2 values, 3 sessions" in lines
    assert "semantic index rebuilt under the new key: 2 vectors" in lines
    help_text = CliRunner().invoke(cli, ["keys", "rotate", "--help"], env=env).output
    assert "working memory" in help_text and "Chroma index" in help_text
    again = MemoryManager.open(
        data_dir, passphrase=PASSPHRASE, config=test_config, encoder=onnx_encoder, clock=clock
    )
    try:
        assert [w.content for w in again.working.recent("s-live")] == [LIVE]
        report = again.semantic.verify_index()
        assert report.missing_count == report.extra_count == 0 and report.chroma_count == 2
        hits = again.semantic.search(users["rae"], "my sister's dog", 3, mode="dense")
        assert hits and "greyhound" in hits[0].text
    finally:
        again.close()
