"""``/v1/feedback``: thumbs, ratings, corrections and comments on the companion's replies."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, status

from aico.errors import NotFound
from aico_backend.deps import Auth, Svc
from aico_backend.models import FeedbackCreate, FeedbackOut
from aico_backend.routes._convert import fields
from aico_backend.routes.conversations import owned_conversation

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["feedback"])


@router.post("/feedback", status_code=status.HTTP_201_CREATED, summary="Record feedback")
async def create_feedback(body: FeedbackCreate, svc: Svc, who: Auth) -> FeedbackOut:
    user_id = who.user(body.user_id)
    if body.message_id is not None:
        owner = await svc.run(svc.conversations.message_owner, body.message_id)
        if owner != user_id:
            raise NotFound("no message with this message_id")
    if (
        body.conversation_id is not None
        and await owned_conversation(svc, who, body.conversation_id) != user_id
    ):
        raise NotFound("no conversation with this conversation_id")
    event = await svc.run(
        svc.feedback.record,
        user_id,
        body.event_type,
        rating=body.rating,
        comment=body.comment,
        message_id=body.message_id,
        conversation_id=body.conversation_id,
        metadata=body.metadata,
    )
    return FeedbackOut(**fields(event))


@router.get("/feedback", summary="A user's feedback, newest first")
async def list_feedback(
    svc: Svc,
    who: Auth,
    user_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, list[FeedbackOut]]:
    events = await svc.run(svc.feedback.list_for_user, who.user(user_id), limit=limit)
    return {"feedback": [FeedbackOut(**fields(e)) for e in events]}


@router.get("/feedback/summary", summary="Counts per type and the mean rating")
async def feedback_summary(svc: Svc, who: Auth, user_id: str | None = None) -> dict[str, Any]:
    summary: dict[str, Any] = await svc.run(svc.feedback.summary, who.user(user_id))
    return summary
