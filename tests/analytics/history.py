"""A generated history with values known in advance, written by direct batched inserts.

Messages go through ``ConversationLog.append`` (the repository the manager uses), many per
transaction, so 100k messages take seconds, not the minutes the embedding model would.
Every message of history ``i`` gets a timestamp, role, token count and cost that the tests
can recompute by hand from the same parameters (``expected_*``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aico.ai.embeddings import HashingEncoder
from aico.ai.memory import MemoryManager
from aico.config import load_config
from aico.data.repositories import UserService
from aico.data.repositories.conversations import LoggedMessage
from aico.security import KdfParams

PASSPHRASE = "analytics test passphrase"
USERS = ["ana", "ben", "cy"]
DAY = 86_400.0
START = 1_767_225_600.0  # 2026-01-01T00:00:00Z, a Thursday
PROVIDERS = (("openai", "gpt-4o"), ("anthropic", "claude"), ("local", None))
ROLES = ("user", "assistant")


@dataclass
class History:
    """What was written: one record per message, enough to recompute every view."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    conversations: dict[str, dict[str, Any]] = field(default_factory=dict)


def open_test_manager(data_dir: Path) -> MemoryManager:
    """A new data dir with cheap Argon2 and the fast fake encoder (for module fixtures)."""
    params = KdfParams.for_tests()
    config = load_config(
        env={},
        overrides={
            "security": {
                "use_keyring": False,
                "kdf_time_cost": params.time_cost,
                "kdf_memory_cost_kib": params.memory_cost_kib,
                "kdf_parallelism": params.parallelism,
            }
        },
    )
    return MemoryManager.initialize(data_dir, PASSPHRASE, config=config, encoder=HashingEncoder())


def ensure_users(memory: MemoryManager, users: list[str]) -> None:
    service = UserService(memory.store.connection("core"))
    for user in users:
        if not service.exists(user):
            service.create_user(user.title(), user_id=user)


def write_history(
    memory: MemoryManager,
    users: list[str],
    *,
    messages: int,
    per_session: int = 10,
    days: int = 30,
    seed: int = 7,
    batch: int = 2_000,
    tag: str = "h",
) -> History:
    """``messages`` messages over ``days`` days, spread over ``users``, in sessions."""
    ensure_users(memory, users)
    rng = random.Random(seed)
    log = memory.log
    conn = memory.store.connection("conversations")
    history = History()
    pending: list[tuple[LoggedMessage, str, str | None]] = []

    def flush() -> None:
        with conn.transaction():
            for m, provider, model in pending:
                log.append(
                    m,
                    working_expires_at=m.timestamp + 60.0,
                    provider=provider,
                    model=model,
                    title=None,
                )
        pending.clear()

    n_sessions = max(1, messages // per_session)
    written = 0
    for s in range(n_sessions):
        user = users[s % len(users)]
        session = f"{tag}-s{s}"
        conversation = f"{tag}-c{s // 2}" if s % 5 else None  # every 5th session: none
        provider, model = PROVIDERS[s % len(PROVIDERS)]
        if conversation is not None:
            # A conversation keeps the provider of its first session.
            first = history.conversations.setdefault(
                conversation,
                {"user": user, "provider": provider, "model": model, "tokens": 0, "cost": 0.0},
            )
            if first["user"] != user:
                conversation = f"{conversation}-{user}"
                first = history.conversations.setdefault(
                    conversation,
                    {"user": user, "provider": provider, "model": model, "tokens": 0, "cost": 0},
                )
            provider, model = first["provider"], first["model"]
        started = START + rng.randrange(days) * DAY + rng.randrange(24) * 3600.0
        count = per_session if s < n_sessions - 1 else messages - written
        history.sessions[session] = {"user": user, "started": started, "messages": count}
        for i in range(count):
            ts = started + i * 30.0
            role = ROLES[i % 2]
            tokens = 5 + (written % 17)
            cost = round(tokens * 0.001, 6)
            m = LoggedMessage(
                id=f"{tag}-m{written}",
                user_id=user,
                session_id=session,
                conversation_id=conversation,
                role=role,
                content=f"message {written} of {tag}",
                timestamp=ts,
                tokens=tokens,
                cost=cost,
            )
            history.messages.append(
                {
                    "id": m.id,
                    "user": user,
                    "session": session,
                    "conversation": conversation,
                    "role": role,
                    "ts": ts,
                    "tokens": tokens,
                    "cost": cost,
                    "provider": provider,
                    "model": model,
                }
            )
            if conversation is not None:
                history.conversations[conversation]["tokens"] += tokens
                history.conversations[conversation]["cost"] += cost
            pending.append((m, provider, model))
            written += 1
            if len(pending) >= batch:
                flush()
    if pending:
        flush()
    return history
