"""WorkingMemoryStore on real LMDB files: sealing, keys, TTL, sweeping, order, deletes, faults."""

from __future__ import annotations

import base64
import sys
from collections.abc import Iterator
from pathlib import Path

import lmdb
import pytest

import aico.ai.memory.working as working
from aico.ai.memory.working import (
    WorkingMemoryStore,
    WorkingMessage,
    list_session,
    status,
    sweep,
)
from aico.errors import IntegrityError, InvalidInput, StoreClosed, WrongPassphrase
from aico.security import MasterKey, Purpose

# The suite imports test modules with importlib (no sys.path entry); the helpers must be
# importable by name, also in spawned child processes, so their folder goes on sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from working_memory_support import DAY, T0, FakeClock

MARKER = "PLAINTEXT-MARKER-7f3a9c"
DB_NAMES = (b"meta", b"messages", b"values", b"sessions", b"by_user", b"expiry")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def wm_path(tmp_path: Path) -> Path:
    return tmp_path / "memory" / "working"


@pytest.fixture
def wm(wm_path: Path, master_key: MasterKey, clock: FakeClock) -> Iterator[WorkingMemoryStore]:
    # sync=False keeps the suite fast on a slow disk; durability has its own test.
    store = WorkingMemoryStore(wm_path, master_key, clock=clock, sync=False)
    yield store
    store.close()


def raw_records(path: Path) -> dict[bytes, list[tuple[bytes, bytes]]]:
    """Every (key, value) of every named database, read with plain LMDB (store closed)."""
    env = lmdb.open(str(path), readonly=True, max_dbs=len(DB_NAMES), lock=False)
    try:
        found = {}
        for name in DB_NAMES:
            db = env.open_db(name, create=False)
            with env.begin(db=db) as txn:
                found[name] = list(txn.cursor())
        return found
    finally:
        env.close()


def readable_forms(text: str) -> list[bytes]:
    raw = text.encode()
    return [
        raw,
        text.encode("utf-16-le"),
        raw.hex().encode(),
        raw.hex().upper().encode(),
        base64.b64encode(raw).rstrip(b"="),
        base64.urlsafe_b64encode(raw).rstrip(b"="),
    ]


def test_public_surface_is_sorted_and_complete() -> None:
    public = {n for n in dir(working) if not n.startswith("_")}
    assert working.__all__ == sorted(working.__all__, key=lambda n: (not n[0].isupper(), n))
    assert set(working.__all__) == public - {"annotations"}


def test_marker_never_reaches_disk(wm: WorkingMemoryStore, wm_path: Path, clock: FakeClock) -> None:
    for i in range(600):
        clock.advance(0.5)
        wm.append(
            f"user-{MARKER}",
            f"session-{MARKER}-{i % 3}",
            "user",
            f"{MARKER} message {i} " + "y" * (i % 200),
            conversation_id=f"conv-{MARKER}",
            metadata={"note": MARKER},
        )
    wm.put_value(f"session-{MARKER}-0", f"key-{MARKER}", {"v": MARKER})
    wm.flush()
    files = [p for p in wm_path.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"data.mdb", "lock.mdb"}
    for path in files:
        data = path.read_bytes()
        for needle in readable_forms(MARKER):
            assert needle not in data, f"{path.name} holds the marker"
    assert len(wm.recent(f"session-{MARKER}-0", 1000)) == 200


def test_keys_hold_no_readable_identifier(
    wm: WorkingMemoryStore, wm_path: Path, clock: FakeClock
) -> None:
    ids = ["alice@example.org", "session-2024-05-01-alice", "conversation-42", "mood"]
    wm.append(ids[0], ids[1], "user", "hello", conversation_id=ids[2])
    wm.put_value(ids[1], ids[3], "calm")
    wm.close()
    records = raw_records(wm_path)
    assert records[b"messages"] and records[b"sessions"] and records[b"by_user"]
    for name, items in records.items():
        for key, value in items:
            for ident in ids:
                for form in readable_forms(ident):
                    assert form not in key, f"{name!r} key shows an id"
                    assert form not in value, f"{name!r} value shows an id"


def test_ttl_boundary_with_injected_clock(wm: WorkingMemoryStore, clock: FakeClock) -> None:
    wm.append("u", "s", "user", "remember me")
    wm.put_value("s", "k", 1)
    clock.now = T0 + DAY - 60  # 23h59m
    assert [m.content for m in wm.recent("s")] == ["remember me"]
    assert len(wm.range("s")) == 1
    assert wm.get_value("s", "k") == 1
    assert wm.sessions("u") == ["s"]
    clock.now = T0 + DAY + 1  # 24h00m01s
    assert wm.recent("s") == []
    assert wm.range("s") == []
    assert wm.get_value("s", "k", "gone") == "gone"
    assert wm.sessions("u") == []


def test_message_reports_its_times(wm: WorkingMemoryStore) -> None:
    message = wm.append("u", "s", "user", "hi", metadata={"lang": "en"})
    assert message.created_at == pytest.approx(T0)
    assert message.expires_at == pytest.approx(T0 + DAY)
    (stored,) = wm.recent("s")
    assert stored == message
    assert stored.metadata == {"lang": "en"}
    assert "hi" not in repr(stored)


def test_sweeper_removes_exactly_the_expired(wm: WorkingMemoryStore, clock: FakeClock) -> None:
    for i in range(10):
        wm.append("u", "early", "user", f"early {i}")
    wm.put_value("early", "short", 1, ttl=3600)
    wm.put_value("early", "long", 2, ttl=2 * DAY)
    clock.advance(2 * 3600)
    for i in range(10):
        wm.append("u", "late", "user", f"late {i}")
    clock.now = T0 + DAY + 1
    before = status(wm)
    assert before["messages"] == 20 and before["values"] == 2
    assert before["expired_pending"] == 11  # 10 early messages + the short value
    assert sweep(wm) == 11
    after = status(wm)
    assert (after["messages"], after["values"], after["expired_pending"]) == (10, 1, 0)
    assert [m.content for m in wm.recent("late", 100, newest_first=False)] == [
        f"late {i}" for i in range(10)
    ]
    assert wm.get_value("early", "long") == 2
    assert sweep(wm) == 0
    clock.now = T0 + 3 * DAY
    assert sweep(wm, limit=5) == 5
    assert sweep(wm) == 6
    assert status(wm)["sessions"] == 0


def test_per_entry_ttl_overrides_the_default(wm: WorkingMemoryStore, clock: FakeClock) -> None:
    wm.append("u", "s", "user", "normal")
    wm.append("u", "s", "user", "short", ttl=60)
    wm.append("u", "s", "user", "long", ttl=3 * DAY)
    wm.put_value("s", "flash", "x", ttl=10)
    clock.advance(61)
    assert [m.content for m in wm.recent("s")] == ["long", "normal"]
    assert wm.get_value("s", "flash") is None
    clock.now = T0 + 2 * DAY
    assert [m.content for m in wm.recent("s")] == ["long"]
    assert wm.sessions("u") == ["s"]  # the session lives as long as its longest entry


def test_store_ttl_is_configurable(wm_path: Path, master_key: MasterKey, clock: FakeClock) -> None:
    with WorkingMemoryStore(wm_path, master_key, clock=clock, ttl=600, sync=False) as store:
        store.append("u", "s", "user", "ten minutes")
        clock.advance(599)
        assert len(store.recent("s")) == 1
        clock.advance(2)
        assert store.recent("s") == []


def test_order_and_same_microsecond_appends(wm: WorkingMemoryStore, clock: FakeClock) -> None:
    sent = [wm.append("u", "s", "user", f"m{i:03d}") for i in range(150)]  # clock frozen
    assert len({m.created_at for m in sent}) == 1
    newest = wm.recent("s", 20)
    assert [m.content for m in newest] == [f"m{i:03d}" for i in range(149, 129, -1)]
    oldest_first = wm.recent("s", 20, newest_first=False)
    assert [m.content for m in oldest_first] == [f"m{i:03d}" for i in range(130, 150)]
    assert [m.content for m in wm.range("s")] == [f"m{i:03d}" for i in range(150)]
    clock.advance(-5)  # a clock step backwards must not reorder a session
    wm.append("u", "s", "user", "after the step")
    assert wm.recent("s", 1)[0].content == "after the step"


def test_range_selects_by_creation_time(wm: WorkingMemoryStore, clock: FakeClock) -> None:
    for i in range(10):
        wm.append("u", "s", "user", f"m{i}")
        clock.advance(10)
    found = wm.range("s", T0 + 20, T0 + 50)
    assert [m.content for m in found] == ["m2", "m3", "m4"]
    newest = wm.range("s", T0 + 20, T0 + 50, newest_first=True, limit=2)
    assert [m.content for m in newest] == ["m4", "m3"]
    assert wm.range("s", T0 + 1000) == []
    with pytest.raises(InvalidInput):
        wm.range("s", T0 + 50, T0 + 20)


def test_sessions_are_isolated(wm: WorkingMemoryStore) -> None:
    wm.append("u", "a", "user", "in a")
    wm.append("u", "b", "user", "in b")
    wm.put_value("a", "k", "a's value")
    assert [m.content for m in wm.recent("a")] == ["in a"]
    assert wm.get_value("b", "k") is None


def test_delete_session(wm: WorkingMemoryStore) -> None:
    for i in range(5):
        wm.append("u", "doomed", "user", f"m{i}")
    wm.put_value("doomed", "k", 1)
    wm.append("u", "kept", "user", "stay")
    assert wm.delete_session("doomed") == 6
    assert wm.recent("doomed") == []
    assert wm.get_value("doomed", "k") is None
    assert wm.sessions("u") == ["kept"]
    assert [m.content for m in wm.recent("kept")] == ["stay"]
    counts = status(wm)
    assert (counts["messages"], counts["values"], counts["sessions"]) == (1, 0, 1)
    assert counts["expired_pending"] == 0
    assert wm.delete_session("doomed") == 0


def test_delete_user(wm: WorkingMemoryStore, clock: FakeClock) -> None:
    wm.append("alice", "a1", "user", "one")
    clock.advance(1)
    wm.append("alice", "a2", "user", "two")
    wm.put_value("a2", "k", 1)
    wm.append("bob", "b1", "user", "bob's")
    assert wm.sessions("alice") == ["a2", "a1"]
    assert wm.delete_user("alice") == 2
    assert wm.sessions("alice") == []
    assert wm.recent("a1") == [] and wm.recent("a2") == []
    assert wm.get_value("a2", "k") is None
    assert [m.content for m in wm.recent("b1")] == ["bob's"]
    assert status(wm)["entries"] == 1


def test_unknown_session_is_empty_not_an_error(wm: WorkingMemoryStore) -> None:
    assert wm.recent("nobody") == []
    assert wm.range("nobody", T0, T0 + 10) == []
    assert wm.get_value("nobody", "k", "default") == "default"
    assert wm.sessions("nobody") == []
    assert list_session(wm, "nobody") == []
    assert wm.delete_user("nobody") == 0


def test_values_round_trip(wm: WorkingMemoryStore) -> None:
    value = {"list": [1, 2.5, None, True], "text": "é ✓", "nested": {"a": {}}}
    wm.put_value("s", "state", value)
    assert wm.get_value("s", "state") == value
    wm.put_value("s", "state", "replaced")
    assert wm.get_value("s", "state") == "replaced"
    assert status(wm)["values"] == 1
    assert wm.delete_value("s", "state") is True
    assert wm.delete_value("s", "state") is False
    assert status(wm)["expired_pending"] == 0


def test_bad_input(wm_path: Path, master_key: MasterKey, clock: FakeClock) -> None:
    with WorkingMemoryStore(wm_path, master_key, clock=clock, max_value_bytes=1000) as store:
        with pytest.raises(InvalidInput):
            store.append("u", "s", "user", "x" * 2000)
        with pytest.raises(InvalidInput):
            store.put_value("s", "k", "x" * 2000)
        with pytest.raises(InvalidInput):
            store.put_value("s", "k", {1, 2})
        with pytest.raises(InvalidInput):
            store.put_value("s", "k", float("nan"))
        for bad in ("", "x" * 129, None, 5):
            with pytest.raises(InvalidInput):
                store.append(bad, "s", "user", "hi")  # type: ignore[arg-type]
            with pytest.raises(InvalidInput):
                store.recent(bad)  # type: ignore[arg-type]
        for ttl in (0, -1, float("nan"), float("inf"), True):
            with pytest.raises(InvalidInput):
                store.append("u", "s", "user", "hi", ttl=ttl)
        with pytest.raises(InvalidInput):
            store.recent("s", -1)
        with pytest.raises(InvalidInput):
            store.append("u", "s", "user", "hi", metadata=["not", "a", "dict"])  # type: ignore[arg-type]
        assert status(store)["entries"] == 0
    with pytest.raises(InvalidInput):
        WorkingMemoryStore(wm_path)


def test_session_belongs_to_its_first_user(wm: WorkingMemoryStore) -> None:
    wm.append("alice", "s", "user", "mine")
    with pytest.raises(InvalidInput) as info:
        wm.append("mallory", "s", "user", "sneaky")
    assert "mallory" not in str(info.value)
    assert [m.content for m in wm.recent("s")] == ["mine"]


def test_expired_session_id_taken_over_by_another_user(
    wm: WorkingMemoryStore, clock: FakeClock
) -> None:
    wm.append("alice", "s", "user", "alice's")
    clock.advance(DAY + 1)  # expired, not swept: without session_metadata the id is free again
    wm.append("bob", "s", "user", "bob's")
    assert wm.sessions("alice") == []
    assert wm.sessions("bob") == ["s"]
    assert wm.delete_user("alice") == 0
    assert [m.content for m in wm.recent("s")] == ["bob's"]


def test_wrong_key_is_refused_before_any_read(
    wm: WorkingMemoryStore, wm_path: Path, master_key: MasterKey, clock: FakeClock
) -> None:
    wm.append("u", "s", "user", "secret")
    wm.close()
    with pytest.raises(WrongPassphrase):
        WorkingMemoryStore(wm_path, MasterKey.generate(), clock=clock)
    # Right value key, wrong key-hash key: still refused (the canary checks both).
    with pytest.raises(WrongPassphrase):
        WorkingMemoryStore(
            wm_path,
            values_key=master_key.subkey(Purpose.LMDB_VALUES),
            key_hash_key=MasterKey.generate().subkey(Purpose.LMDB_KEY_HASH),
            clock=clock,
        )
    with WorkingMemoryStore(
        wm_path,
        values_key=master_key.subkey(Purpose.LMDB_VALUES),
        key_hash_key=master_key.subkey(Purpose.LMDB_KEY_HASH),
        clock=clock,
    ) as store:
        assert [m.content for m in store.recent("s")] == ["secret"]


def test_tampered_entry_fails_alone(
    wm: WorkingMemoryStore, wm_path: Path, master_key: MasterKey, clock: FakeClock
) -> None:
    sent = []
    for i in range(3):
        sent.append(wm.append("u", "s", "user", f"message {i} " + "z" * 50))
        clock.advance(10)
    wm.put_value("s", "k", "still fine")
    wm.close()
    victim = raw_records(wm_path)[b"messages"][1][1]
    data_file = wm_path / "data.mdb"
    data = bytearray(data_file.read_bytes())
    start = data.find(victim)
    assert start >= 0
    while start >= 0:  # every copy LMDB may keep (old pages) gets the same flipped byte
        data[start + len(victim) - 20] ^= 0x01
        start = data.find(victim, start + 1)

    with WorkingMemoryStore(wm_path, master_key, clock=clock) as store:
        # Damaged while open: a closed file is refused whole by its seal or its audit
        # (test_working_damage.py), so only damage under a running store reaches one entry.
        with open(data_file, "r+b") as fh:
            fh.write(bytes(data))
        assert [m.content for m in store.recent("s", 1)] == [sent[2].content]
        with pytest.raises(IntegrityError) as info:
            store.recent("s", 3)
        assert "zzzz" not in str(info.value)
        survivors = store.recent("s", 3, skip_corrupt=True)
        assert [m.id for m in survivors] == [sent[2].id, sent[0].id]
        assert [m.id for m in store.range("s", T0, T0 + 5)] == [sent[0].id]
        assert store.get_value("s", "k") == "still fine"
        # The damaged entry can still be forgotten.
        assert store.delete_session("s") == 4


def test_refresh_on_read(wm_path: Path, master_key: MasterKey, clock: FakeClock) -> None:
    with WorkingMemoryStore(wm_path, master_key, clock=clock, refresh_on_read=True) as store:
        store.append("u", "s", "user", "kept alive")
        store.put_value("s", "k", 1)
        for _ in range(3):
            clock.advance(DAY - 10)
            assert [m.content for m in store.recent("s")] == ["kept alive"]
            assert store.get_value("s", "k") == 1
        assert store.sessions("u") == ["s"]
        assert sweep(store) == 0
        clock.advance(DAY + 1)
        assert store.recent("s") == []
        assert sweep(store) == 2
        assert status(store)["sessions"] == 0


def test_refresh_is_off_by_default(wm: WorkingMemoryStore, clock: FakeClock) -> None:
    wm.append("u", "s", "user", "not refreshed")
    clock.advance(DAY - 10)
    assert wm.recent("s")
    clock.advance(11)
    assert wm.recent("s") == []


def test_closed_store_refuses_work(wm: WorkingMemoryStore) -> None:
    wm.close()
    wm.close()  # idempotent
    with pytest.raises(StoreClosed):
        wm.recent("s")
    with pytest.raises(StoreClosed):
        wm.append("u", "s", "user", "late")


def test_stores_share_one_environment(
    wm: WorkingMemoryStore, wm_path: Path, master_key: MasterKey, clock: FakeClock
) -> None:
    other = WorkingMemoryStore(wm_path, master_key, clock=clock)
    assert other._shared is wm._shared
    other.append("u", "s", "user", "via other")
    other.close()
    assert [m.content for m in wm.recent("s")] == ["via other"]


def test_default_store_syncs_every_commit(
    wm_path: Path, master_key: MasterKey, clock: FakeClock
) -> None:
    with WorkingMemoryStore(wm_path, master_key, clock=clock) as store:
        store.append("u", "s", "user", "durable")
        assert status(store)["sync"] is True
    with WorkingMemoryStore(wm_path, master_key, clock=clock) as store:
        assert [m.content for m in store.recent("s")] == ["durable"]


def test_unsynced_store_flushes(wm_path: Path, master_key: MasterKey, clock: FakeClock) -> None:
    with WorkingMemoryStore(wm_path, master_key, clock=clock, sync=False) as store:
        store.append("u", "s", "user", "fast")
        store.flush()
        assert status(store)["sync"] is False
    with WorkingMemoryStore(wm_path, master_key, clock=clock) as store:
        assert [m.content for m in store.recent("s")] == ["fast"]


def test_cli_functions(wm: WorkingMemoryStore, clock: FakeClock) -> None:
    for i in range(30):
        wm.append("u", "s", "user" if i % 2 else "assistant", f"m{i}")
    shown = list_session(wm, "s", limit=5)
    assert all(isinstance(m, WorkingMessage) for m in shown)
    assert [m.content for m in shown] == [f"m{i}" for i in range(25, 30)]
    info = status(wm)
    for key in ("entries", "sessions", "bytes", "expired_pending", "map_size"):
        assert isinstance(info[key], int)
    assert info["entries"] == 30 and info["sessions"] == 1


def test_default_path_layout(tmp_path: Path) -> None:
    assert WorkingMemoryStore.default_path(tmp_path) == tmp_path / "memory" / "working"
