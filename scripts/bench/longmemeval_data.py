"""LongMemEval (oracle) loading and session-level scoring for the pooled-corpus protocol.

Why a separate module: the end-to-end benchmark (``longmemeval.py``) and the throwaway
experiments quoted in docs/benchmarks.md (``scripts/bench/experiments/`` at commit ff8ca57,
since removed) must load, deduplicate and score the data identically, otherwise their
numbers could not be compared.

Protocol: every unique haystack session of the oracle file goes into ONE corpus (one user);
the non-abstention questions (id not ending in ``_abs``) are asked against it; a question's
relevant set is its ``answer_session_ids``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

ORACLE_SHA256 = "821a2034d219ab45846873dd14c14f12cfe7776e73527a483f9dac095d38620c"
KS = (5, 10)


@dataclass(frozen=True)
class Turn:
    role: str
    content: str


@dataclass(frozen=True)
class Session:
    session_id: str
    date: datetime
    turns: tuple[Turn, ...]


@dataclass(frozen=True)
class Question:
    index: int
    question_id: str
    question_type: str
    question: str
    question_date: datetime
    answer_session_ids: frozenset[str]


@dataclass(frozen=True)
class Dataset:
    sessions: tuple[Session, ...]
    questions: tuple[Question, ...]


def parse_date(text: str) -> datetime:
    """Dates look like ``2023/04/10 (Mon) 17:50``; the weekday is redundant."""
    day, _, rest = text.partition(" (")
    clock = rest.partition(") ")[2] or "00:00"
    return datetime.strptime(f"{day} {clock}", "%Y/%m/%d %H:%M")


def locate_oracle(path: str | os.PathLike[str] | None = None) -> Path:
    """Find the oracle file: explicit path, ``$LONGMEMEVAL_ORACLE``, or the project fetcher."""
    if path is not None:
        return Path(path)
    env = os.environ.get("LONGMEMEVAL_ORACLE")
    if env:
        return Path(env)
    import sys

    scripts = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(scripts))
    try:
        from fetch_longmemeval import ensure_longmemeval_oracle  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(scripts))
    result: Path = ensure_longmemeval_oracle()
    return result


def load_dataset(path: str | os.PathLike[str] | None = None) -> Dataset:
    """Load the oracle file into the pooled corpus and the non-abstention questions.

    A session that appears under several questions is kept once (its content is identical);
    when its recorded dates differ, the earliest one is used.
    """
    raw = json.loads(locate_oracle(path).read_text(encoding="utf-8"))
    sessions: dict[str, Session] = {}
    questions: list[Question] = []
    for item in raw:
        for sid, turns, date in zip(
            item["haystack_session_ids"],
            item["haystack_sessions"],
            item["haystack_dates"],
            strict=True,
        ):
            when = parse_date(date)
            if sid in sessions and sessions[sid].date <= when:
                continue
            sessions[sid] = Session(sid, when, tuple(Turn(t["role"], t["content"]) for t in turns))
        if item["question_id"].endswith("_abs"):
            continue
        questions.append(
            Question(
                index=len(questions),
                question_id=item["question_id"],
                question_type=item["question_type"],
                question=item["question"],
                question_date=parse_date(item["question_date"]),
                answer_session_ids=frozenset(item["answer_session_ids"]),
            )
        )
    ordered = tuple(sessions[sid] for sid in sorted(sessions))
    return Dataset(ordered, tuple(questions))


def recall_all(ranked: Sequence[str], gold: frozenset[str], k: int) -> float:
    """1 when every answer session is in the top k (the paper's Recall@k)."""
    return float(gold <= set(ranked[:k]))


def recall_any(ranked: Sequence[str], gold: frozenset[str], k: int) -> float:
    return float(bool(gold & set(ranked[:k])))


def ndcg(ranked: Sequence[str], gold: frozenset[str], k: int) -> float:
    """Binary-relevance nDCG@k."""
    dcg = sum(1.0 / math.log2(i + 2) for i, sid in enumerate(ranked[:k]) if sid in gold)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(k, len(gold))))
    return dcg / ideal if ideal else 0.0


METRICS = {"recall_all": recall_all, "recall_any": recall_any, "ndcg": ndcg}


def score_rankings(
    questions: Sequence[Question], rankings: Sequence[Sequence[str]]
) -> dict[str, float]:
    """Mean of every metric at every k over the given questions."""
    out: dict[str, float] = {}
    n = len(questions)
    for name, fn in METRICS.items():
        for k in KS:
            total = sum(
                fn(r, q.answer_session_ids, k) for q, r in zip(questions, rankings, strict=True)
            )
            out[f"{name}@{k}"] = total / n if n else 0.0
    return out


def split(questions: Sequence[Question], part: str) -> list[int]:
    """Positions for ``all``, ``tune`` (odd question index) or ``heldout`` (even index)."""
    if part == "all":
        return list(range(len(questions)))
    parity = 1 if part == "tune" else 0
    return [i for i, q in enumerate(questions) if q.index % 2 == parity]
