"""Alias of ``aico.data.repositories.logs``: the data layer's documented import path."""

from aico.data.repositories.logs import LOG_LEVELS, LogEntry, LogRepository

__all__ = ["LOG_LEVELS", "LogEntry", "LogRepository"]
