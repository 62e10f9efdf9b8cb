"""Recording which segments and facts went into a context (the "analytics" schema's rows).

``record_context`` writes one event and one item per segment or fact, in one short
transaction on the core database. Items whose segment or fact is gone by then (a forget
racing the read) are skipped by the ``INSERT ... SELECT``, so the foreign keys never fail.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from aico.analytics.schema import ANALYTICS_SCHEMA
from aico.data.schema import Migrator, default_registry
from aico.errors import InvalidInput, ReadOnly

if TYPE_CHECKING:
    from aico.ai.memory.context import ContextBundle
    from aico.data.repositories._base import Connection
    from aico.data.store import DataStore

__all__ = ["ensure_schema", "record_context"]


def ensure_schema(store: DataStore) -> None:
    """Apply the pending versions of the "analytics" schema to the core database.

    ``aico.ai.memory.stores`` does not import this schema, so a data dir gets its tables on
    the first recording (one transaction per version, like every schema).
    """
    migrator = Migrator(store.connection("core"), "core", registry=default_registry)
    status = next(s for s in migrator.status() if s.schema == ANALYTICS_SCHEMA.name)
    if not status.ok:
        migrator.plan(schema=ANALYTICS_SCHEMA.name)  # raises the checksum or version error
    if not status.pending:
        return
    if store.read_only:
        raise ReadOnly("the analytics tables are not in this data dir yet; open it writable")
    migrator.upgrade(schema=ANALYTICS_SCHEMA.name)


def record_context(
    core: Connection, user_id: str, bundle: ContextBundle, seconds: float, at: float
) -> int:
    """Store one assembled context's ids and latency; returns the event id."""
    if not math.isfinite(seconds) or seconds < 0:
        raise InvalidInput("seconds must be a non-negative finite number")
    with core.transaction():
        row = core.fetch_one(
            "INSERT INTO analytics_context_events "
            "(user_id, at, latency_ms, working, memories, facts, tokens) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (
                user_id,
                at,
                seconds * 1000.0,
                len(bundle.working),
                len(bundle.memories),
                len(bundle.facts),
                max(int(bundle.token_estimate), 0),
            ),
        )
        assert row is not None
        event = int(row["id"])
        for rank, hit in enumerate(bundle.memories):
            core.execute(
                "INSERT INTO analytics_context_items (event_id, segment_id, rank, score) "
                "SELECT ?, segment_id, ?, ? FROM semantic_segments WHERE segment_id = ?",
                (event, rank, float(hit.score), hit.segment_id),
            )
        for rank, fact in enumerate(bundle.facts):
            core.execute(
                "INSERT INTO analytics_context_items (event_id, fact_id, rank, score) "
                "SELECT ?, fact_id, ?, NULL FROM facts WHERE fact_id = ?",
                (event, rank, fact.fact_id),
            )
    return event
