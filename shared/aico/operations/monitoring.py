"""In-process monitoring for health: slow statements (their shape only) and error counts.

``start_monitoring(config)`` installs two observers for the life of the process (the
service calls it once at start-up; ``stop_monitoring`` removes them):

- **slow statements**: ``set_statement_observer`` (libSQL connections) times every
  ``execute``/``fetch_*``; a statement over ``slow_query_threshold`` is logged with its
  *shape*: the SQL text with every literal replaced by ``?`` and whitespace collapsed.
  Parameters never reach the observer, and literals are removed because SQL built with
  f-strings can carry values. Counts, worst and last time per shape are kept for health
  (at most ``_MAX_SHAPES`` shapes; the rest are counted together).
- **error counts**: a logging handler on the ``aico`` logger tree counts WARNING and ERROR
  records per logger name. Nothing of a record but its level and logger name is kept.

Both are per process: ``aico health`` in a fresh process sees only its own statements;
the service's ``/v1/health`` sees the service's.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Final

from aico.config import Config
from aico.data.libsql.connection import set_statement_observer
from aico.operations.settings import MonitoringSettings

__all__ = [
    "ErrorCounts",
    "SlowQuery",
    "SlowQueryStats",
    "monitoring_snapshot",
    "start_monitoring",
    "statement_shape",
    "stop_monitoring",
]

log = logging.getLogger("aico.operations.monitoring")

_MAX_SHAPES: Final = 100
_MAX_SHAPE_CHARS: Final = 300
_LOG_EVERY: Final = 100  # after its first, a shape is logged again once per this many
_LITERAL = re.compile(
    r"""'(?:[^']|'')*'|"(?:[^"]|"")*"|\b[xX]'[0-9a-fA-F]*'|\b0[xX][0-9a-fA-F]+\b|"""
    r"""(?<![\w.])-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?\b"""
)
_SPACE = re.compile(r"\s+")
_MARKS = re.compile(r"\?(?:\s*,\s*\?)+")


def statement_shape(sql: str) -> str:
    """The statement with literals as ``?`` (runs of ``?, ?`` as one), collapsed, capped."""
    shape = _LITERAL.sub("?", sql)
    shape = _SPACE.sub(" ", shape).strip()
    shape = _MARKS.sub("?, …", shape)
    if len(shape) > _MAX_SHAPE_CHARS:
        shape = shape[: _MAX_SHAPE_CHARS - 1] + "…"
    return shape


@dataclass(frozen=True)
class SlowQuery:
    """One statement shape that was slow: how often, worst and last duration, when last."""

    shape: str
    count: int
    max_s: float
    last_s: float
    last_at: float


@dataclass(frozen=True)
class SlowQueryStats:
    """What the slow-statement log saw in this process (``active``: is it installed)."""

    active: bool
    threshold_s: float | None
    since: float | None
    total: int
    other: int = 0  # slow statements of shapes beyond the kept ones
    slowest: tuple[SlowQuery, ...] = ()


@dataclass(frozen=True)
class ErrorCounts:
    """WARNING and ERROR log records of ``aico.*`` loggers in this process, by logger."""

    active: bool
    since: float | None
    warnings: int = 0
    errors: int = 0
    by_logger: dict[str, int] = field(default_factory=dict)


class _SlowLog:
    def __init__(self, threshold_s: float, clock: float) -> None:
        self.threshold_s = threshold_s
        self.since = clock
        self.total = 0
        self.other = 0
        self._shapes: dict[str, list[float]] = {}  # shape -> [count, max, last, last_at]
        self._lock = threading.Lock()

    def observe(self, sql: str, seconds: float) -> None:
        if seconds < self.threshold_s:
            return
        try:
            shape = statement_shape(sql)
            with self._lock:
                self.total += 1
                entry = self._shapes.get(shape)
                if entry is None and len(self._shapes) >= _MAX_SHAPES:
                    self.other += 1
                    return
                if entry is None:
                    entry = self._shapes[shape] = [0, 0.0, 0.0, 0.0]
                entry[0] += 1
                entry[1] = max(entry[1], seconds)
                entry[2] = seconds
                entry[3] = time.time()
                count = int(entry[0])
            if count == 1 or count % _LOG_EVERY == 0:
                log.warning(
                    "slow statement (%.0f ms, seen %d times): %s", seconds * 1e3, count, shape
                )
        except Exception:  # never fail the statement that was observed
            return

    def stats(self, limit: int) -> SlowQueryStats:
        with self._lock:
            items = sorted(self._shapes.items(), key=lambda kv: (-kv[1][1], kv[0]))[:limit]
            return SlowQueryStats(
                active=True,
                threshold_s=self.threshold_s,
                since=self.since,
                total=self.total,
                other=self.other,
                slowest=tuple(SlowQuery(shape, int(e[0]), e[1], e[2], e[3]) for shape, e in items),
            )


class _ErrorCounter(logging.Handler):
    def __init__(self, clock: float) -> None:
        super().__init__(level=logging.WARNING)
        self.since = clock
        self.warnings = 0
        self.errors = 0
        self.by_logger: dict[str, int] = {}
        self._count_lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self._count_lock:
            if record.levelno >= logging.ERROR:
                self.errors += 1
            else:
                self.warnings += 1
            if record.name in self.by_logger or len(self.by_logger) < _MAX_SHAPES:
                self.by_logger[record.name] = self.by_logger.get(record.name, 0) + 1

    def counts(self) -> ErrorCounts:
        with self._count_lock:
            return ErrorCounts(True, self.since, self.warnings, self.errors, dict(self.by_logger))


_state_lock = threading.Lock()
_slow: _SlowLog | None = None
_errors: _ErrorCounter | None = None


def start_monitoring(config: Config | MonitoringSettings) -> None:
    """Install the slow-statement log (if ``query_performance_logging``) and the error
    counter for this process; calling it again applies new settings and keeps the counts."""
    global _slow, _errors
    settings = (
        config
        if isinstance(config, MonitoringSettings)
        else (MonitoringSettings.from_config(config))
    )
    now = time.time()
    with _state_lock:
        if settings.query_performance_logging:
            if _slow is None:
                _slow = _SlowLog(settings.slow_query_threshold_s, now)
            _slow.threshold_s = settings.slow_query_threshold_s
            set_statement_observer(_slow.observe)
        else:
            set_statement_observer(None)
            _slow = None
        if _errors is None:
            _errors = _ErrorCounter(now)
            logging.getLogger("aico").addHandler(_errors)


def stop_monitoring() -> None:
    """Remove both observers (the counts go with them)."""
    global _slow, _errors
    with _state_lock:
        set_statement_observer(None)
        _slow = None
        if _errors is not None:
            logging.getLogger("aico").removeHandler(_errors)
            _errors = None


def monitoring_snapshot(limit: int = 10) -> tuple[SlowQueryStats, ErrorCounts]:
    """The slow-statement stats (``limit`` slowest shapes) and error counts so far."""
    with _state_lock:
        slow, errors = _slow, _errors
    return (
        slow.stats(limit) if slow is not None else SlowQueryStats(False, None, None, 0),
        errors.counts() if errors is not None else ErrorCounts(False, None),
    )
