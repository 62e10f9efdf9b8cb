"""Throwaway experiment harness: session-score matrices for lexical and dense retrieval.

Every method produces a (questions x sessions) float matrix where higher is better and
``-inf`` means "not retrieved"; fusion and scoring then run on whole matrices in numpy, so a
variant costs seconds. Not product code: the product path is ``longmemeval.py`` through
``SemanticMemoryStore``.
"""

from __future__ import annotations

import os
import re
import sqlite3
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from longmemeval_data import Dataset, load_dataset, score_rankings, split

ORACLE = os.environ.get("LONGMEMEVAL_ORACLE", "/tmp/lme/longmemeval_oracle.json")

# Function words plus question scaffolding typical of memory queries.
STOP_BASIC = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "me",
        "more",
        "most",
        "my",
        "myself",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "ours",
        "ourselves",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "yourself",
        "yourselves",
        "s",
        "t",
        "don",
    ]
)
STOP_QUESTION = STOP_BASIC | frozenset(
    [
        "many",
        "much",
        "remind",
        "tell",
        "previous",
        "conversation",
        "mentioned",
        "mention",
        "recall",
        "remember",
        "chat",
        "talked",
        "discussed",
        "earlier",
        "last",
        "ago",
        "know",
        "get",
        "got",
        "also",
        "ve",
        "ll",
        "d",
        "m",
        "re",
    ]
)

TOKEN = re.compile(r"\w+", re.UNICODE)


def query_terms(text: str, stop: frozenset[str]) -> list[str]:
    seen: list[str] = []
    for tok in TOKEN.findall(text.lower()):
        if tok not in stop and tok not in seen:
            seen.append(tok)
    return seen


def fts_or_query(terms: Sequence[str]) -> str:
    return " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)


@dataclass
class Segments:
    """Retrieval units: text columns per unit and the session each belongs to."""

    name: str
    session_of: np.ndarray  # int index into ds.sessions
    columns: list[list[str]]  # one list per column
    column_names: list[str]


def make_segments(ds: Dataset, unit: str, window: int = 3) -> Segments:
    """unit: user_turn | turn | exchange | user_session | session | window | exchange_split."""
    sess_of: list[int] = []
    cols: list[list[str]] = [[], []]
    for si, s in enumerate(ds.sessions):
        turns = s.turns
        if unit == "user_turn":
            for t in turns:
                if t.role == "user":
                    sess_of.append(si)
                    cols[0].append(t.content)
                    cols[1].append("")
        elif unit == "turn":
            for t in turns:
                sess_of.append(si)
                cols[0].append(t.content if t.role == "user" else "")
                cols[1].append(t.content if t.role != "user" else "")
        elif unit == "exchange":
            i = 0
            while i < len(turns):
                u = turns[i].content if turns[i].role == "user" else ""
                a = ""
                if turns[i].role == "user" and i + 1 < len(turns) and turns[i + 1].role != "user":
                    a = turns[i + 1].content
                    i += 2
                else:
                    if turns[i].role != "user":
                        a = turns[i].content
                    i += 1
                sess_of.append(si)
                cols[0].append(u)
                cols[1].append(a)
        elif unit == "user_session":
            sess_of.append(si)
            cols[0].append("\n".join(t.content for t in turns if t.role == "user"))
            cols[1].append("")
        elif unit == "session":
            sess_of.append(si)
            cols[0].append("\n".join(t.content for t in turns if t.role == "user"))
            cols[1].append("\n".join(t.content for t in turns if t.role != "user"))
        elif unit == "user_window":
            us = [t.content for t in turns if t.role == "user"]
            for i in range(max(1, len(us) - window + 1)):
                sess_of.append(si)
                cols[0].append("\n".join(us[i : i + window]))
                cols[1].append("")
        else:
            raise ValueError(unit)
    return Segments(unit, np.array(sess_of), cols, ["user", "assistant"])


class FtsIndex:
    def __init__(self, segs: Segments, tokenizer: str = "porter unicode61") -> None:
        self.segs = segs
        self.db = sqlite3.connect(":memory:")
        self.db.execute(f"CREATE VIRTUAL TABLE t USING fts5(u, a, tokenize='{tokenizer}')")
        self.db.executemany(
            "INSERT INTO t(rowid, u, a) VALUES (?,?,?)",
            [(i, u, a) for i, (u, a) in enumerate(zip(*segs.columns, strict=True))],
        )
        self.db.commit()

    def search(
        self, terms: Sequence[str], wu: float = 1.0, wa: float = 0.0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return (segment ids, positive bm25 scores) of every matching segment."""
        if not terms:
            return np.zeros(0, int), np.zeros(0)
        col = "{u}" if wa == 0 else "{u a}"
        q = f"{col} : ({fts_or_query(terms)})"
        rows = self.db.execute(
            f"SELECT rowid, -bm25(t, {wu}, {wa}) FROM t WHERE t MATCH ?", (q,)
        ).fetchall()
        if not rows:
            return np.zeros(0, int), np.zeros(0)
        a = np.array(rows)
        return a[:, 0].astype(int), a[:, 1]


def aggregate(
    n_sessions: int,
    session_of: np.ndarray,
    seg_ids: np.ndarray,
    scores: np.ndarray,
    how: str = "max",
    m: int = 2,
    temp: float = 1.0,
) -> np.ndarray:
    """Segment scores -> session scores (-inf where nothing matched)."""
    out = np.full(n_sessions, -np.inf)
    if len(seg_ids) == 0:
        return out
    sess = session_of[seg_ids]
    if how == "max":
        np.maximum.at(out, sess, scores)
    elif how == "sum":
        out[:] = 0
        np.add.at(out, sess, scores)
        out[np.bincount(sess, minlength=n_sessions) == 0] = -np.inf
    elif how == "topm":
        order = np.lexsort((-scores, sess))
        s_sorted, v_sorted = sess[order], scores[order]
        rank = np.zeros(len(order), int)
        for i in range(1, len(order)):
            rank[i] = rank[i - 1] + 1 if s_sorted[i] == s_sorted[i - 1] else 0
        keep = rank < m
        out[:] = 0
        w = np.where(rank == 0, 1.0, 0.5)  # second-best counts half
        np.add.at(out, s_sorted[keep], (v_sorted * w)[keep])
        out[np.bincount(sess, minlength=n_sessions) == 0] = -np.inf
    elif how == "lse":
        mx = np.full(n_sessions, -np.inf)
        np.maximum.at(mx, sess, scores)
        ex = np.exp((scores - mx[sess]) / temp)
        acc = np.zeros(n_sessions)
        np.add.at(acc, sess, ex)
        hit = acc > 0
        out[hit] = mx[hit] + temp * np.log(acc[hit])
    else:
        raise ValueError(how)
    return out


def lexical_matrix(
    ds: Dataset,
    segs: Segments,
    tokenizer: str,
    stop: frozenset[str],
    wu: float = 1.0,
    wa: float = 0.0,
    how: str = "max",
    **agg: float,
) -> np.ndarray:
    idx = FtsIndex(segs, tokenizer)
    n = len(ds.sessions)
    mat = np.full((len(ds.questions), n), -np.inf)
    for qi, q in enumerate(ds.questions):
        ids, sc = idx.search(query_terms(q.question, stop), wu, wa)
        mat[qi] = aggregate(n, segs.session_of, ids, sc, how, **agg)
    return mat


def dense_matrix(
    ds: Dataset, segs: Segments, how: str = "max", col: int = 0, **agg: float
) -> np.ndarray:
    from embed_cache import VecCache

    vc = VecCache()
    qv = vc.get([q.question for q in ds.questions])
    texts = segs.columns[col]
    keep = np.array([bool(t) for t in texts])
    sv = vc.get([t for t in texts if t])
    sims = qv @ sv.T
    sess = segs.session_of[keep]
    n = len(ds.sessions)
    mat = np.full((len(ds.questions), n), -np.inf)
    ids = np.arange(len(sess))
    sess_local = sess
    for qi in range(len(ds.questions)):
        mat[qi] = aggregate(n, sess_local, ids, sims[qi], how, **agg)
    return mat


def rankings(ds: Dataset, mat: np.ndarray, depth: int = 10) -> list[list[str]]:
    ids = [s.session_id for s in ds.sessions]
    order = np.argsort(-mat, axis=1, kind="stable")[:, :depth]
    return [[ids[j] for j in row if np.isfinite(mat[i, j])] for i, row in enumerate(order)]


def evaluate(ds: Dataset, mat: np.ndarray, part: str = "all") -> dict[str, float]:
    pos = split(ds.questions, part)
    ranks = rankings(ds, mat[pos])
    return score_rankings([ds.questions[i] for i in pos], ranks)


def by_type(ds: Dataset, mat: np.ndarray, metric: str = "recall_all@5") -> dict[str, float]:
    ranks = rankings(ds, mat)
    out: dict[str, float] = {}
    for t in sorted({q.question_type for q in ds.questions}):
        pos = [i for i, q in enumerate(ds.questions) if q.question_type == t]
        out[t] = score_rankings([ds.questions[i] for i in pos], [ranks[i] for i in pos])[metric]
    return out


# ---------- fusion ----------


def _finite_fill(mat: np.ndarray) -> np.ndarray:
    m = mat.copy()
    fin = np.isfinite(m)
    lo = np.where(fin, m, np.inf).min(axis=1, keepdims=True)
    lo = np.where(np.isfinite(lo), lo, 0)
    return np.where(fin, m, lo)


def zscore(mat: np.ndarray, depth: int | None = None) -> np.ndarray:
    """Per-query z-score over the top ``depth`` candidates (or all finite ones)."""
    m = _finite_fill(mat)
    if depth:
        top = -np.sort(-m, axis=1)[:, :depth]
        mu, sd = top.mean(axis=1, keepdims=True), top.std(axis=1, keepdims=True)
    else:
        mu, sd = m.mean(axis=1, keepdims=True), m.std(axis=1, keepdims=True)
    return (m - mu) / np.maximum(sd, 1e-9)


def minmax(mat: np.ndarray, depth: int | None = None) -> np.ndarray:
    m = _finite_fill(mat)
    hi = m.max(axis=1, keepdims=True)
    lo = -np.sort(-m, axis=1)[:, depth - 1 : depth] if depth else m.min(axis=1, keepdims=True)
    return np.clip((m - lo) / np.maximum(hi - lo, 1e-9), 0, None)


def ranks_of(mat: np.ndarray) -> np.ndarray:
    order = np.argsort(-_finite_fill(mat), axis=1, kind="stable")
    r = np.empty_like(order)
    rows = np.arange(mat.shape[0])[:, None]
    r[rows, order] = np.arange(mat.shape[1])[None, :]
    return r + 1


def rrf(
    mats: Sequence[np.ndarray], weights: Sequence[float], k: float = 60, depth: int = 1000
) -> np.ndarray:
    out = np.zeros_like(mats[0])
    for m, w in zip(mats, weights, strict=True):
        r = ranks_of(m)
        out += np.where(r <= depth, w / (k + r), 0)
    return out


def weighted(
    mats: Sequence[np.ndarray],
    weights: Sequence[float],
    norm: Callable[[np.ndarray], np.ndarray] = zscore,
) -> np.ndarray:
    out = np.zeros_like(mats[0])
    for m, w in zip(mats, weights, strict=True):
        out += w * norm(m)
    return out


def load() -> Dataset:
    return load_dataset(ORACLE)


def fmt(d: dict[str, float]) -> str:
    keys = ["recall_all@5", "recall_all@10", "recall_any@5", "recall_any@10", "ndcg@5", "ndcg@10"]
    return " ".join(f"{d[k]:.3f}" for k in keys)


HEADER = "rall@5 rall@10 rany@5 rany@10 ndcg@5 ndcg@10"


def show(ds: Dataset, name: str, m: np.ndarray) -> None:
    """One table row: full-set metrics, then recall_all@5 on the tune and held-out halves."""
    tune = evaluate(ds, m, "tune")["recall_all@5"]
    held = evaluate(ds, m, "heldout")["recall_all@5"]
    print(f"{name:45s}", fmt(evaluate(ds, m)), f"tune={tune:.3f} held={held:.3f}", flush=True)
