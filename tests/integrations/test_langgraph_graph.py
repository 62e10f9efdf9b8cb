"""A real compiled LangGraph ``StateGraph`` whose nodes write and read memories through
``AicoStore``, across two threads of a conversation, with no LLM.

Thread 1 tells the graph two facts; thread 2 (another ``thread_id``, so a fresh checkpoint
and no shared state) asks about one and gets it from the store, through the graph's
``runtime.store``. Then the store is reopened on the same data dir to show the memory
outlived the process's objects, and forgetting the user empties what the graph recalls.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypedDict

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from aico.ai.memory import MemoryManager
from aico.integrations.langgraph import AicoStore


@dataclass
class Context:
    user_id: str


class State(TypedDict, total=False):
    said: str
    recalled: list[str]


def remember(state: State, runtime: Runtime[Context]) -> State:
    """A statement ("remember: ...") is stored as a memory of the speaking user."""
    text = state.get("said", "")
    if text.startswith("remember: ") and runtime.store is not None:
        runtime.store.put(
            (runtime.context.user_id, "memories"), uuid.uuid4().hex, {"text": text[10:]}
        )
    return {}


def recall(state: State, runtime: Runtime[Context]) -> State:
    assert runtime.store is not None
    hits = runtime.store.search(
        (runtime.context.user_id, "memories"), query=state.get("said", ""), limit=1
    )
    return {"recalled": [h.value["text"] for h in hits]}


def build(store: AicoStore) -> object:
    graph = StateGraph(State, context_schema=Context)
    graph.add_node("remember", remember)
    graph.add_node("recall", recall)
    graph.add_edge(START, "remember")
    graph.add_edge("remember", "recall")
    graph.add_edge("recall", END)
    return graph.compile(checkpointer=InMemorySaver(), store=store)


def test_memories_cross_threads_through_the_graph(
    memory: MemoryManager, open_memory: Callable[..., MemoryManager]
) -> None:
    store = AicoStore(memory)
    app = build(store)
    maya = Context(user_id="maya")
    one = {"configurable": {"thread_id": "thread-1"}}
    two = {"configurable": {"thread_id": "thread-2"}}
    app.invoke({"said": "remember: my sister Ingrid lives in Gothenburg"}, one, context=maya)  # type: ignore[attr-defined]
    app.invoke({"said": "remember: I take my coffee black"}, one, context=maya)  # type: ignore[attr-defined]
    out = app.invoke({"said": "where does Ingrid live?"}, two, context=maya)  # type: ignore[attr-defined]
    assert out["recalled"] == ["my sister Ingrid lives in Gothenburg"]
    # The second thread's checkpoint holds only its own turn.
    assert app.get_state(two).values["said"] == "where does Ingrid live?"  # type: ignore[attr-defined]
    # Another user asking the same sees nothing of maya's.
    bob = app.invoke({"said": "where does Ingrid live?"}, two, context=Context("bob"))  # type: ignore[attr-defined]
    assert bob["recalled"] == []

    # Async graph run against the same store.
    async def arun() -> dict[str, object]:
        return await app.ainvoke(  # type: ignore[attr-defined,no-any-return]
            {"said": "how do I take my coffee?"},
            {"configurable": {"thread_id": "t3"}},
            context=maya,
        )

    assert asyncio.run(arun())["recalled"] == ["I take my coffee black"]

    memory.close()
    reopened = build(AicoStore(open_memory()))
    again = reopened.invoke(
        {"said": "Ingrid?"}, {"configurable": {"thread_id": "t4"}}, context=maya
    )  # type: ignore[attr-defined]
    assert again["recalled"] == ["my sister Ingrid lives in Gothenburg"]


def test_forgetting_the_user_empties_the_graphs_recall(memory: MemoryManager) -> None:
    app = build(AicoStore(memory))
    maya = Context(user_id="maya")
    app.invoke(
        {"said": "remember: my locker code is 4417"},
        {"configurable": {"thread_id": "a"}},
        context=maya,
    )  # type: ignore[attr-defined]
    memory.forget("maya")
    out = app.invoke({"said": "locker code?"}, {"configurable": {"thread_id": "b"}}, context=maya)  # type: ignore[attr-defined]
    assert out["recalled"] == []
