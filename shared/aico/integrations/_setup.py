"""Bring a data dir's core database to the integrations' schema head (or refuse, read-only).

A data dir made before the integrations existed, or by a process that never imported
``aico.integrations.schema``, lacks the tables; the first integration opened writable
migrates them (one transaction per version, like every schema). Read-only, nothing is
written: the tables must be there already.
"""

from __future__ import annotations

from aico.data.schema import Migrator, default_registry
from aico.data.store import DataStore
from aico.errors import ReadOnly
from aico.integrations.schema import INTEGRATIONS_SCHEMA

__all__ = ["ensure_schema"]


def ensure_schema(store: DataStore) -> None:
    """Apply the pending versions of the "integrations" schema to ``store``'s core database."""
    migrator = Migrator(store.connection("core"), "core", registry=default_registry)
    status = next(s for s in migrator.status() if s.schema == INTEGRATIONS_SCHEMA.name)
    if not status.ok:
        migrator.plan(schema=INTEGRATIONS_SCHEMA.name)  # raises the checksum or version error
    if not status.pending:
        return
    if store.read_only:
        raise ReadOnly(
            "the integrations' tables are not in this data dir yet; open it writable once"
        )
    migrator.upgrade(schema=INTEGRATIONS_SCHEMA.name)
