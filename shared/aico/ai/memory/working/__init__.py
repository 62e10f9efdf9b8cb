"""Working memory: the last 24 hours of each session, sealed in LMDB, mirrored in libSQL.

``WorkingMemoryStore`` is the store; ``status``, ``sweep``, ``list_session`` and
``reconcile`` are the operations the ``aico lmdb`` commands wrap. See
``docs/working-memory.md`` for the on-disk layout and the guarantees.
"""

from aico.ai.memory.working._commands import list_session, reconcile, status, sweep
from aico.ai.memory.working._message import WorkingMessage
from aico.ai.memory.working._reseal import ResealReport
from aico.ai.memory.working._store import WorkingMemoryStore

__all__ = [
    "ResealReport",
    "WorkingMemoryStore",
    "WorkingMessage",
    "list_session",
    "reconcile",
    "status",
    "sweep",
]
