"""Request and response bodies of ``/v1`` (they are the OpenAPI schema).

Requests are strict and closed (``extra="forbid"``): a misspelt field is a 422 naming it,
not silently ignored. Pydantic checks shapes and types only; aico's own checks (ids, text
limits, roles) run in the library, so there is one rule per value and one message.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ContextItem",
    "ContextRequest",
    "ContextResponse",
    "ConversationCreate",
    "ConversationOut",
    "ConversationUpdate",
    "FactCreate",
    "FactOut",
    "FactUpdate",
    "FeedbackCreate",
    "FeedbackOut",
    "ForgetRequest",
    "ForgetResponse",
    "MessageCreate",
    "MessageOut",
    "MessagePage",
    "SearchRequest",
    "SearchResponse",
    "SearchResult",
    "StoredMessage",
    "UserCreate",
    "UserOut",
    "UserUpdate",
]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _Response(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---- users ------------------------------------------------------------------------------


class UserCreate(_Request):
    display_name: str
    user_id: str | None = None
    nickname: str | None = None
    user_type: Literal["person", "admin", "guest"] = "person"
    preferences: dict[str, Any] | None = None


class UserUpdate(_Request):
    display_name: str | None = None
    nickname: str | None = None
    user_type: Literal["person", "admin", "guest"] | None = None
    preferences: dict[str, Any] | None = None
    is_active: bool | None = None


class UserOut(_Response):
    user_id: str
    display_name: str
    nickname: str | None
    user_type: str
    preferences: dict[str, Any]
    is_active: bool
    created_at: float
    updated_at: float


# ---- conversations and messages ------------------------------------------------------


class ConversationCreate(_Request):
    user_id: str | None = Field(None, description="Required with the admin token.")
    title: str | None = None


class ConversationUpdate(_Request):
    title: str | None = None
    status: Literal["active", "archived"] | None = None


class ConversationOut(_Response):
    id: str
    user_id: str
    title: str | None
    status: str
    provider: str
    model: str | None
    total_tokens: int
    message_count: int
    created_at: float
    updated_at: float


class MessageCreate(_Request):
    role: Literal["user", "assistant", "system", "tool"]
    content: str
    session_id: str | None = Field(None, description="Default: the conversation's id.")
    timestamp: float | None = None
    tokens: int | None = None
    cost: float = 0.0
    metadata: dict[str, Any] | None = None
    tool_calls: Any = None
    tool_results: Any = None
    provider: str = "aico"
    model: str | None = None
    title: str | None = None


class StoredMessage(_Response):
    id: str = Field(description="Returned once the log has committed the message.")
    conversation_id: str
    session_id: str


class MessageOut(_Response):
    id: str
    conversation_id: str | None
    session_id: str
    role: str
    content: str
    timestamp: float
    tokens: int | None
    metadata: dict[str, Any]
    consolidated: bool


class MessagePage(_Response):
    messages: list[MessageOut]
    next_offset: int | None = Field(description="The offset of the next page; null at the end.")


# ---- reading ------------------------------------------------------------------------


class SearchRequest(_Request):
    query: str
    user_id: str | None = None
    k: int = 10
    mode: Literal["hybrid", "bm25", "dense"] = "hybrid"
    conversation_id: str | None = None
    role: str | None = None
    start: float | None = None
    end: float | None = None
    min_score: float | None = None


class SearchResult(_Response):
    segment_id: str
    text: str
    score: float
    bm25_rank: int | None
    bm25_score: float | None
    dense_rank: int | None
    dense_score: float | None
    conversation_id: str | None
    session_id: str | None
    roles: list[str]
    start_ts: float
    end_ts: float


class SearchResponse(_Response):
    results: list[SearchResult]


class ContextRequest(_Request):
    query: str
    session_id: str | None = Field(None, description="Default: conversation_id.")
    conversation_id: str | None = None
    user_id: str | None = None
    max_tokens: int | None = None
    recent: int | None = None
    k: int | None = None
    min_score: float | None = None
    record: bool = Field(
        True,
        description="Record that this context goes into a prompt (file accesses, which "
        "memories were used); false for a preview. Never recorded on a read-only service.",
    )


class ContextItem(_Response):
    source: Literal["working", "fact", "memory"]
    id: str
    text: str
    score: float | None = Field(
        description="memory: fused search score; fact: share of query terms it contains; "
        "working: none (recent turns are included by recency)"
    )
    role: str | None = None
    timestamp: float | None = None


class ContextResponse(_Response):
    items: list[ContextItem]
    prompt: str = Field(description="The rendered block for a prompt (ContextBundle.render).")
    token_estimate: int
    max_tokens: int
    dropped: int


# ---- memory album and feedback ---------------------------------------------------------


class FactCreate(_Request):
    content: str
    user_id: str | None = None
    category: str = "general"
    confidence: float = 1.0
    is_favorite: bool = False
    source_message_id: str | None = None
    conversation_id: str | None = None
    metadata: dict[str, Any] | None = None


class FactUpdate(_Request):
    content: str | None = None
    category: str | None = None
    confidence: float | None = None
    is_favorite: bool | None = None
    metadata: dict[str, Any] | None = None


class FactOut(_Response):
    fact_id: str
    user_id: str
    content: str
    category: str
    confidence: float
    is_favorite: bool
    source_message_id: str | None
    conversation_id: str | None
    revisit_count: int
    last_revisited_at: float | None
    metadata: dict[str, Any]
    created_at: float
    updated_at: float


class FeedbackCreate(_Request):
    event_type: Literal["thumbs_up", "thumbs_down", "rating", "correction", "comment"]
    user_id: str | None = None
    rating: int | None = None
    comment: str | None = None
    message_id: str | None = None
    conversation_id: str | None = None
    metadata: dict[str, Any] | None = None


class FeedbackOut(_Response):
    event_id: str
    user_id: str
    event_type: str
    rating: int | None
    comment: str | None
    message_id: str | None
    conversation_id: str | None
    metadata: dict[str, Any]
    created_at: float


# ---- forgetting ------------------------------------------------------------------------


class ForgetRequest(_Request):
    grain: Literal["user", "conversation", "message"] = Field(
        description="Said explicitly, so that a missing id never forgets a whole user."
    )
    user_id: str | None = None
    conversation_id: str | None = None
    message_id: str | None = None


class ForgetResponse(_Response):
    grain: str
    messages: int
    conversations: int
    sessions: int
    working_entries: int
    segments: int
    facts: int
    feedback: int
    attachments: int
    index_purge_pending: bool = Field(
        False, description="The Chroma server was unreachable: its copy is purged on repair."
    )
