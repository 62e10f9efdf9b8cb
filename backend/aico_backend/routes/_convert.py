"""Dataclasses of the library as response models, and the report of a forget."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from aico.ai.memory import ForgetReport
from aico_backend.models import ForgetResponse

__all__ = ["fields", "forget_response"]


def fields(record: Any) -> dict[str, Any]:
    """A library dataclass as a dict for a response model."""
    return asdict(record)


def forget_response(report: ForgetReport) -> ForgetResponse:
    return ForgetResponse(
        grain=report.grain,
        messages=report.messages,
        conversations=report.conversations,
        sessions=report.sessions,
        working_entries=report.working_entries,
        segments=report.segments,
        facts=report.facts,
        feedback=report.feedback,
        attachments=report.attachments,
        index_purge_pending=report.index_purge_pending,
    )
