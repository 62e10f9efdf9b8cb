"""``/v1/facts``: the memory album (create, list, get, edit, delete, revisit)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from aico.data.repositories import Fact
from aico.errors import NotFound
from aico_backend.auth import Principal
from aico_backend.deps import Auth, Svc
from aico_backend.models import FactCreate, FactOut, FactUpdate
from aico_backend.routes._convert import fields
from aico_backend.service import Service

__all__ = ["owned_fact", "router"]

router = APIRouter(prefix="/v1", tags=["memory album"])


async def owned_fact(svc: Service, who: Principal, fact_id: str) -> Fact:
    """A fact this token may see; the same ``NotFound`` for another user's and a missing one."""
    try:
        fact = await svc.run(svc.facts.get, fact_id)
    except NotFound:
        fact = None
    if fact is None or not who.owns(fact.user_id):
        raise NotFound("no fact with this fact_id")
    return fact


@router.post("/facts", status_code=status.HTTP_201_CREATED, summary="Remember a fact")
async def create_fact(body: FactCreate, svc: Svc, who: Auth) -> FactOut:
    user_id = who.user(body.user_id)
    fact = await svc.run(
        svc.facts.remember,
        user_id,
        body.content,
        category=body.category,
        confidence=body.confidence,
        is_favorite=body.is_favorite,
        source_message_id=body.source_message_id,
        conversation_id=body.conversation_id,
        metadata=body.metadata,
    )
    return FactOut(**fields(fact))


@router.get("/facts", summary="A user's facts, newest first")
async def list_facts(
    svc: Svc,
    who: Auth,
    user_id: str | None = None,
    category: str | None = None,
    favorites_only: bool = False,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, list[FactOut]]:
    facts = await svc.run(
        svc.facts.list,
        who.user(user_id),
        category=category,
        favorites_only=favorites_only,
        limit=limit,
        offset=offset,
    )
    return {"facts": [FactOut(**fields(f)) for f in facts]}


@router.get("/facts/{fact_id}", summary="One fact")
async def get_fact(fact_id: str, svc: Svc, who: Auth) -> FactOut:
    return FactOut(**fields(await owned_fact(svc, who, fact_id)))


@router.patch("/facts/{fact_id}", summary="Edit a fact")
async def update_fact(fact_id: str, body: FactUpdate, svc: Svc, who: Auth) -> FactOut:
    await owned_fact(svc, who, fact_id)
    changes = body.model_dump(exclude_unset=True)
    return FactOut(**fields(await svc.run(svc.facts.update, fact_id, **changes)))


@router.post("/facts/{fact_id}/revisit", summary="The user looked at this memory again")
async def revisit_fact(fact_id: str, svc: Svc, who: Auth) -> FactOut:
    await owned_fact(svc, who, fact_id)
    return FactOut(**fields(await svc.run(svc.facts.revisit, fact_id)))


@router.delete("/facts/{fact_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a fact")
async def delete_fact(fact_id: str, svc: Svc, who: Auth) -> Response:
    await owned_fact(svc, who, fact_id)
    await svc.run(svc.facts.delete, fact_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
