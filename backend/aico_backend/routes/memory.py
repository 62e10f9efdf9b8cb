"""``/v1/context``, ``/v1/search`` and ``/v1/forget``: what the companion asks of memory."""

from __future__ import annotations

import time

from fastapi import APIRouter

from aico.ai.memory import ContextBundle, SearchHit
from aico.ai.memory.semantic import query_terms
from aico.errors import InvalidInput, NotFound
from aico_backend.deps import Auth, Svc
from aico_backend.models import (
    ContextItem,
    ContextRequest,
    ContextResponse,
    ForgetRequest,
    ForgetResponse,
    SearchRequest,
    SearchResponse,
    SearchResult,
)
from aico_backend.routes._convert import forget_response
from aico_backend.routes.conversations import owned_conversation

__all__ = ["context_items", "router", "search_result"]

router = APIRouter(prefix="/v1", tags=["memory"])


def search_result(hit: SearchHit) -> SearchResult:
    return SearchResult(
        segment_id=hit.segment_id,
        text=hit.text,
        score=hit.score,
        bm25_rank=hit.bm25_rank,
        bm25_score=hit.bm25_score,
        dense_rank=hit.dense_rank,
        dense_score=hit.dense_score,
        conversation_id=hit.conversation_id,
        session_id=hit.session_id,
        roles=list(hit.roles),
        start_ts=hit.start_ts,
        end_ts=hit.end_ts,
    )


def term_share(text: str, terms: set[str]) -> float:
    """The share of the query's terms a text contains (how facts are ranked for a query)."""
    if not terms:
        return 0.0
    return len(terms & set(query_terms(text))) / len(terms)


def context_items(bundle: ContextBundle, query: str) -> list[ContextItem]:
    """Every item of a context with where it came from and its score, in prompt order."""
    terms = set(query_terms(query))
    items = [
        ContextItem(source="fact", id=f.fact_id, text=f.content, score=term_share(f.content, terms))
        for f in bundle.facts
    ]
    items += [
        ContextItem(
            source="memory", id=m.segment_id, text=m.text, score=m.score, timestamp=m.end_ts
        )
        for m in bundle.memories
    ]
    items += [
        ContextItem(
            source="working",
            id=w.id,
            text=w.content,
            score=None,
            role=w.role,
            timestamp=w.created_at,
        )
        for w in bundle.working
    ]
    return items


@router.post("/context", summary="The assembled context for a prompt")
async def context(body: ContextRequest, svc: Svc, who: Auth) -> ContextResponse:
    user_id = who.user(body.user_id)
    session_id = body.conversation_id if body.session_id is None else body.session_id
    if session_id is None:
        raise InvalidInput("session_id or conversation_id is required")
    # Another user's session holds nothing of this user: recent() filters by owner, so
    # such an id answers exactly like an unknown one.
    started = time.perf_counter()
    bundle = await svc.memory.assemble_context(
        user_id,
        session_id,
        body.query,
        max_tokens=body.max_tokens,
        recent=body.recent,
        k=body.k,
        min_score=body.min_score,
    )
    if body.record and not svc.read_only:
        # The companion asks for a context to put it into a prompt: that is the use.
        await svc.memory.record_context_use(
            user_id, bundle, seconds=time.perf_counter() - started, context_id=session_id
        )
    return ContextResponse(
        items=context_items(bundle, body.query),
        prompt=bundle.render(),
        token_estimate=bundle.token_estimate,
        max_tokens=bundle.max_tokens,
        dropped=bundle.dropped,
    )


@router.post("/search", summary="Hybrid search of long-term memory (read-only)")
async def search(body: SearchRequest, svc: Svc, who: Auth) -> SearchResponse:
    user_id = who.user(body.user_id)
    hits = await svc.memory.search(
        user_id,
        body.query,
        body.k,
        mode=body.mode,
        conversation_id=body.conversation_id,
        role=body.role,
        start=body.start,
        end=body.end,
        min_score=body.min_score,
    )
    return SearchResponse(results=[search_result(h) for h in hits])


@router.post("/forget", summary="Forget a user, a conversation or a message everywhere")
async def forget(body: ForgetRequest, svc: Svc, who: Auth) -> ForgetResponse:
    if body.grain == "user":
        if body.conversation_id is not None or body.message_id is not None:
            raise InvalidInput("grain 'user' takes no conversation_id or message_id")
        user_id = who.user(body.user_id)
        if not await svc.run(svc.users.exists, user_id):
            raise NotFound("no user with this user_id")
        return forget_response(await svc.memory.forget(user_id))
    if body.grain == "conversation":
        if body.conversation_id is None or body.message_id is not None:
            raise InvalidInput("grain 'conversation' takes a conversation_id only")
        owner = await owned_conversation(svc, who, body.conversation_id)
        if body.user_id is not None and body.user_id != owner:
            raise NotFound("no conversation with this conversation_id")
        report = await svc.memory.forget(owner, conversation_id=body.conversation_id)
        return forget_response(report)
    if body.message_id is None or body.conversation_id is not None:
        raise InvalidInput("grain 'message' takes a message_id only")
    message_owner = await svc.run(svc.conversations.message_owner, body.message_id)
    if not who.owns(message_owner) or (body.user_id is not None and body.user_id != message_owner):
        raise NotFound("no message with this message_id")
    assert message_owner is not None
    return forget_response(await svc.memory.forget(message_owner, message_id=body.message_id))
