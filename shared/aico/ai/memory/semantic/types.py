"""Value types of the semantic store: what goes in, what comes out, what reports say."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, get_args

from aico.ai.memory.semantic.timeparse import TimeWindow
from aico.errors import InvalidInput

__all__ = [
    "IndexReport",
    "Message",
    "ModelInfo",
    "OutboxResult",
    "ReembedProgress",
    "SearchHit",
    "SearchMode",
    "Segment",
    "SegmentSource",
]

SearchMode = Literal["hybrid", "bm25", "dense"]
#: Where a segment came from: a conversation of the log, or a file of the file index.
SegmentSource = Literal["conversation", "file"]
_SOURCES = get_args(SegmentSource)

_ROLE_RE = re.compile(r"[a-z][a-z0-9_]{0,31}")
_MAX_ID = 128


def check_id(value: object, what: str, *, optional: bool = False) -> str | None:
    """Validate an id without echoing it (ids can be user-chosen and are not logged)."""
    if value is None and optional:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= _MAX_ID:
        raise InvalidInput(f"{what} must be a string of 1-{_MAX_ID} characters")
    return value


def check_source(value: object) -> str:
    if value not in _SOURCES:
        raise InvalidInput(f"source must be one of {_SOURCES}")
    return str(value)


def check_role(value: object) -> str:
    if not isinstance(value, str) or not _ROLE_RE.fullmatch(value):
        raise InvalidInput("role must be 1-32 characters of a-z 0-9 _ starting with a letter")
    return value


def check_text(value: object, what: str, *, required: bool = True) -> None:
    """Text must be a string that UTF-8 can encode (no lone surrogates); never echoed."""
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a string")
    if required and not value.strip():
        raise InvalidInput(f"{what} must not be empty")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"{what} is not valid Unicode text") from None


def check_time(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInput(f"{what} must be a finite number of unix seconds")
    return float(value)


@dataclass(frozen=True)
class Message:
    """One conversation message, the input of segmentation."""

    role: str
    text: str
    timestamp: float
    message_id: str | None = None

    def __post_init__(self) -> None:
        check_role(self.role)
        check_text(self.text, "message text", required=False)
        object.__setattr__(self, "timestamp", check_time(self.timestamp, "message timestamp"))
        check_id(self.message_id, "message_id", optional=True)


@dataclass(frozen=True)
class Segment:
    """A unit of long-term memory to store and index.

    ``text`` is what search returns. ``fts_text`` (what BM25 indexes) and ``embed_text`` (what
    is embedded) default to ``text``; segmentation can narrow them, e.g. BM25 over the user's
    own words only, which measured best. ``segment_id`` is generated when omitted.
    ``message_ids`` are the log messages the segment was made from (what a forget of one
    message follows to find the segments that repeat it). ``source`` says where it came from
    ("conversation", or "file" for the file index, whose ``files.id`` is ``source_ref``).
    """

    user_id: str
    text: str
    start_ts: float
    end_ts: float | None = None
    conversation_id: str | None = None
    session_id: str | None = None
    roles: tuple[str, ...] = ()
    fts_text: str | None = None
    embed_text: str | None = None
    segment_id: str | None = None
    message_ids: tuple[str, ...] = ()
    source: SegmentSource = "conversation"
    source_ref: str | None = None

    def __post_init__(self) -> None:
        check_id(self.user_id, "user_id")
        check_source(self.source)
        check_id(self.source_ref, "source_ref", optional=True)
        if isinstance(self.message_ids, str):
            raise InvalidInput("message_ids must be a sequence of ids, not one string")
        object.__setattr__(
            self, "message_ids", tuple(check_id(m, "message_id") for m in self.message_ids)
        )
        check_id(self.conversation_id, "conversation_id", optional=True)
        check_id(self.session_id, "session_id", optional=True)
        check_id(self.segment_id, "segment_id", optional=True)
        check_text(self.text, "segment text")
        for name in ("fts_text", "embed_text"):
            value = getattr(self, name)
            if value is not None:
                check_text(value, name, required=False)
        start = check_time(self.start_ts, "start_ts")
        end = start if self.end_ts is None else check_time(self.end_ts, "end_ts")
        if end < start:
            raise InvalidInput("end_ts must not be before start_ts")
        object.__setattr__(self, "start_ts", start)
        object.__setattr__(self, "end_ts", end)
        if isinstance(self.roles, str):
            raise InvalidInput("roles must be a sequence of role names, not one string")
        roles = tuple(sorted({check_role(r) for r in self.roles}))
        object.__setattr__(self, "roles", roles)


@dataclass(frozen=True)
class SearchHit:
    """One search result. ``score`` is the fused score in ``[0, 1]`` (see ``fusion``).

    Component ranks are 1-based within each retriever's over-fetched candidates and ``None``
    when that retriever did not return the segment. The component scores are what fusion
    used, for every hit: ``bm25_score`` is ``-bm25()`` (higher is better, unbounded; 0.0 for
    a segment BM25 did not return), ``dense_score`` the cosine similarity in ``[-1, 1]``
    (filled from the stored vector for a segment only BM25 returned). Either is ``None``
    only when that retriever did not run or found nothing (e.g. a query of stopwords).
    ``bm25_full_rank`` / ``bm25_full_score`` are the same for the BM25 over every party's
    words (``semantic_fts_full``; it holds only segments whose BM25 text leaves words out).

    ``time_window`` is the window the query's time expression resolved to (the same for
    every hit of a search; ``None`` without one, or without ``now``), and ``time_boost`` in
    ``[0, 1]`` how well this segment's time range fits it (1 inside, decaying outside).
    ``source`` / ``source_ref``: as on ``Segment`` (a file segment's ``source_ref`` is its
    ``files.id``; the file index resolves it to a path).
    """

    segment_id: str
    text: str
    score: float
    bm25_rank: int | None
    bm25_score: float | None
    dense_rank: int | None
    dense_score: float | None
    conversation_id: str | None
    session_id: str | None
    roles: tuple[str, ...]
    start_ts: float
    end_ts: float
    bm25_full_rank: int | None = None
    bm25_full_score: float | None = None
    time_boost: float = 0.0
    time_window: TimeWindow | None = None
    source: SegmentSource = "conversation"
    source_ref: str | None = None

    def __repr__(self) -> str:
        # Never print user content by accident (logs, tracebacks).
        return (
            f"SearchHit(segment_id={self.segment_id!r}, score={self.score:.4f}, "
            f"bm25_rank={self.bm25_rank}, bm25_full_rank={self.bm25_full_rank}, "
            f"dense_rank={self.dense_rank}, time_boost={self.time_boost:.2f})"
        )


@dataclass(frozen=True)
class ModelInfo:
    """The embedding model a store's vectors belong to."""

    name: str
    dimension: int
    fingerprint: str


@dataclass(frozen=True)
class OutboxResult:
    """What one ``process_outbox`` call did.

    ``indexed`` and ``deleted`` reached Chroma. While the index does not serve (damaged,
    rebuilding, unavailable) nothing does: the segments still get their vectors in libSQL
    (``embedded``, so the exact scan finds them) and every row stays queued
    (``remaining``). ``failed`` counts the rows of a batch Chroma failed on, left queued.
    """

    indexed: int = 0
    deleted: int = 0
    failed: int = 0
    remaining: int = 0
    embedded: int = 0


IndexState = Literal["ok", "damaged", "rebuilding", "unavailable"]


@dataclass(frozen=True)
class IndexHealth:
    """The condition of a store's Chroma index, for health checks and status verbs.

    ``state``: ``ok`` (nothing known wrong; ``serving`` is False until the index loaded),
    ``damaged`` (embedded files damaged or missing: rebuilt in the background or by
    ``aico semantic rebuild``), ``rebuilding``, or ``unavailable`` (a Chroma server that
    fails: retried, never wiped). In every state but ``ok`` with ``serving``, dense search
    is the exact scan over the libSQL vectors. ``reason`` is the class name of the failure
    and ``detail`` a sentence naming files and counts only, never content.
    ``pending_outbox`` counts the index work still queued.
    """

    state: IndexState
    reason: str | None
    detail: str | None
    pending_outbox: int
    serving: bool = False

    @property
    def ok(self) -> bool:
        return self.state == "ok"


@dataclass(frozen=True)
class ReembedProgress:
    """Progress of ``reembed``: ``done`` of ``total`` segments carry the target fingerprint."""

    done: int
    total: int


@dataclass(frozen=True)
class IndexReport:
    """How libSQL (the truth) and Chroma (the derived index) compare.

    ``missing_in_chroma`` lists segment ids whose current vector is not in Chroma;
    ``extra_in_chroma`` lists opaque Chroma ids with no live segment (e.g. after a crash
    before a delete reached Chroma). ``unindexed`` lists segments that have no vector and no
    queued outbox work either, so nothing would ever index them. Lists are capped at
    ``sample_limit`` entries; the counts are exact.

    ``chroma_checked`` is False when Chroma was not read at all: a read-only store never
    opens embedded Chroma (it writes to its files even to read), and a damaged, rebuilding
    or unavailable index is not read either (``index_state``, ``index_reason``: see
    ``IndexHealth``). The Chroma counts and lists are then zero and empty, and ``ok`` is
    False: nothing was verified.
    """

    segments: int
    vectors: int
    chroma_count: int
    missing_count: int
    extra_count: int
    pending_outbox: int
    stale_vectors: int
    missing_in_chroma: Sequence[str] = field(default=())
    extra_in_chroma: Sequence[str] = field(default=())
    unindexed_count: int = 0
    unindexed: Sequence[str] = field(default=())
    chroma_checked: bool = True
    index_state: IndexState = "ok"
    index_reason: str | None = None

    @property
    def ok(self) -> bool:
        """True when Chroma was checked, every current vector is in it, nothing else is, and
        every segment has a vector or queued work that will make one."""
        return (
            self.chroma_checked
            and self.index_state == "ok"
            and self.missing_count == 0
            and self.extra_count == 0
            and self.unindexed_count == 0
        )
