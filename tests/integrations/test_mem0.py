"""The mem0-style API: mem0's method names and return shapes over real encrypted data dirs.

Shapes as mem0's ``Memory`` (``mem0/memory/main.py``) returns them with ``infer=False``;
what differs on purpose (history without text, no LLM) is checked as such.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence

import pytest
from integration_support import scan

from aico.ai.embeddings import HashingEncoder
from aico.ai.memory import MemoryManager
from aico.data.repositories import FactRepository, UserService
from aico.errors import InvalidInput, NotFound
from aico.integrations.mem0 import (
    CATEGORY,
    AsyncMemory,
    Memory,
    MemoryNotFound,
    entity_ids,
)


class CountingEncoder(HashingEncoder):
    """Counts the texts it embeds as documents (not queries)."""

    def __init__(self) -> None:
        super().__init__()
        self.documents = 0
        self._query = False

    def encode(self, texts: Sequence[str], *, batch_size: int = 32):  # type: ignore[no-untyped-def]
        if not self._query:
            self.documents += len(texts)
        return super().encode(texts, batch_size=batch_size)

    def encode_query(self, text: str):  # type: ignore[no-untyped-def]
        self._query = True
        try:
            return super().encode_query(text)
        finally:
            self._query = False


@pytest.fixture
def m(memory: MemoryManager) -> Memory:
    return Memory(memory)


def test_add_get_get_all_shapes(m: Memory) -> None:
    added = m.add(
        [
            {
                "role": "user",
                "content": "I'm a vegetarian and allergic to nuts.",
                "name": "maya-phone",
            },
            {"role": "assistant", "content": "Noted: vegetarian, no nuts."},
            {"role": "system", "content": "You are a helpful assistant."},
        ],
        user_id="maya",
        metadata={"source": "onboarding"},
    )
    results = added["results"]
    assert [r["event"] for r in results] == ["ADD", "ADD"]  # the system turn is not kept
    assert results[0]["actor_id"] == "maya-phone" and results[0]["role"] == "user"
    assert results[1]["actor_id"] is None and results[1]["role"] == "assistant"
    got = m.get(results[0]["id"])
    assert got is not None
    assert got["memory"] == "I'm a vegetarian and allergic to nuts."
    assert got["hash"] == hashlib.md5(got["memory"].encode()).hexdigest()
    assert got["metadata"] == {"source": "onboarding"} and got["user_id"] == "maya"
    assert got["role"] == "user" and got["actor_id"] == "maya-phone"
    assert got["created_at"].endswith("+00:00") and got["categories"] == [CATEGORY]
    assert m.add("a plain string", user_id="maya")["results"][0]["role"] == "user"
    assert (
        m.add({"role": "user", "content": "one dict"}, user_id="maya")["results"][0]["memory"]
        == "one dict"
    )
    listed = m.get_all(user_id="maya")["results"]
    assert {r["memory"] for r in listed} >= {"a plain string", "one dict"}
    assert len(m.get_all(user_id="maya", limit=2)["results"]) == 2
    assert m.get("0" * 32) is None
    assert m.get_all(user_id="bob") == {"results": []}


def test_ids_filters_and_metadata_filters(m: Memory) -> None:
    m.add("run one", user_id="maya", agent_id="coach", run_id="r1", metadata={"mood": "ok", "n": 3})
    m.add("run two", user_id="maya", run_id="r2", metadata={"mood": "great", "n": 7})
    m.add("bob's", user_id="bob", agent_id="coach")

    def texts(**kwargs: object) -> set[str]:
        return {r["memory"] for r in m.get_all(**kwargs)["results"]}  # type: ignore[arg-type]

    assert texts(user_id="maya", run_id="r1") == {"run one"}
    assert texts(filters={"AND": [{"user_id": "maya"}, {"run_id": "r2"}]}) == {"run two"}
    assert texts(agent_id="coach") == {"run one", "bob's"}  # every user's, for an agent
    assert texts(user_id="maya", filters={"mood": "great"}) == {"run two"}
    assert texts(user_id="maya", filters={"n": {"gte": 5}}) == {"run two"}
    assert texts(user_id="maya", filters={"mood": {"in": ["ok", "meh"]}}) == {"run one"}
    assert texts(user_id="maya", filters={"mood": {"icontains": "GREA"}}) == {"run two"}
    assert texts(user_id="maya", filters={"OR": [{"mood": "ok"}, {"n": 7}]}) == {
        "run one",
        "run two",
    }
    assert texts(user_id="maya", filters={"NOT": [{"mood": "ok"}]}) == {"run two"}
    assert texts(user_id="maya", filters={"mood": "*"}) == {"run one", "run two"}
    assert entity_ids(filters={"OR": [{"user_id": "bob"}]})["user_id"] == "bob"
    with pytest.raises(InvalidInput):
        m.get_all()
    with pytest.raises(InvalidInput):
        m.get_all(user_id="maya", filters={"mood": {"regex": "x"}})


def test_search_ranks_by_cosine_with_threshold_and_top_k(m: Memory) -> None:
    for text in ("green tea in the morning", "black coffee at noon", "hiking in the alps"):
        m.add(text, user_id="maya")
    hits = m.search("green tea morning", user_id="maya")["results"]
    assert hits[0]["memory"] == "green tea in the morning"
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    assert all(-1 <= h["score"] <= 1 for h in hits)
    assert len(m.search("green tea morning", user_id="maya", top_k=1)["results"]) == 1
    strict = m.search("green tea morning", user_id="maya", threshold=0.99)["results"]
    assert all(h["score"] >= 0.99 for h in strict)
    assert m.search("green tea", filters={"user_id": "maya"})["results"][0]["memory"].startswith(
        "green"
    )
    assert m.search("anything", user_id="bob") == {"results": []}
    for bad in ({"top_k": 0}, {"threshold": 1.5}, {"threshold": float("nan")}):
        with pytest.raises(InvalidInput):
            m.search("x", user_id="maya", **bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        m.search("   ", user_id="maya")


def test_embeddings_are_cached_and_follow_changes(memory: MemoryManager) -> None:
    encoder = CountingEncoder()
    m = Memory(memory, encoder=encoder)
    first = m.add(
        [{"role": "user", "content": "a b c"}, {"role": "user", "content": "d e f"}],
        user_id="maya",
    )["results"]
    assert encoder.documents == 2
    m.search("a", user_id="maya")
    m.search("d", user_id="maya")
    assert encoder.documents == 2  # no memory embedded again
    # A change made past this API (the backend's router, 'aico facts') is noticed.
    FactRepository(memory.store.connection("core")).update(first[0]["id"], content="zebra zone")
    assert m.search("zebra zone", user_id="maya")["results"][0]["id"] == first[0]["id"]
    assert encoder.documents == 3


def test_update_delete_and_history_without_text(m: Memory, memory: MemoryManager) -> None:
    mid = m.add("zqoldsecret words", user_id="maya", metadata={"k": 1})["results"][0]["id"]
    assert m.update(mid, "zqnewsecret words") == {"message": "Memory updated successfully!"}
    assert m.update(mid, metadata={"j": 2}) == {"message": "Memory updated successfully!"}
    got = m.get(mid)
    assert got is not None and got["memory"] == "zqnewsecret words"
    assert got["metadata"] == {"k": 1, "j": 2} and got["role"] == "user"
    assert m.search("zqnewsecret", user_id="maya")["results"][0]["id"] == mid
    assert m.delete(mid) == {"message": "Memory deleted successfully!"}
    assert m.get(mid) is None
    events = m.history(mid)
    assert [e["event"] for e in events] == ["ADD", "UPDATE", "UPDATE", "DELETE"]
    assert all(e["old_memory"] is None and e["new_memory"] is None for e in events)
    assert events[-1]["is_deleted"] == 1 and events[0]["memory_id"] == mid
    core = memory.store.connection("core")
    pages = b"".join(r["data"] for r in core.fetch_all("SELECT data FROM sqlite_dbpage"))
    assert b"zqoldsecret" not in pages and b"zqnewsecret" not in pages
    for call in (lambda: m.delete(mid), lambda: m.update(mid, "x")):
        with pytest.raises(MemoryNotFound) as caught:
            call()
        assert isinstance(caught.value, ValueError) and isinstance(caught.value, NotFound)


def test_delete_all_and_reset(m: Memory, memory: MemoryManager) -> None:
    m.add("one", user_id="maya", run_id="r1")
    m.add("two", user_id="maya", run_id="r2")
    m.add("three", user_id="bob")
    FactRepository(memory.store.connection("core")).remember("maya", "not a mem0 memory")
    with pytest.raises(InvalidInput):
        m.delete_all()
    assert m.delete_all(user_id="maya", run_id="r1") == {
        "message": "Memories deleted successfully!"
    }
    assert [r["memory"] for r in m.get_all(user_id="maya")["results"]] == ["two"]
    assert m.reset() is None
    assert m.get_all(user_id="maya") == {"results": []} and m.get_all(user_id="bob") == {
        "results": []
    }
    core = memory.store.connection("core")
    assert core.fetch_value("SELECT count(*) FROM integration_mem0_history") == 0
    assert core.fetch_value("SELECT count(*) FROM integration_mem0_vectors") == 0
    assert [f.content for f in FactRepository(core).list("maya")] == ["not a mem0 memory"]


def test_infer_needs_an_extractor(memory: MemoryManager) -> None:
    with pytest.raises(InvalidInput) as caught:
        Memory(memory).add("I moved to Oslo last week", user_id="maya", infer=True)
    assert "infer=False" in str(caught.value) and "extractor" in str(caught.value)
    seen: list[list[dict[str, str]]] = []

    def extractor(messages: list[dict[str, str]]) -> list[str]:
        seen.append(messages)
        return ["Lives in Oslo"]

    m = Memory(memory, extractor=extractor)
    results = m.add(
        [{"role": "user", "content": "I moved to Oslo last week"}], user_id="maya", infer=True
    )
    assert [r["memory"] for r in results["results"]] == ["Lives in Oslo"]
    assert seen == [[{"role": "user", "content": "I moved to Oslo last week"}]]
    with pytest.raises(InvalidInput):
        Memory(memory, extractor=lambda msgs: [3]).add("x", user_id="maya", infer=True)  # type: ignore[list-item]


def test_users_and_bad_input(memory: MemoryManager) -> None:
    m = Memory(memory)
    m.add("hello", user_id="newcomer")
    assert UserService(memory.store.connection("core")).exists("newcomer")
    with pytest.raises(NotFound):
        Memory(memory, create_users=False).add("hello", user_id="stranger")
    cases = [
        lambda: m.add("zqsecret", agent_id="a"),  # no user
        lambda: m.add([{"role": "user"}], user_id="maya"),
        lambda: m.add([{"role": "user", "content": ""}], user_id="maya"),
        lambda: m.add("zqsecret\x00", user_id="maya"),
        lambda: m.add("x", user_id="maya", metadata={"_mem0": "zqsecret"}),
        lambda: m.add("x", user_id="maya", metadata={"v": float("nan")}),
        lambda: m.add("x", user_id="maya", memory_type="procedural_memory"),
        lambda: m.add("x" * 10_001, user_id="maya"),
        lambda: m.update("not-a-memory-zqsecret", "x"),
        lambda: m.search("x", user_id="zq\ud800secret"),
    ]
    for case in cases:
        with pytest.raises((InvalidInput, NotFound)) as caught:
            case()
        assert "zqsecret" not in str(caught.value)


def test_forget_removes_memories_vectors_and_history(
    m: Memory, memory: MemoryManager, data_dir
) -> None:
    mid = m.add("zqforgetme soon", user_id="maya")["results"][0]["id"]
    m.add("bob stays", user_id="bob")
    memory.forget("maya")
    assert m.get(mid) is None and m.history(mid) == []
    core = memory.store.connection("core")
    assert core.fetch_value("SELECT count(*) FROM integration_mem0_vectors") == 1
    assert [r["memory"] for r in m.get_all(user_id="bob")["results"]] == ["bob stays"]
    assert scan(data_dir, [b"zqforgetme", b"bob stays"]) == []


def test_the_backend_mapping_agrees(m: Memory, memory: MemoryManager) -> None:
    """The backend's mem0 router maps with this module's functions: one shape, one place."""
    from aico.integrations import mem0 as integration
    from aico_backend.routes import mem0 as router

    assert router.memory_dict is integration.memory_dict
    assert router.entity_ids is integration.entity_ids
    assert router.CATEGORY == CATEGORY and router._META == integration.META_KEY  # type: ignore[attr-defined]


def test_async_memory(memory: MemoryManager) -> None:
    async def run() -> None:
        am = AsyncMemory(memory)
        mid = (await am.add("async tea", user_id="maya"))["results"][0]["id"]
        assert (await am.get(mid))["memory"] == "async tea"  # type: ignore[index]
        assert (await am.search("tea", user_id="maya"))["results"][0]["id"] == mid
        assert len((await am.get_all(user_id="maya"))["results"]) == 1
        await am.update(mid, "async coffee")
        assert [e["event"] for e in await am.history(mid)] == ["ADD", "UPDATE"]
        await am.delete(mid)
        await am.delete_all(user_id="maya")
        await am.reset()
        await am.aclose()

    asyncio.run(run())


def test_read_only_searches_without_writing(open_memory, memory: MemoryManager) -> None:
    Memory(memory).add("read me", user_id="maya")
    reader = Memory(open_memory(read_only=True))
    assert reader.search("read", user_id="maya")["results"][0]["memory"] == "read me"
    with pytest.raises(Exception) as caught:
        reader.add("no", user_id="maya")
    assert type(caught.value).__name__ == "ReadOnly"


def test_open_owns_the_data_dir(memory: MemoryManager, data_dir, test_config) -> None:
    from integration_support import PASSPHRASE

    memory.close()
    with Memory.open(
        data_dir, passphrase=PASSPHRASE, config=test_config, encoder=HashingEncoder()
    ) as m:
        m.add("opened", user_id="maya")
        manager = m.memory
    assert manager._closed  # type: ignore[attr-defined]
