"""A mem0-compatible router: mem0's REST server routes, and the hosted client's, over facts.

Routes of the mem0 REST server (``server/main.py``) and the paths ``mem0ai``'s
``MemoryClient`` calls (``/v1/memories/`` … with their trailing slashes, ``/v1/ping/``),
so a client written for either works against this service with an aico token as its key
(``Authorization: Token …`` is accepted like ``Bearer``).

What maps to what (docs/backend.md has the table):

- a mem0 *memory* is a memory-album fact (category ``mem0``); ``agent_id``/``run_id``
  are kept in the fact's metadata and filter ``GET /memories``;
- ``add`` stores each non-system message's text as one fact, verbatim: there is no LLM
  here to extract facts (mem0's ``infer=False``). The event is always ``ADD``;
- ``search`` ranks the user's mem0 facts by cosine similarity of the configured embedding
  model (``score``), optionally cut at ``threshold``, ``limit``/``top_k`` best;
- ``DELETE /memories?user_id=`` deletes the user's mem0 facts, not the user.

Not supported: ``/configure``, ``/reset``, history (``/memories/{id}/history`` answers an
empty list), graph memory, batch endpoints, projects, webhooks, exports.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict

from aico.data.repositories import Fact
from aico.errors import InvalidInput
from aico.integrations.mem0 import META_KEY, entity_ids, memory_dict
from aico_backend.auth import Principal
from aico_backend.deps import Auth, Svc
from aico_backend.routes.facts import owned_fact
from aico_backend.service import Service

__all__ = ["router"]

router = APIRouter(tags=["mem0 compatibility"])

CATEGORY = "mem0"
_META = META_KEY  # where agent_id, run_id and role live inside a fact's metadata
_MAX_FACTS = 10_000


class Mem0Message(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: str = "user"
    content: str


class Mem0Add(BaseModel):
    """mem0's ``MemoryCreate`` and the client's payload (extra client fields are ignored)."""

    model_config = ConfigDict(extra="ignore")
    messages: list[Mem0Message] | str
    user_id: str | None = None
    agent_id: str | None = None
    run_id: str | None = None
    metadata: dict[str, Any] | None = None


class Mem0Search(BaseModel):
    model_config = ConfigDict(extra="ignore")
    query: str
    user_id: str | None = None
    agent_id: str | None = None
    run_id: str | None = None
    filters: dict[str, Any] | None = None
    limit: int | None = None
    top_k: int | None = None
    threshold: float | None = None


class Mem0Filter(BaseModel):
    """``get_all`` v2: identifiers in the body, directly or inside ``filters``."""

    model_config = ConfigDict(extra="ignore")
    user_id: str | None = None
    agent_id: str | None = None
    run_id: str | None = None
    filters: dict[str, Any] | None = None


def _matches(fact: Fact, agent_id: str | None, run_id: str | None) -> bool:
    extra = fact.metadata.get(_META) or {}
    return (agent_id is None or extra.get("agent_id") == agent_id) and (
        run_id is None or extra.get("run_id") == run_id
    )


async def _facts(
    svc: Service, user_id: str, agent_id: str | None, run_id: str | None
) -> list[Fact]:
    facts: list[Fact] = await svc.run(svc.facts.list, user_id, category=CATEGORY, limit=_MAX_FACTS)
    return [f for f in facts if _matches(f, agent_id, run_id)]


# ---- handlers (registered on several paths below) ----------------------------------------


async def add_memories(body: Mem0Add, svc: Svc, who: Auth) -> dict[str, Any]:
    user_id = who.user(body.user_id)
    messages = (
        [Mem0Message(role="user", content=body.messages)]
        if isinstance(body.messages, str)
        else body.messages
    )
    extra = {k: v for k, v in (("agent_id", body.agent_id), ("run_id", body.run_id)) if v}
    results = []
    for message in messages:
        if message.role == "system":
            continue
        metadata = {**(body.metadata or {}), _META: {**extra, "role": message.role}}
        fact = await svc.run(
            svc.facts.remember, user_id, message.content, category=CATEGORY, metadata=metadata
        )
        results.append({"id": fact.fact_id, "memory": fact.content, "event": "ADD"})
    return {"results": results}


async def _get_all(svc: Service, who: Principal, ids: dict[str, str | None]) -> dict[str, Any]:
    user_id = who.user(ids["user_id"])
    facts = await _facts(svc, user_id, ids["agent_id"], ids["run_id"])
    return {"results": [memory_dict(f) for f in facts]}


async def get_all_memories(
    svc: Svc,
    who: Auth,
    user_id: str | None = None,
    agent_id: str | None = None,
    run_id: str | None = None,
) -> dict[str, Any]:
    return await _get_all(svc, who, entity_ids(user_id, agent_id, run_id))


async def get_all_memories_v2(body: Mem0Filter, svc: Svc, who: Auth) -> dict[str, Any]:
    return await _get_all(
        svc, who, entity_ids(body.user_id, body.agent_id, body.run_id, body.filters)
    )


async def get_memory(memory_id: str, svc: Svc, who: Auth) -> dict[str, Any]:
    return memory_dict(await owned_fact(svc, who, memory_id))


async def update_memory(memory_id: str, request: Request, svc: Svc, who: Auth) -> dict[str, Any]:
    fact = await owned_fact(svc, who, memory_id)
    try:
        body = await request.json()
    except ValueError:
        raise InvalidInput("the body must be JSON") from None
    if isinstance(body, str):
        body = {"text": body}
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object with text and/or metadata")
    text = body.get("text", body.get("data", body.get("memory")))
    changes: dict[str, Any] = {}
    if text is not None:
        changes["content"] = text
    if body.get("metadata") is not None:
        if not isinstance(body["metadata"], dict):
            raise InvalidInput("metadata must be an object")
        changes["metadata"] = {**body["metadata"], _META: fact.metadata.get(_META) or {}}
    if not changes:
        raise InvalidInput("give text and/or metadata to update")
    await svc.run(svc.facts.update, memory_id, **changes)
    return {"message": "Memory updated successfully!"}


async def delete_memory(memory_id: str, svc: Svc, who: Auth) -> dict[str, Any]:
    await owned_fact(svc, who, memory_id)
    await svc.run(svc.facts.delete, memory_id)
    return {"message": "Memory deleted successfully"}


async def delete_all_memories(
    svc: Svc,
    who: Auth,
    user_id: str | None = None,
    agent_id: str | None = None,
    run_id: str | None = None,
) -> dict[str, Any]:
    target = who.user(user_id)
    for fact in await _facts(svc, target, agent_id, run_id):
        await svc.run(svc.facts.delete, fact.fact_id)
    return {"message": "All relevant memories deleted"}


def _cosine(svc: Service, query: str, texts: list[str]) -> list[float]:
    encoder = svc.memory.sync.semantic.encoder
    vectors = encoder.encode(texts)
    scores = vectors @ encoder.encode_query(query)
    return [float(s) for s in np.clip(scores, -1.0, 1.0)]


async def search_memories(body: Mem0Search, svc: Svc, who: Auth) -> dict[str, Any]:
    ids = entity_ids(body.user_id, body.agent_id, body.run_id, body.filters)
    user_id = who.user(ids["user_id"])
    limit = next((n for n in (body.top_k, body.limit) if n is not None), 100)
    if not 1 <= limit <= 1000:
        raise InvalidInput("limit must be between 1 and 1000")
    if not body.query.strip():
        raise InvalidInput("query must not be empty")
    facts = await _facts(svc, user_id, ids["agent_id"], ids["run_id"])
    if not facts:
        return {"results": []}
    scores = await svc.run(_cosine, svc, body.query, [f.content for f in facts])
    ranked = sorted(zip(scores, facts, strict=True), key=lambda p: p[0], reverse=True)
    threshold = body.threshold
    return {
        "results": [
            memory_dict(f, round(s, 6))
            for s, f in ranked[:limit]
            if threshold is None or s >= threshold
        ]
    }


async def memory_history(memory_id: str, svc: Svc, who: Auth) -> list[Any]:
    await owned_fact(svc, who, memory_id)
    return []


async def ping(who: Auth) -> dict[str, Any]:
    return {"status": "ok", "user_email": None, "org_id": None, "project_id": None}


def _route(paths: tuple[str, ...], method: str, endpoint: Callable[..., Any], summary: str) -> None:
    for index, path in enumerate(paths):
        router.add_api_route(
            path,
            endpoint,
            methods=[method],
            summary=summary,
            include_in_schema=index == 0,
            name=f"mem0 {method} {path}",
        )


_route(("/memories", "/v1/memories/"), "POST", add_memories, "mem0: add memories")
_route(("/memories", "/v1/memories/"), "GET", get_all_memories, "mem0: list memories")
_route(("/v2/memories/",), "POST", get_all_memories_v2, "mem0: list memories (v2 filters)")
_route(("/memories", "/v1/memories/"), "DELETE", delete_all_memories, "mem0: delete all")
_route(("/memories/{memory_id}", "/v1/memories/{memory_id}/"), "GET", get_memory, "mem0: get")
_route(("/memories/{memory_id}", "/v1/memories/{memory_id}/"), "PUT", update_memory, "mem0: update")
_route(
    ("/memories/{memory_id}", "/v1/memories/{memory_id}/"),
    "DELETE",
    delete_memory,
    "mem0: delete one",
)
_route(
    ("/memories/{memory_id}/history", "/v1/memories/{memory_id}/history/"),
    "GET",
    memory_history,
    "mem0: history (always empty)",
)
_route(
    ("/search", "/v1/memories/search/", "/v2/memories/search/"),
    "POST",
    search_memories,
    "mem0: search",
)
_route(("/v1/ping/",), "GET", ping, "mem0 client: validate the key")
