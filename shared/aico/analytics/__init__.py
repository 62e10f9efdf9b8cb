"""Analytics over aico's stores with DuckDB (docs/analytics.md).

An encrypted DuckDB copy of the data dir's ids, times and counts (never any text), kept
current by an incremental export from libSQL; documented views over it; read-only ad-hoc
SQL for an admin; a self-contained HTML report. ``MemoryManager.analytics`` returns one
``Analytics`` per manager.
"""

from __future__ import annotations

# Imported for its registration: the "analytics" schema (context retrievals) of core.
import aico.analytics.schema  # noqa: F401
from aico.analytics.core import Analytics, Rows
from aico.analytics.export import ExportReport
from aico.analytics.views import VIEWS, View

__all__ = ["VIEWS", "Analytics", "ExportReport", "Rows", "View"]
