"""Fault-injection points at each commit of the coordinator (tests only; a no-op otherwise).

``set_fault_hook(fn)`` makes ``fault(point)`` call ``fn(point)``; a test raises or kills
the process there to prove the stores agree again after reopening. Points:

- ``after_log_commit``: a message is in the log, working memory not yet written;
- ``after_working_append``: working memory written, its outbox row not yet cleared;
- ``after_claim``: a consolidation claimed its messages, no segment written yet;
- ``after_segments``: segments committed, the claim not yet marked done;
- ``mid_outbox``: vectors stored in libSQL, Chroma not yet written, outbox rows still there;
- ``after_forget_log``: a forget removed the log rows, derived stores not touched yet;
- ``after_forget_derived``: derived stores cleared, the ledger not yet closed.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["POINTS", "fault", "set_fault_hook"]

POINTS = (
    "after_log_commit",
    "after_working_append",
    "after_claim",
    "after_segments",
    "mid_outbox",
    "after_forget_log",
    "after_forget_derived",
)

_hook: Callable[[str], None] | None = None


def set_fault_hook(hook: Callable[[str], None] | None) -> None:
    global _hook
    _hook = hook


def fault(point: str) -> None:
    if _hook is not None:
        _hook(point)
