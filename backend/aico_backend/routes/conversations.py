"""``/v1/conversations`` (create, list, get, rename/archive, forget), their messages, and
``/v1/sessions/{id}/end``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, status

from aico.errors import NotFound
from aico_backend.auth import Principal
from aico_backend.deps import Auth, Svc
from aico_backend.models import (
    ConversationCreate,
    ConversationOut,
    ConversationUpdate,
    ForgetResponse,
    MessageCreate,
    MessageOut,
    MessagePage,
    StoredMessage,
)
from aico_backend.routes._convert import fields, forget_response
from aico_backend.service import Service

__all__ = ["owned_conversation", "router"]

router = APIRouter(prefix="/v1", tags=["conversations"])

_NO_CONVERSATION = "no conversation with this conversation_id"


async def owned_conversation(svc: Service, who: Principal, conversation_id: str) -> str:
    """The owner of a conversation this token may see; ``NotFound`` otherwise."""
    owner = await svc.run(svc.conversations.owner, conversation_id)
    if not who.owns(owner):
        raise NotFound(_NO_CONVERSATION)
    assert owner is not None
    return owner


@router.post("/conversations", status_code=status.HTTP_201_CREATED, summary="Start a conversation")
async def create_conversation(body: ConversationCreate, svc: Svc, who: Auth) -> ConversationOut:
    user_id = who.user(body.user_id)
    made = await svc.run(svc.conversations.create, user_id, title=body.title)
    return ConversationOut(**fields(made))


@router.get("/conversations", summary="List conversations, most recent first")
async def list_conversations(
    svc: Svc,
    who: Auth,
    user_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, list[ConversationOut]]:
    found = await svc.run(svc.conversations.for_user, who.user(user_id), limit=limit, offset=offset)
    return {"conversations": [ConversationOut(**fields(c)) for c in found]}


@router.get("/conversations/{conversation_id}", summary="One conversation")
async def get_conversation(conversation_id: str, svc: Svc, who: Auth) -> ConversationOut:
    await owned_conversation(svc, who, conversation_id)
    return ConversationOut(**fields(await svc.run(svc.conversations.get, conversation_id)))


@router.patch("/conversations/{conversation_id}", summary="Rename or archive a conversation")
async def update_conversation(
    conversation_id: str, body: ConversationUpdate, svc: Svc, who: Auth
) -> ConversationOut:
    await owned_conversation(svc, who, conversation_id)
    updated = await svc.run(
        svc.conversations.update, conversation_id, title=body.title, status=body.status
    )
    return ConversationOut(**fields(updated))


@router.delete(
    "/conversations/{conversation_id}", summary="Forget a conversation, from every store"
)
async def delete_conversation(conversation_id: str, svc: Svc, who: Auth) -> ForgetResponse:
    owner = await owned_conversation(svc, who, conversation_id)
    return forget_response(await svc.memory.forget(owner, conversation_id=conversation_id))


@router.post(
    "/conversations/{conversation_id}/messages",
    status_code=status.HTTP_201_CREATED,
    summary="Append a message (answers once the log has committed it)",
)
async def append_message(
    conversation_id: str, body: MessageCreate, svc: Svc, who: Auth
) -> StoredMessage:
    session_id = conversation_id if body.session_id is None else body.session_id
    owner, session_owner = await svc.run(svc.conversations.owners, conversation_id, session_id)
    if not who.owns(owner):
        raise NotFound(_NO_CONVERSATION)
    if session_owner is not None and session_owner != owner:
        raise NotFound("no session with this session_id")
    assert owner is not None
    message_id = await svc.memory.store_message(
        owner,
        session_id,
        body.role,
        body.content,
        conversation_id=conversation_id,
        timestamp=body.timestamp,
        tokens=body.tokens,
        cost=body.cost,
        tool_calls=body.tool_calls,
        tool_results=body.tool_results,
        metadata=body.metadata,
        provider=body.provider,
        model=body.model,
        title=body.title,
    )
    return StoredMessage(id=message_id, conversation_id=conversation_id, session_id=session_id)


@router.get("/conversations/{conversation_id}/messages", summary="A page of messages, oldest first")
async def list_messages(
    conversation_id: str,
    svc: Svc,
    who: Auth,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> MessagePage:
    await owned_conversation(svc, who, conversation_id)
    page, next_offset = await svc.run(
        svc.conversations.messages, conversation_id, limit=limit, offset=offset
    )
    return MessagePage(messages=[MessageOut(**fields(m)) for m in page], next_offset=next_offset)


@router.post("/sessions/{session_id}/end", summary="End a session and consolidate it now")
async def end_session(
    session_id: str, svc: Svc, who: Auth, consolidate: bool = True
) -> dict[str, Any]:
    owner = await svc.run(svc.conversations.session_owner, session_id)
    if not who.owns(owner):
        raise NotFound("no session with this session_id")
    made = await svc.memory.end_session(session_id, consolidate=consolidate)
    return {"session_id": session_id, "segments_created": made}
