"""Working memory: the last 24 hours of each session, sealed in LMDB (a cache of the log).

``WorkingMemoryStore`` is the store; ``status``, ``sweep`` and ``list_session`` are the
operations the ``aico lmdb`` commands wrap; ``quarantine_working`` moves a damaged
environment aside (``WorkingMemoryCorrupted``) so a fresh one can be opened. See
``docs/working-memory.md`` for the on-disk layout and the guarantees.
"""

from aico.ai.memory.working._commands import list_session, status, sweep
from aico.ai.memory.working._message import WorkingMessage
from aico.ai.memory.working._quarantine import quarantine_working
from aico.ai.memory.working._reseal import ResealReport
from aico.ai.memory.working._store import WorkingMemoryStore

__all__ = [
    "ResealReport",
    "WorkingMemoryStore",
    "WorkingMessage",
    "list_session",
    "quarantine_working",
    "status",
    "sweep",
]
