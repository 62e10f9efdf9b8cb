"""The ``BaseStore`` contract, op by op, against ``AicoStore`` and LangGraph's ``InMemoryStore``.

Each case is one of the behaviours LangGraph's own store tests check for ``InMemoryStore``
(``libs/checkpoint/tests/test_store.py``) and ``SqliteStore``
(``libs/checkpoint-sqlite/tests/test_store.py``): batch ordering, get/put/delete, filters,
pagination, namespace listing and its wildcards, and search with a query over the same
embeddings (aico's hashing encoder on both sides). A case runs on both stores, so the two
agree wherever the contract says what must happen; where it leaves a choice (the order of
an unranked listing) the test compares sets. Behaviours only ``AicoStore`` has (TTL,
hybrid ranking, users) are in ``test_langgraph_store.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from integration_support import hashing_embed
from langgraph.store.base import (
    BaseStore,
    GetOp,
    InvalidNamespaceError,
    Item,
    ListNamespacesOp,
    MatchCondition,
    PutOp,
    SearchOp,
)
from langgraph.store.memory import InMemoryStore

from aico.integrations.langgraph import AicoStore

DIMS = 384


@pytest.fixture(params=["aico", "inmemory"])
def store(request: pytest.FixtureRequest) -> Iterator[BaseStore]:
    if request.param == "inmemory":
        yield InMemoryStore(index={"dims": DIMS, "embed": hashing_embed})
        return
    memory = request.getfixturevalue("memory")
    with AicoStore(memory) as aico:
        yield aico


def make_store(request: pytest.FixtureRequest, kind: str, fields: list[str]) -> BaseStore:
    if kind == "inmemory":
        return InMemoryStore(index={"dims": DIMS, "embed": hashing_embed, "fields": fields})
    return AicoStore(request.getfixturevalue("memory"), index={"fields": fields})


def keys(items: list[Any]) -> set[str]:
    return {item.key for item in items}


# -- batches -------------------------------------------------------------------------


def test_batch_order(store: BaseStore) -> None:
    store.put(("test", "foo"), "key1", {"data": "value1"})
    store.put(("test", "bar"), "key2", {"data": "value2"})
    results = store.batch(
        [
            GetOp(namespace=("test", "foo"), key="key1"),
            PutOp(namespace=("test", "bar"), key="key2", value={"data": "value2"}),
            SearchOp(namespace_prefix=("test",), filter={"data": "value1"}, limit=10, offset=0),
            ListNamespacesOp(match_conditions=None, max_depth=None, limit=10, offset=0),
            GetOp(namespace=("test",), key="key3"),
        ]
    )
    assert len(results) == 5
    first = results[0]
    assert isinstance(first, Item)
    assert (first.value, first.key, first.namespace) == (
        {"data": "value1"},
        "key1",
        ("test", "foo"),
    )
    assert results[1] is None
    assert [(i.key, i.value) for i in results[2]] == [("key1", {"data": "value1"})]  # type: ignore[union-attr]
    assert {("test", "foo"), ("test", "bar")} <= set(results[3])  # type: ignore[arg-type]
    assert results[4] is None

    reordered = store.batch(
        [
            SearchOp(namespace_prefix=("test",), filter=None, limit=5, offset=0),
            GetOp(namespace=("test", "bar"), key="key2"),
            ListNamespacesOp(match_conditions=None, max_depth=None, limit=5, offset=0),
            PutOp(namespace=("test",), key="key3", value={"data": "value3"}),
            GetOp(namespace=("test", "foo"), key="key1"),
        ]
    )
    assert len(reordered[0]) >= 2  # type: ignore[arg-type]
    assert reordered[1].value == {"data": "value2"}  # type: ignore[union-attr]
    assert reordered[3] is None
    assert reordered[4].key == "key1"  # type: ignore[union-attr]
    assert store.get(("test",), "key3").value == {"data": "value3"}  # type: ignore[union-attr]


def test_batch_reads_see_the_state_before_its_puts_and_the_last_put_wins(store: BaseStore) -> None:
    store.put(("a",), "k", {"v": 1})
    results = store.batch(
        [
            PutOp(("a",), "k", {"v": 2}),
            GetOp(("a",), "k"),
            PutOp(("a",), "k", {"v": 3}),
            PutOp(("a",), "gone", {"v": 9}),
            PutOp(("a",), "gone", None),
        ]
    )
    assert results[1].value == {"v": 1}  # type: ignore[union-attr]
    assert store.get(("a",), "k").value == {"v": 3}  # type: ignore[union-attr]
    assert store.get(("a",), "gone") is None


def test_batch_put_and_delete_ops(store: BaseStore) -> None:
    results = store.batch(
        [
            PutOp(namespace=("test",), key="key1", value={"data": "value1"}),
            PutOp(namespace=("test",), key="key2", value={"data": "value2"}),
            PutOp(namespace=("test",), key="key3", value=None),
        ]
    )
    assert results == [None, None, None]
    assert store.get(("test",), "key1").value == {"data": "value1"}  # type: ignore[union-attr]
    assert store.get(("test",), "key3") is None


def test_batch_search_ops(store: BaseStore) -> None:
    for namespace, key, value in [
        (("test", "foo"), "key1", {"data": "value1", "tag": "a"}),
        (("test", "bar"), "key2", {"data": "value2", "tag": "a"}),
        (("test", "baz"), "key3", {"data": "value3", "tag": "b"}),
    ]:
        store.put(namespace, key, value)
    results = store.batch(
        [
            SearchOp(namespace_prefix=("test",), filter={"tag": "a"}, limit=10, offset=0),
            SearchOp(namespace_prefix=("test",), filter=None, limit=2, offset=0),
            SearchOp(namespace_prefix=("test", "foo"), filter=None, limit=10, offset=0),
        ]
    )
    assert keys(results[0]) == {"key1", "key2"}  # type: ignore[arg-type]
    assert len(results[1]) == 2  # type: ignore[arg-type]
    assert [i.namespace for i in results[2]] == [("test", "foo")]  # type: ignore[union-attr]


def test_batch_list_namespaces_ops(store: BaseStore) -> None:
    data = [
        (("test", "documents", "public"), "doc1"),
        (("test", "documents", "private"), "doc2"),
        (("test", "images", "public"), "img1"),
        (("prod", "documents", "public"), "doc3"),
    ]
    for namespace, key in data:
        store.put(namespace, key, {"content": key})
    results = store.batch(
        [
            ListNamespacesOp(match_conditions=None, max_depth=None, limit=10, offset=0),
            ListNamespacesOp(match_conditions=None, max_depth=2, limit=10, offset=0),
            ListNamespacesOp(
                match_conditions=(MatchCondition("suffix", ("public",)),), limit=10, offset=0
            ),
        ]
    )
    assert len(results[0]) == 4  # type: ignore[arg-type]
    assert sorted(results[1]) == [  # type: ignore[type-var]
        ("prod", "documents"),
        ("test", "documents"),
        ("test", "images"),
    ]
    assert all(ns[-1] == "public" for ns in results[2])  # type: ignore[union-attr]


# -- get, put, delete ------------------------------------------------------------------


def test_basic_store_ops(store: BaseStore) -> None:
    namespace = ("test", "documents")
    store.put(namespace, "doc1", {"title": "Test Document", "content": "Hello, World!"})
    item = store.get(namespace, "doc1")
    assert item is not None
    assert (item.namespace, item.key) == (namespace, "doc1")
    assert item.value == {"title": "Test Document", "content": "Hello, World!"}
    assert item.created_at.tzinfo is not None
    store.put(namespace, "doc1", {"title": "Updated", "content": "Hello, Updated!"})
    updated = store.get(namespace, "doc1")
    assert updated is not None and updated.value["title"] == "Updated"
    assert updated.updated_at >= item.updated_at
    assert store.get(("test", "other_documents"), "doc1") is None
    store.delete(namespace, "doc1")
    assert store.get(namespace, "doc1") is None
    store.delete(namespace, "never-there")  # deleting nothing is fine


def test_invalid_namespaces(store: BaseStore) -> None:
    doc = {"foo": "bar"}
    for bad in [(), ("the", "thing.about"), ("some", "fun", ""), ("langgraph", "foo")]:
        with pytest.raises(InvalidNamespaceError):
            store.put(bad, "foo", doc)
    with pytest.raises(InvalidNamespaceError):
        asyncio.run(store.aput(("the", "thing.about"), "foo", doc))
    store.put(("foo", "langgraph", "foo"), "bar", doc)
    assert store.get(("foo", "langgraph", "foo"), "bar").value == doc  # type: ignore[union-attr]
    assert store.search(("foo", "langgraph", "foo"))[0].value == doc
    # Past the public API, the root label "langgraph" is allowed (as in InMemoryStore).
    store.batch([PutOp(("langgraph", "foo"), "bar", doc)])
    assert store.get(("langgraph", "foo"), "bar").value == doc  # type: ignore[union-attr]


def test_async_twins(store: BaseStore) -> None:
    async def run() -> None:
        await store.aput(("valid", "namespace"), "key", {"a": 1})
        got = await store.aget(("valid", "namespace"), "key")
        assert got is not None and got.value == {"a": 1}
        assert [i.key for i in await store.asearch(("valid",))] == ["key"]
        assert await store.alist_namespaces(prefix=("valid",)) == [("valid", "namespace")]
        many = await asyncio.gather(
            *(store.aput(("valid", "many"), f"k{i}", {"i": i}) for i in range(8))
        )
        assert many == [None] * 8
        await store.adelete(("valid", "namespace"), "key")
        assert await store.aget(("valid", "namespace"), "key") is None

    asyncio.run(run())


# -- namespaces ------------------------------------------------------------------------


def test_list_namespaces_basic(store: BaseStore) -> None:
    namespaces = [
        ("a", "b", "c"),
        ("a", "b", "d", "e"),
        ("a", "b", "d", "i"),
        ("a", "b", "f"),
        ("a", "c", "f"),
        ("b", "a", "f"),
        ("users", "123"),
        ("users", "456", "settings"),
        ("admin", "users", "789"),
    ]
    for i, ns in enumerate(namespaces):
        store.put(ns, f"id_{i}", {"data": f"value_{i:02d}"})
    assert store.list_namespaces(prefix=("a", "b")) == [
        ("a", "b", "c"),
        ("a", "b", "d", "e"),
        ("a", "b", "d", "i"),
        ("a", "b", "f"),
    ]
    assert store.list_namespaces(suffix=("f",)) == [
        ("a", "b", "f"),
        ("a", "c", "f"),
        ("b", "a", "f"),
    ]
    assert store.list_namespaces(prefix=("a",), suffix=("f",)) == [("a", "b", "f"), ("a", "c", "f")]
    assert store.list_namespaces(prefix=("a", "b"), max_depth=3) == [
        ("a", "b", "c"),
        ("a", "b", "d"),
        ("a", "b", "f"),
    ]
    assert store.list_namespaces(prefix=("a", "b"), limit=2) == [
        ("a", "b", "c"),
        ("a", "b", "d", "e"),
    ]
    assert store.list_namespaces(prefix=("a", "b"), offset=2) == [
        ("a", "b", "d", "i"),
        ("a", "b", "f"),
    ]
    assert store.list_namespaces(prefix=("a", "*", "f")) == [("a", "b", "f"), ("a", "c", "f")]
    assert store.list_namespaces(suffix=("*", "f")) == [
        ("a", "b", "f"),
        ("a", "c", "f"),
        ("b", "a", "f"),
    ]
    assert store.list_namespaces(prefix=("nonexistent",)) == []
    assert store.list_namespaces(prefix=("users", "123")) == [("users", "123")]
    assert store.list_namespaces(max_depth=2) == sorted({ns[:2] for ns in namespaces})


def test_list_namespaces_wildcards_and_empty(store: BaseStore) -> None:
    assert store.list_namespaces() == []
    for i, ns in enumerate(
        [
            ("users", "123"),
            ("users", "456"),
            ("users", "789", "settings"),
            ("admin", "users", "789"),
            ("guests", "123"),
            ("guests", "456", "preferences"),
        ]
    ):
        store.put(ns, f"id_{i}", {"data": i})
    assert store.list_namespaces(prefix=("users", "*")) == [
        ("users", "123"),
        ("users", "456"),
        ("users", "789", "settings"),
    ]
    assert store.list_namespaces(suffix=("*", "preferences")) == [("guests", "456", "preferences")]
    assert store.list_namespaces(prefix=("*", "users"), suffix=("*", "settings")) == []


def test_list_namespaces_pagination(store: BaseStore) -> None:
    for i in range(20):
        store.put(("namespace", f"sub_{i:02d}"), f"id_{i:02d}", {"data": i})
    assert store.list_namespaces(prefix=("namespace",), limit=5, offset=5) == [
        ("namespace", f"sub_{i:02d}") for i in range(5, 10)
    ]
    assert store.list_namespaces(prefix=("namespace",), limit=5, offset=15) == [
        ("namespace", f"sub_{i:02d}") for i in range(15, 20)
    ]


def test_namespace_segment_boundaries_and_literal_characters(store: BaseStore) -> None:
    for namespace in [
        ("foo",),
        ("foo", "child"),
        ("foo", "child", "deep"),
        ("foobar",),
        ("foobar", "baz"),
        ("foo2",),
        ("user_1",),
        ("userX1",),
        ("a%b",),
        ("axxb",),
        ("star*",),
        ("starX",),
        ("Foo",),
    ]:
        store.put(namespace, "k", {"v": 1})

    def found(prefix: tuple[str, ...]) -> set[tuple[str, ...]]:
        return {item.namespace for item in store.search(prefix, limit=100)}

    assert found(("foo",)) == {("foo",), ("foo", "child"), ("foo", "child", "deep")}
    assert found(("foobar",)) == {("foobar",), ("foobar", "baz")}
    assert found(("fo",)) == set()
    assert found(("user_1",)) == {("user_1",)}
    assert found(("a%b",)) == {("a%b",)}
    assert found(("star*",)) == {("star*",)}
    assert found(("Foo",)) == {("Foo",)}
    assert set(store.list_namespaces(prefix=("foo",), limit=100)) == {
        ("foo",),
        ("foo", "child"),
        ("foo", "child", "deep"),
    }
    assert len({item.namespace for item in store.search((), limit=100)}) == 13


# -- search without a query ------------------------------------------------------------


def test_search_filters_and_pagination(store: BaseStore) -> None:
    base = "test_search_items"
    items = [
        (
            (base, "documents", "user1"),
            {"title": "Doc 1", "author": "John Doe", "tags": ["important"]},
        ),
        (
            (base, "documents", "user2"),
            {"title": "Doc 2", "author": "Jane Smith", "tags": ["draft"]},
        ),
        (
            (base, "reports", "department1"),
            {"title": "Report A", "author": "John Doe", "tags": ["final"]},
        ),
        (
            (base, "reports", "department2"),
            {"title": "Report B", "author": "Alice", "tags": ["draft"]},
        ),
    ]
    for ns, value in items:
        store.put(ns, f"item_{ns[-1]}", value)
    assert all(i.namespace[1] == "documents" for i in store.search((base, "documents")))
    assert len(store.search((base, "reports"))) == 2
    first = store.search((base,), limit=2, offset=0)
    second = store.search((base,), limit=2, offset=2)
    assert len(first) == len(second) == 2 and keys(first).isdisjoint(keys(second))
    assert len(store.search((base,), offset=3)) == 1
    assert {i.value["author"] for i in store.search((base,), filter={"author": "John Doe"})} == {
        "John Doe"
    }
    assert len(store.search((base,), filter={"author": "John Doe"})) == 2
    assert keys(store.search((base,), filter={"tags": ["draft"]})) == {
        "item_user2",
        "item_department2",
    }


def test_search_filter_operators(store: BaseStore) -> None:
    store.put(("items",), "item1", {"price": 10, "quantity": 5, "meta": {"kind": "a"}})
    store.put(("items",), "item2", {"price": 20, "quantity": 3, "meta": {"kind": "b"}})
    store.put(("items",), "item3", {"price": 30, "quantity": 1, "meta": {"kind": "a"}})
    store.put(("items",), "item4", {"price": -10, "quantity": 0, "meta": {"kind": "c"}})

    def find(flt: dict[str, Any]) -> set[str]:
        return keys(store.search(("items",), filter=flt))

    assert find({"price": {"$gt": 15}}) == {"item2", "item3"}
    assert find({"price": {"$gte": 20, "$lt": 30}}) == {"item2"}
    assert find({"price": {"$lte": 10}}) == {"item1", "item4"}
    assert find({"price": {"$lt": 0}}) == {"item4"}
    assert find({"price": {"$ne": 10}}) == {"item2", "item3", "item4"}
    assert find({"price": {"$eq": 30}}) == {"item3"}
    assert find({"price": {"$lt": float("inf")}}) == {"item1", "item2", "item3", "item4"}
    assert find({"price": {"$lt": 10**100}}) == {"item1", "item2", "item3", "item4"}
    assert find({"meta": {"kind": "a"}}) == {"item1", "item3"}
    assert find({"meta": {"kind": "a"}, "quantity": 1}) == {"item3"}
    assert find({"missing": None}) == {"item1", "item2", "item3", "item4"}


def test_filter_values_are_data_not_sql(store: BaseStore) -> None:
    store.put(("docs",), "doc1", {"access": "public", "title": "Public"})
    store.put(("docs",), "doc2", {"access": "private", "title": "O'Brien's Document"})
    for value in [
        "public' OR '1'='1",
        "public'; --",
        "public' UNION SELECT * FROM users --",
        "''''",
    ]:
        assert store.search(("docs",), filter={"access": value}) == []
    assert keys(store.search(("docs",), filter={"title": "O'Brien's Document"})) == {"doc2"}


def test_boolean_filters(store: BaseStore) -> None:
    store.put(("flags",), "flag1", {"active": True, "name": "A"})
    store.put(("flags",), "flag2", {"active": False, "name": "B"})
    store.put(("flags",), "flag3", {"active": True, "name": "C"})
    assert keys(store.search(("flags",), filter={"active": True})) == {"flag1", "flag3"}
    assert keys(store.search(("flags",), filter={"active": False})) == {"flag2"}


# -- search with a query ---------------------------------------------------------------


def test_search_with_query_finds_the_closest(store: BaseStore) -> None:
    docs = [
        ("doc1", {"text": "short text"}),
        ("doc2", {"text": "longer text document"}),
        ("doc3", {"text": "longest text document here"}),
        ("doc4", {"description": "text in description field"}),
        ("doc5", {"content": "text in content field"}),
        ("doc6", {"body": "text in body field"}),
    ]
    for key, value in docs:
        store.put(("test",), key, value)
    results = store.search(("test",), query="longer text document")
    assert results[0].key == "doc2"
    assert {"doc2", "doc3"} <= keys(results)
    scores = [r.score for r in results]
    assert all(s is not None for s in scores) and scores == sorted(scores, reverse=True)  # type: ignore[type-var]


def test_updated_and_unindexed_items(store: BaseStore) -> None:
    store.put(("test",), "doc1", {"text": "zany zebra Xerxes"})
    store.put(("test",), "doc2", {"text": "something about dogs"})
    store.put(("test",), "doc3", {"text": "text about birds"})
    assert store.search(("test",), query="zany zebra Xerxes")[0].key == "doc1"
    store.put(("test",), "doc1", {"text": "new text about dogs"})
    assert store.search(("test",), query="new text about dogs")[0].key == "doc1"
    store.put(("test",), "doc4", {"text": "new text about dogs"}, index=False)
    assert "doc4" not in keys(store.search(("test",), query="new text about dogs", limit=3))
    # Unindexed items still come back, after the ranked ones and without a score.
    everything = store.search(("test",), query="new text about dogs", limit=10)
    assert everything[-1].key == "doc4" and everything[-1].score is None
    assert "doc4" in keys(store.search(("test",)))


def test_search_with_query_and_filters(store: BaseStore) -> None:
    for key, value in [
        ("doc1", {"text": "red apple", "color": "red", "score": 4.5}),
        ("doc2", {"text": "red car", "color": "red", "score": 3.0}),
        ("doc3", {"text": "green apple", "color": "green", "score": 4.0}),
        ("doc4", {"text": "blue car", "color": "blue", "score": 3.5}),
    ]:
        store.put(("test",), key, value)
    results = store.search(("test",), query="apple", filter={"color": "red"})
    assert [r.key for r in results][:1] == ["doc1"] and len(results) == 2
    results = store.search(("test",), query="car", filter={"color": "red"})
    assert results[0].key == "doc2"
    results = store.search(("test",), query="blue car", filter={"score": {"$gt": 3.2}})
    assert len(results) == 3 and results[0].key == "doc4"
    results = store.search(
        ("test",), query="apple", filter={"score": {"$gte": 4.0}, "color": "green"}
    )
    assert [r.key for r in results] == ["doc3"]


def test_search_with_query_pages(store: BaseStore) -> None:
    for i in range(5):
        store.put(("test",), f"doc{i}", {"text": f"test document number {i}"})
    page1 = store.search(("test",), query="test", limit=2)
    page2 = store.search(("test",), query="test", limit=2, offset=2)
    assert len(page1) == len(page2) == 2 and keys(page1).isdisjoint(keys(page2))
    everything = store.search(("test",), query="test", limit=10)
    assert len(everything) == 5
    assert [r.key for r in everything[:2]] == [r.key for r in page1]


@pytest.mark.parametrize("query", ["", None, "test " * 100, "test!@#$%^&*()", '("NEAR* OR'])
def test_query_edge_cases(store: BaseStore, query: str | None) -> None:
    store.put(("test",), "doc1", {"text": "test document"})
    assert len(store.search(("test",), query=query)) == 1


@pytest.mark.parametrize("kind", ["aico", "inmemory"])
def test_indexed_fields_from_config_and_per_put(request: pytest.FixtureRequest, kind: str) -> None:
    store = make_store(request, kind, ["key0", "key1", "key3"])
    store.put(("test",), "doc1", {"key1": "xxx", "key2": "yyy", "key3": "zzz"})
    store.put(("test",), "doc2", {"key0": "uuu", "key1": "vvv", "key2": "www", "key3": "xxx"})
    assert keys(store.search(("test",), query="xxx")) == {"doc1", "doc2"}
    assert store.search(("test",), query="uuu")[0].key == "doc2"
    assert store.search(("test",), query="zzz")[0].key == "doc1"
    # Per put: these fields instead of the configured ones.
    store.put(("other",), "doc3", {"key0": "aaa", "key1": "bbb", "key2": "ccc"}, index=["key0"])
    store.put(("other",), "doc4", {"key0": "ddd", "key1": "eee", "key2": "aaa"}, index=["key1"])
    assert store.search(("other",), query="aaa")[0].key == "doc3"
    assert store.search(("other",), query="eee")[0].key == "doc4"


def test_non_ascii(store: BaseStore) -> None:
    texts = ["这是中文", "これは日本語です", "이건 한국어야", "Это русский", "यह रूसी है"]
    for i, text in enumerate(texts, 1):
        store.put(("user_123", "memories"), str(i), {"text": text})
    for i, text in enumerate(texts, 1):
        assert store.search(("user_123", "memories"), query=text)[0].key == str(i)
