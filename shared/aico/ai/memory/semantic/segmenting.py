"""Cut a conversation into segments, the unit that is indexed and returned by search.

The unit is a parameter because it is an empirical choice (measured in
``docs/benchmarks.md``): a ``turn`` (one message), an ``exchange`` (a user message and the
replies up to the next user message), a sliding ``window`` of messages, or a whole
``session``. Independently, ``fts_roles`` chooses whose words BM25 sees (measured: the
user's own words make the strongest keyword retriever) and ``embed_roles`` whose words are
embedded; the returned text always holds every message of the segment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from aico.ai.memory.semantic.types import Message, Segment, check_role
from aico.errors import ConfigError

__all__ = ["SegmentUnit", "SegmentationConfig", "segment_messages"]

SegmentUnit = Literal["turn", "exchange", "window", "session"]


@dataclass(frozen=True)
class SegmentationConfig:
    """``fts_roles`` / ``embed_roles``: roles whose text is indexed / embedded (None = all)."""

    unit: SegmentUnit = "exchange"
    window: int = 4
    stride: int = 2
    fts_roles: tuple[str, ...] | None = ("user",)
    embed_roles: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.unit not in get_args(SegmentUnit):
            raise ConfigError(f"semantic.segment_unit must be one of {get_args(SegmentUnit)}")
        for name in ("window", "stride"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"semantic.segment_{name} must be a positive integer")
        for name in ("fts_roles", "embed_roles"):
            roles = getattr(self, name)
            if roles is None:
                continue
            if isinstance(roles, str):
                raise ConfigError(f"semantic.{name} must be a list of roles")
            try:
                object.__setattr__(self, name, tuple(check_role(r) for r in roles))
            except Exception:
                raise ConfigError(f"semantic.{name} must be a list of role names") from None


def segment_messages(
    user_id: str,
    messages: Sequence[Message],
    *,
    conversation_id: str | None = None,
    session_id: str | None = None,
    config: SegmentationConfig | None = None,
) -> list[Segment]:
    """Segments of ``messages`` (in order; empty messages are skipped)."""
    cfg = config or SegmentationConfig()
    kept = [m for m in messages if m.text.strip()]
    if cfg.unit == "turn":
        groups = [[m] for m in kept]
    elif cfg.unit == "exchange":
        groups = _exchanges(kept)
    elif cfg.unit == "window":
        groups = _windows(kept, cfg.window, cfg.stride)
    else:
        groups = [kept] if kept else []
    return [_segment(user_id, group, conversation_id, session_id, cfg) for group in groups if group]


def _exchanges(messages: list[Message]) -> list[list[Message]]:
    groups: list[list[Message]] = []
    for message in messages:
        if message.role == "user" or not groups:
            groups.append([message])
        else:
            groups[-1].append(message)
    return groups


def _windows(messages: list[Message], size: int, stride: int) -> list[list[Message]]:
    if len(messages) <= size:
        return [messages]
    starts = list(range(0, len(messages) - size + 1, stride))
    if starts[-1] + size < len(messages):
        starts.append(len(messages) - size)  # the tail is never dropped
    return [messages[s : s + size] for s in starts]


def _segment(
    user_id: str,
    group: list[Message],
    conversation_id: str | None,
    session_id: str | None,
    cfg: SegmentationConfig,
) -> Segment:
    def words(roles: tuple[str, ...] | None) -> str:
        return "\n".join(m.text for m in group if roles is None or m.role in roles)

    # Several messages: keep who said what in the returned text.
    text = group[0].text if len(group) == 1 else "\n".join(f"{m.role}: {m.text}" for m in group)
    fts_text = words(cfg.fts_roles)
    embed_text = words(cfg.embed_roles) or words(None)
    return Segment(
        user_id=user_id,
        text=text,
        start_ts=min(m.timestamp for m in group),
        end_ts=max(m.timestamp for m in group),
        conversation_id=conversation_id,
        session_id=session_id,
        roles=tuple(m.role for m in group),
        fts_text=None if fts_text == text else fts_text,
        embed_text=None if embed_text == text else embed_text,
        message_ids=tuple(m.message_id for m in group if m.message_id is not None),
    )
