"""What a prompt gets: recent turns, relevant memories and facts, within a token budget.

Pure logic, no I/O: the ``MemoryManager`` reads the stores and hands the parts in here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from aico.ai.memory.semantic import SearchHit, query_terms
from aico.ai.memory.working import WorkingMessage
from aico.data.repositories import Fact

__all__ = ["ContextBundle", "assemble", "estimate_tokens", "rank_facts"]

_T = TypeVar("_T")


def estimate_tokens(text: str) -> int:
    """About four characters per token for English; cheap and never zero for non-empty text."""
    return max(1, math.ceil(len(text) / 4)) if text else 0


@dataclass(frozen=True)
class ContextBundle:
    """What the companion's prompt gets, already trimmed to ``max_tokens``."""

    working: tuple[WorkingMessage, ...]
    memories: tuple[SearchHit, ...]
    facts: tuple[Fact, ...]
    token_estimate: int
    max_tokens: int
    dropped: int = 0

    def render(self) -> str:
        """A plain-text block for a prompt: facts, relevant memories, then the recent turns."""
        parts: list[str] = []
        if self.facts:
            parts.append("Things you know about the user:")
            parts += [f"- {f.content}" for f in self.facts]
        talks = [m for m in self.memories if m.source != "file"]
        notes = [m for m in self.memories if m.source == "file"]
        if talks:
            parts.append("Relevant earlier conversations:")
            parts += [f"- {m.text}" for m in talks]
        if notes:
            parts.append("From the user's own files:")
            parts += [f"- {m.text}" for m in notes]
        if self.working:
            parts.append("Recent conversation:")
            parts += [f"{m.role}: {m.content}" for m in self.working]
        return "\n".join(parts)


def assemble(
    working: list[WorkingMessage],
    hits: list[SearchHit],
    facts: list[Fact],
    budget: int,
) -> ContextBundle:
    """Trim to ``budget``: the newest turns first, then facts, then memories.

    ``working`` is newest first. Memories that repeat a message already in working memory
    are dropped.
    """
    seen = {m.content.strip() for m in working}
    fresh_hits = [h for h in hits if h.text.strip() not in seen and not _covered(h.text, seen)]
    budgeter = _Budget(budget)
    kept_working = budgeter.take(working, lambda m: m.content)
    kept_facts = budgeter.take(facts, lambda f: f.content)
    kept_hits = budgeter.take(fresh_hits, lambda h: h.text)
    return ContextBundle(
        working=tuple(reversed(kept_working)),  # chronological for the prompt
        memories=tuple(kept_hits),
        facts=tuple(kept_facts),
        token_estimate=budgeter.used,
        max_tokens=budget,
        dropped=budgeter.dropped,
    )


def rank_facts(facts: list[Fact], query: str, limit: int) -> list[Fact]:
    """Facts sharing query terms first (then favourites, then newest)."""
    terms = set(query_terms(query))

    def score(fact: Fact) -> tuple[int, int, float]:
        words = set(query_terms(fact.content))
        return (len(terms & words), int(fact.is_favorite), fact.created_at)

    ranked = sorted(facts, key=score, reverse=True)
    return [f for f in ranked if score(f)[0] > 0 or f.is_favorite][:limit]


class _Budget:
    """Greedy token budget shared by the parts of a context, in priority order."""

    def __init__(self, limit: int) -> None:
        self.limit, self.used, self.dropped = limit, 0, 0

    def take(self, items: Iterable[_T], text: Callable[[_T], str]) -> list[_T]:
        kept: list[_T] = []
        for item in items:
            cost = estimate_tokens(text(item))
            if self.used + cost > self.limit:
                self.dropped += 1
                continue
            kept.append(item)
            self.used += cost
        return kept


def _covered(text: str, seen: Iterable[str]) -> bool:
    """True when every line of a memory is already one of the working-memory messages."""
    lines = [line.split(": ", 1)[-1].strip() for line in text.splitlines() if line.strip()]
    seen_set = set(seen)
    return bool(lines) and all(line in seen_set for line in lines)
