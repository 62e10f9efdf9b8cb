"""``WorkingMessage``: one decrypted working-memory message, as reads return it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["WorkingMessage"]


@dataclass(slots=True)
class WorkingMessage:
    """A message of a session's last 24 hours.

    ``created_at`` and ``expires_at`` are unix seconds. ``created_at`` comes from the
    record key, so it is authenticated and strictly increasing within a session (two
    appends in the same microsecond keep their order through a sequence number).
    """

    id: str
    session_id: str
    user_id: str
    role: str
    content: str
    created_at: float
    expires_at: float
    metadata: dict[str, Any] = field(default_factory=dict)
    conversation_id: str | None = None

    def __repr__(self) -> str:
        # Never print content: reprs end up in logs and tracebacks.
        return (
            f"WorkingMessage(id={self.id!r}, session_id={self.session_id!r}, "
            f"role={self.role!r}, created_at={self.created_at!r}, chars={len(self.content)})"
        )
