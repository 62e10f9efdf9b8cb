"""What ``AicoStore`` adds to the ``BaseStore`` contract: TTL, hybrid search, users, forget.

Real encrypted data dirs with the hashing encoder. TTL runs on an injected clock instead of
sleeping (the store reads time only through it), except for the sweeper thread, which is
given a short real interval.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from integration_support import scan
from langgraph.store.base import PutOp
from langgraph.store.memory import InMemoryStore

from aico.ai.embeddings import HashingEncoder
from aico.ai.memory import MemoryManager
from aico.data.repositories import UserService
from aico.errors import InvalidInput, NotFound, ReadOnly
from aico.integrations.langgraph import AicoStore, InvalidNamespace


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _count(memory: MemoryManager, table: str) -> int:
    return int(memory.store.connection("core").fetch_value(f"SELECT count(*) FROM {table}"))


# -- TTL -------------------------------------------------------------------------------


def test_ttl_expires_and_sweeps(memory: MemoryManager) -> None:
    clock = Clock()
    store = AicoStore(memory, ttl={"default_ttl": 1.0}, clock=clock)
    store.put(("maya", "m"), "short", {"v": "a"})
    store.put(("maya", "m"), "custom", {"v": "b"}, ttl=3.0)
    store.put(("maya", "m"), "forever", {"v": "c"}, ttl=None)
    clock.advance(30)
    assert store.sweep_ttl() == 0
    clock.advance(60)
    assert store.sweep_ttl() == 1
    assert store.get(("maya", "m"), "short") is None
    assert store.get(("maya", "m"), "custom", refresh_ttl=False) is not None
    clock.advance(180)
    assert store.sweep_ttl() == 1
    assert [i.key for i in store.search(("maya",))] == ["forever"]
    assert _count(memory, "integration_store_texts") == 1  # the swept items' index went too


def test_ttl_refresh_on_read_by_get_and_search(memory: MemoryManager) -> None:
    clock = Clock()
    store = AicoStore(memory, ttl={"default_ttl": 1.0, "refresh_on_read": True}, clock=clock)
    store.put(("maya", "m"), "a", {"text": "apple", "id": 1})
    store.put(("maya", "m"), "b", {"text": "banana", "id": 2})
    clock.advance(50)
    assert store.get(("maya", "m"), "a") is not None  # refreshes a: expires at 110 s
    assert [i.key for i in store.search(("maya",), filter={"id": 2})] == ["b"]  # b: 110 s too
    clock.advance(50)
    assert store.sweep_ttl() == 0
    assert store.get(("maya", "m"), "a", refresh_ttl=False) is not None
    clock.advance(15)
    assert store.sweep_ttl() == 2  # neither was refreshed since 50 s


def test_ttl_without_refresh_on_read(memory: MemoryManager) -> None:
    clock = Clock()
    store = AicoStore(memory, ttl={"default_ttl": 1.0, "refresh_on_read": False}, clock=clock)
    store.put(("maya", "m"), "a", {"v": 1})
    clock.advance(50)
    assert store.get(("maya", "m"), "a") is not None
    clock.advance(20)
    assert store.sweep_ttl() == 1


def test_omit_expired_hides_items_before_the_sweep(memory: MemoryManager) -> None:
    clock = Clock()
    store = AicoStore(memory, ttl={"omit_expired": True}, clock=clock)
    store.put(("maya", "m"), "a", {"v": 1}, ttl=1.0)
    clock.advance(61)
    assert store.get(("maya", "m"), "a") is None
    assert store.search(("maya",)) == []
    assert store.list_namespaces() == []
    assert _count(memory, "integration_store_items") == 1  # still there until swept
    visible = AicoStore(memory, clock=clock)
    assert visible.get(("maya", "m"), "a") is not None


def test_sweeper_thread(memory: MemoryManager) -> None:
    clock = Clock()
    store = AicoStore(memory, ttl={"sweep_interval_minutes": 0.002}, clock=clock)
    try:
        store.put(("maya", "m"), "a", {"v": 1}, ttl=1.0)
        clock.advance(120)
        deadline = time.monotonic() + 10
        while store.get(("maya", "m"), "a", refresh_ttl=False) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert store.get(("maya", "m"), "a", refresh_ttl=False) is None
    finally:
        assert store.stop_ttl_sweeper(timeout=5)


def test_ttl_is_refused_by_stores_without_it(memory: MemoryManager) -> None:
    with pytest.raises(NotImplementedError):
        InMemoryStore().put(("a",), "k", {"v": 1}, ttl=1.0)
    store = AicoStore(memory)
    for bad in (0, -1, float("nan"), float("inf"), True):
        with pytest.raises(InvalidInput):
            store.put(("maya",), "k", {"v": 1}, ttl=bad)
    with pytest.raises(InvalidInput):
        AicoStore(memory, ttl={"default_ttl": -5})


# -- search ----------------------------------------------------------------------------


def test_a_lexical_match_ranks_first(memory: MemoryManager) -> None:
    store = AicoStore(memory)
    for i in range(30):
        store.put(("maya", "notes"), f"n{i}", {"text": f"note {i} about the garden and plants"})
    store.put(("maya", "notes"), "needle", {"text": "the locker code is zq4417"})
    hits = store.search(("maya",), query="what was zq4417 for?")
    assert hits[0].key == "needle"
    assert hits[0].score is not None and hits[0].score > hits[1].score  # type: ignore[operator]


def test_bm25_indexes_values_not_json_keys(memory: MemoryManager) -> None:
    store = AicoStore(memory)
    store.put(("maya",), "a", {"zqfieldname": "plain words"})
    store.put(("maya",), "b", {"other": "zqfieldname appears here"})
    hits = store.search(("maya",), query="zqfieldname")
    assert hits[0].key == "b"


def test_an_update_replaces_the_index(memory: MemoryManager) -> None:
    store = AicoStore(memory)
    store.put(("maya",), "a", {"text": "zqoldword"})
    store.put(("maya",), "a", {"text": "zqnewword"})
    assert _count(memory, "integration_store_texts") == 1
    core = memory.store.connection("core")
    for word, expected in (("zqoldword", 0), ("zqnewword", 1)):
        assert (
            core.fetch_value(
                "SELECT count(*) FROM integration_store_fts WHERE integration_store_fts MATCH ?",
                (word,),
            )
            == expected
        )
    assert store.search(("maya",), query="zqnewword")[0].key == "a"


def test_store_items_and_memories_stay_apart(memory: MemoryManager) -> None:
    store = AicoStore(memory)
    store.put(("maya", "memories"), "k", {"text": "zqitemword lives in the store"})
    memory.store_message("maya", "s1", "user", "zqmessageword lives in the log")
    memory.end_session("s1")
    assert [h.text for h in memory.search("maya", "zqmessageword")] != []
    assert all("zqitemword" not in h.text for h in memory.search("maya", "zqitemword", k=50))
    context = memory.assemble_context("maya", "s2", "zqitemword")
    assert "zqitemword" not in repr([m.text for m in context.memories])
    assert all(i.key == "k" for i in store.search(("maya",), query="zqmessageword"))


def test_no_index_config_means_no_vectors(memory: MemoryManager) -> None:
    store = AicoStore(memory, index=False)
    store.put(("maya",), "a", {"text": "anything"}, index=["text"])
    assert _count(memory, "integration_store_texts") == 0
    assert [i.key for i in store.search(("maya",), query="anything")] == ["a"]
    assert store.index_config is None
    with pytest.raises(InvalidInput):
        AicoStore(memory, index={"dims": 384, "embed": lambda texts: []})  # type: ignore[typeddict-item]
    with pytest.raises(InvalidInput):
        AicoStore(memory, index={"dims": 12})


def test_a_model_change_reembeds_on_open(memory: MemoryManager) -> None:
    store = AicoStore(memory)
    for i in range(5):
        store.put(("maya",), f"k{i}", {"text": f"item {i}"})
    other = HashingEncoder(seed=7)
    changed = AicoStore(memory, encoder=other)
    core = memory.store.connection("core")
    assert (
        core.fetch_value(
            "SELECT count(*) FROM integration_store_texts WHERE vector_fingerprint = ?",
            (other.fingerprint,),
        )
        == 5
    )
    assert changed.reindex() == 0
    assert changed.search(("maya",), query="item 3")[0].key == "k3"


# -- users -----------------------------------------------------------------------------


def test_namespaces_name_users(memory: MemoryManager) -> None:
    store = AicoStore(memory, user_position=1)
    store.put(("memories", "newcomer"), "k", {"v": 1})
    assert UserService(memory.store.connection("core")).exists("newcomer")
    with pytest.raises(InvalidNamespace):
        store.put(("memories",), "k", {"v": 1})  # no label at position 1
    strict = AicoStore(memory, create_users=False)
    with pytest.raises(NotFound) as caught:
        strict.put(("stranger", "m"), "k", {"v": 1})
    assert "stranger" not in str(caught.value)
    strict.put(("maya", "m"), "k", {"v": 1})
    fixed = AicoStore(memory, user_id="bob")
    fixed.put(("anything", "at", "all"), "k", {"v": 2})
    owner = memory.store.connection("core").fetch_value(
        "SELECT user_id FROM integration_store_items WHERE namespace = 'anything.at.all'"
    )
    assert owner == "bob"


def test_forget_removes_a_users_items_everywhere(memory: MemoryManager, data_dir) -> None:
    store = AicoStore(memory)
    for i in range(20):
        store.put(("maya", "memories"), f"k{i}", {"text": f"zqmayasecret{i} and more words"})
    store.put(("bob", "memories"), "k", {"text": "zqbobkeeps this"})
    memory.forget("maya")
    assert store.search(("maya",)) == []
    assert store.get(("maya", "memories"), "k1") is None
    assert [i.key for i in store.search((), query="zqbobkeeps")] == ["k"]
    core = memory.store.connection("core")
    assert core.fetch_value("SELECT count(*) FROM integration_store_texts") == 1
    pages = b"".join(r["data"] for r in core.fetch_all("SELECT data FROM sqlite_dbpage"))
    assert b"zqmayasecret" not in pages and b"zqbobkeeps" in pages
    assert scan(data_dir, [b"zqmayasecret", b"zqbobkeeps"]) == []  # encrypted on disk


def test_nothing_readable_outside_the_encrypted_files(memory: MemoryManager, data_dir) -> None:
    store = AicoStore(memory)
    store.put(("maya", "memories"), "zqkeymarker", {"text": "zqvaluemarker"}, ttl=5.0)
    store.search(("maya",), query="zqvaluemarker")
    memory.store.connection("core").checkpoint()
    assert scan(data_dir, [b"zqvaluemarker", b"zqkeymarker"]) == []


# -- modes and errors ------------------------------------------------------------------


def test_read_only_reads_and_refuses_writes(
    open_memory: Callable[..., MemoryManager], memory: MemoryManager
) -> None:
    clock = Clock()
    AicoStore(memory, clock=clock).put(("maya",), "k", {"text": "hello"}, ttl=1.0)
    reader = AicoStore(open_memory(read_only=True), clock=clock)
    assert reader.get(("maya",), "k") is not None  # a refresh is skipped, not an error
    assert [i.key for i in reader.search(("maya",), query="hello")] == ["k"]
    with pytest.raises(ReadOnly):
        reader.put(("maya",), "k2", {"v": 1})
    with pytest.raises(ReadOnly):
        reader.sweep_ttl()


def test_bad_input_is_invalid_input_and_never_echoed(memory: MemoryManager) -> None:
    store = AicoStore(memory)
    cases = [
        lambda: store.put(("maya",), "k", {"v": float("nan")}),
        lambda: store.put(("maya",), "k", {"v": "zqsecret\x00"}),
        lambda: store.put(("maya",), "k", {"v": "\ud800zqsecret"}),
        lambda: store.put(("maya",), "zqsecret\x00", {"v": 1}),
        lambda: store.put(("maya",), "k", {1: "zqsecret"}),  # type: ignore[dict-item]
        lambda: store.batch([PutOp(("maya",), "k", "zqsecret")]),  # type: ignore[arg-type]
        lambda: store.search(("maya",), filter={"a": {"$regex": "zqsecret"}}),
        lambda: store.search(("maya",), filter={'zq"secret': 1}),
        lambda: store.search(("maya",), filter={"a": object()}),
        lambda: store.search(("maya",), query="zqsecret\x00"),
        lambda: store.search(("maya",), limit=-1),
        lambda: store.batch([PutOp(("zq\x00secret",), "k", {"v": 1})]),
        lambda: store.put(("maya",), "k", {"v": 1}, index="text"),  # type: ignore[arg-type]
        lambda: store.list_namespaces(max_depth=0),
    ]
    for case in cases:
        with pytest.raises(InvalidInput) as caught:
            case()
        assert "zqsecret" not in str(caught.value)
    assert store.search(("maya",)) == []


def test_the_schema_rolls_back_and_comes_back(memory: MemoryManager) -> None:
    AicoStore(memory).put(("maya",), "k", {"v": 1})
    steps = memory.store.rollback(to=0, schema="integrations")
    assert [(db, s.version, s.direction) for db, s in steps] == [("core", 1, "down")]
    core = memory.store.connection("core")
    assert (
        core.fetch_value("SELECT count(*) FROM sqlite_master WHERE name LIKE 'integration%'") == 0
    )
    store = AicoStore(memory)  # migrates again
    assert store.get(("maya",), "k") is None
    store.put(("maya",), "k", {"v": 2})
    assert store.get(("maya",), "k").value == {"v": 2}  # type: ignore[union-attr]


def test_items_without_their_index_are_indexed_on_open(memory: MemoryManager) -> None:
    """What an import of the item rows alone leaves (the index is derived): made on open."""
    store = AicoStore(memory, index={"fields": ["text"]})
    store.put(("maya",), "a", {"text": "zqimported words"})
    store.put(("maya",), "b", {"other": "no text field, so nothing to index"})
    core = memory.store.connection("core")
    core.execute("DELETE FROM integration_store_texts")
    assert store.search(("maya",), query="zqimported")[0].score is None  # found unranked only
    again = AicoStore(memory, index={"fields": ["text"]})
    assert core.fetch_value("SELECT count(*) FROM integration_store_texts") == 1
    hit = again.search(("maya",), query="zqimported")[0]
    assert hit.key == "a" and hit.score is not None
    assert again.reindex() == 0  # "b" has nothing to index: looked at, and left alone


def test_open_owns_its_manager(memory: MemoryManager, data_dir, test_config) -> None:
    from integration_support import PASSPHRASE

    memory.close()
    with AicoStore.open(
        data_dir,
        passphrase=PASSPHRASE,
        config=test_config,
        encoder=HashingEncoder(),
        user_position=1,
    ) as store:
        store.put(("memories", "maya"), "k", {"text": "opened"})
        manager = store.memory
    assert manager._closed  # type: ignore[attr-defined]
    with AicoStore.open(
        data_dir,
        passphrase=PASSPHRASE,
        config=test_config,
        encoder=HashingEncoder(),
        read_only=True,
    ) as reader:
        assert reader.get(("memories", "maya"), "k").value == {"text": "opened"}  # type: ignore[union-attr]
