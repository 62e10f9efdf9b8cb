"""``[storage.lifecycle]``, ``[storage.monitoring]`` and ``[storage.performance]``, checked.

The loader already refuses unknown keys and wrong types; this adds the ranges and turns the
specification's duration strings (``"5m"``, ``"1s"``) into seconds, so a job or a health
check never meets a value it cannot use. Keys the specification lists that aico does not
honour are refused by the loader with the reason (``[refused]`` in the shipped defaults).
"""

from __future__ import annotations

from dataclasses import dataclass

from aico.config import Config
from aico.errors import ConfigError
from aico.operations._durations import parse_duration

__all__ = ["LifecycleSettings", "MonitoringSettings", "PerformanceSettings"]


def _count(section: dict[str, object], name: str, where: str) -> int:
    value = section[name]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{where}.{name} must be a whole number >= 0 (0: no limit)")
    return value


@dataclass(frozen=True)
class LifecycleSettings:
    """Retention policies; 0 turns a limit off.

    ``conversation_archive_days``: a conversation not updated for this long is archived.
    ``conversation_max_per_project``: read as *per user* (aico has no projects): beyond this
    many active conversations a user's oldest are archived. ``archived_searchable``: whether
    archived conversations stay in long-term search (False: their segments leave the index;
    the log keeps every message). ``file_version_*``: rows of ``file_index.file_changes``.
    """

    conversation_archive_days: int = 365
    conversation_max_per_project: int = 1000
    archived_searchable: bool = True
    file_version_retention_days: int = 90
    file_version_max_count: int = 50

    @classmethod
    def from_config(cls, config: Config) -> LifecycleSettings:
        where = "storage.lifecycle"
        section = config.section(where)
        return cls(
            conversation_archive_days=_count(section, "conversation_archive_days", where),
            conversation_max_per_project=_count(section, "conversation_max_per_project", where),
            archived_searchable=bool(section["archived_searchable"]),
            file_version_retention_days=_count(section, "file_version_retention_days", where),
            file_version_max_count=_count(section, "file_version_max_count", where),
        )


@dataclass(frozen=True)
class MonitoringSettings:
    """Health thresholds: ``disk_usage_alert_threshold`` is the used fraction of the data
    dir's file system; statements slower than ``slow_query_threshold_s`` are logged (shape
    only) while ``query_performance_logging`` is on; the health job runs every
    ``health_check_interval_s``."""

    health_check_interval_s: float = 300.0
    disk_usage_alert_threshold: float = 0.85
    query_performance_logging: bool = True
    slow_query_threshold_s: float = 1.0

    @classmethod
    def from_config(cls, config: Config) -> MonitoringSettings:
        where = "storage.monitoring"
        section = config.section(where)
        threshold = section["disk_usage_alert_threshold"]
        if not 0.0 < float(threshold) <= 1.0:
            raise ConfigError(f"{where}.disk_usage_alert_threshold must be in (0, 1]")
        return cls(
            health_check_interval_s=parse_duration(
                section["health_check_interval"], f"{where}.health_check_interval", minimum=1.0
            ),
            disk_usage_alert_threshold=float(threshold),
            query_performance_logging=bool(section["query_performance_logging"]),
            slow_query_threshold_s=parse_duration(
                section["slow_query_threshold"], f"{where}.slow_query_threshold", minimum=0.001
            ),
        )


@dataclass(frozen=True)
class PerformanceSettings:
    """``index_rebuild_threshold``: the monthly index job rebuilds Chroma once this many
    segments were deleted since its last rebuild (Chroma keeps deleted vectors in its files
    until then); 0: only when the index disagrees with libSQL."""

    index_rebuild_threshold: int = 10_000

    @classmethod
    def from_config(cls, config: Config) -> PerformanceSettings:
        where = "storage.performance"
        section = config.section(where)
        return cls(index_rebuild_threshold=_count(section, "index_rebuild_threshold", where))
