"""Loading the Chroma index before unlock: adopted when it matches, released when not."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from semantic_support import corpus_segments, ranked_ids

from aico.ai.embeddings import HashingEncoder
from aico.ai.memory import MemoryManager
from aico.ai.memory.manager import semantic_dir
from aico.ai.memory.semantic import IndexPrefetch, SemanticConfig, SemanticMemoryStore
from aico.data.libsql import EncryptedLibSQLConnection
from aico.data.repositories import UserService
from aico.errors import WrongPassphrase
from aico.security import MasterKey

PASSPHRASE = "prefetch test passphrase"


def test_matching_prefetch_is_adopted(
    tmp_path: Path, sem_core: EncryptedLibSQLConnection, sem_master: MasterKey
) -> None:
    chroma = tmp_path / "chroma"
    with SemanticMemoryStore.open(
        sem_core, sem_master, HashingEncoder(), chroma_path=chroma
    ) as store:
        store.add_segments(corpus_segments())
        expected = ranked_ids(store, "alice", "golden retriever", mode="dense")
    prefetch = SemanticMemoryStore.prefetch_index(chroma_path=chroma)
    loaded = prefetch.future.result(timeout=60)
    with SemanticMemoryStore.open(
        sem_core, sem_master, HashingEncoder(), chroma_path=chroma, prefetched=prefetch
    ) as store:
        assert store.wait_ready(timeout=60)
        assert store._index is loaded  # the prefetched client, not a second one
        assert ranked_ids(store, "alice", "golden retriever", mode="dense") == expected
        assert store.verify_index().ok
    prefetch.close()  # already taken: a no-op


@pytest.mark.parametrize("elsewhere", [False, True])
def test_other_prefetch_is_released(
    tmp_path: Path, sem_core: EncryptedLibSQLConnection, sem_master: MasterKey, elsewhere: bool
) -> None:
    """Another prefix on the same directory is closed *before* the store opens its own
    client (chromadb shares one system per path); another directory is closed lazily."""
    other = SemanticMemoryStore.prefetch_index(
        chroma_path=tmp_path / ("elsewhere" if elsewhere else "chroma"),
        config=SemanticConfig(collection_prefix="other-prefix"),
    )
    with SemanticMemoryStore.open(
        sem_core, sem_master, HashingEncoder(), chroma_path=tmp_path / "chroma", prefetched=other
    ) as store:
        if not elsewhere:
            assert other.future.done() and other.future.result()._closed
        store.add_segments(corpus_segments())
        assert store._index is not other.future.result(timeout=60)
        assert ranked_ids(store, "alice", "golden retriever", mode="dense")
    other.future.result(timeout=60)
    for _ in range(600):  # the lazy close runs as the load's done-callback
        if other.future.result()._closed:
            break
        threading.Event().wait(0.1)
    assert other.future.result()._closed


def test_prefetch_of_a_missing_server_fails_only_when_used() -> None:
    prefetch = IndexPrefetch.start(chroma_url="http://127.0.0.1:9")
    prefetch.close()  # never adopted: released without waiting, errors swallowed
    with pytest.raises(Exception):  # noqa: B017 - whatever the load raised, it stays there
        prefetch.future.result(timeout=60)


def test_manager_open_prefetches_and_survives_a_wrong_passphrase(
    tmp_path: Path, test_config
) -> None:
    data = tmp_path / "data"
    with MemoryManager.initialize(
        data, PASSPHRASE, config=test_config, encoder=HashingEncoder()
    ) as m:
        UserService(m.store.connection("core")).create_user("Alice", user_id="alice")
        m.semantic.add_segments(corpus_segments()[:3])
    assert semantic_dir(data).is_dir()
    before = set(threading.enumerate())
    with pytest.raises(WrongPassphrase):
        MemoryManager.open(data, passphrase="wrong", config=test_config, encoder=HashingEncoder())
    for thread in set(threading.enumerate()) - before:
        thread.join(timeout=60)  # the declined prefetch finishes and closes its client
    with MemoryManager.open(
        data, passphrase=PASSPHRASE, config=test_config, encoder=HashingEncoder()
    ) as m:
        assert m.semantic.verify_index().ok
        assert m.semantic.search("alice", "golden retriever", 3)
