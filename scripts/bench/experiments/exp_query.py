"""Query-side lexical variants on the user-session FTS5 index: phrases, proper-noun boost, PRF."""

import collections
import itertools
import math
import re

import numpy as np
from harness import (
    HEADER,
    STOP_QUESTION,
    TOKEN,
    FtsIndex,
    aggregate,
    load,
    make_segments,
    query_terms,
    show,
    weighted,
)
from mats import get

ds = load()
segs = make_segments(ds, "user_session")
idx = FtsIndex(segs, "porter unicode61")
n = len(ds.sessions)


def run(build):
    mat = np.full((len(ds.questions), n), -np.inf)
    for qi, q in enumerate(ds.questions):
        expr = build(q.question)
        if not expr:
            continue
        rows = idx.db.execute(
            "SELECT rowid, -bm25(t, 1.0, 0.0) FROM t WHERE t MATCH ?", ("{u} : (" + expr + ")",)
        ).fetchall()
        if rows:
            a = np.array(rows)
            mat[qi] = aggregate(n, segs.session_of, a[:, 0].astype(int), a[:, 1])
    return mat


def q(t):
    return '"' + t.replace('"', '""') + '"'


def plain(text):
    return " OR ".join(q(t) for t in query_terms(text, STOP_QUESTION))


def with_phrases(text, rep=1):
    toks = [t for t in TOKEN.findall(text.lower())]
    terms = query_terms(text, STOP_QUESTION)
    phrases = []
    for a, b in itertools.pairwise(toks):
        if a not in STOP_QUESTION and b not in STOP_QUESTION:
            phrases.append(q(a + " " + b))
    return " OR ".join([q(t) for t in terms] + phrases * rep)


def proper_boost(text, rep=2):
    terms = query_terms(text, STOP_QUESTION)
    words = re.findall(r"\w+", text)
    caps = {
        w.lower()
        for i, w in enumerate(words)
        if i > 0 and w[0].isupper() and w.lower() not in STOP_QUESTION
    }
    nums = {w for w in words if w.isdigit()}
    extra = [q(t) for t in terms if t in caps or t in nums] * (rep - 1)
    return " OR ".join([q(t) for t in terms] + extra)


print(HEADER)
L = run(plain)
show(ds, "plain", L)
D = get("D_us")
show(ds, "plain+D", weighted([L, D], [0.7, 0.3]))
for rep in [1, 2]:
    m = run(lambda t, rep=rep: with_phrases(t, rep))
    show(ds, f"phrases x{rep}", m)
    show(ds, f"phrases x{rep} + D", weighted([m, D], [0.7, 0.3]))
for rep in [2, 3]:
    m = run(lambda t, rep=rep: proper_boost(t, rep))
    show(ds, f"proper x{rep}", m)
    show(ds, f"proper x{rep} + D", weighted([m, D], [0.7, 0.3]))

# RM3-ish PRF: expansion terms from top-k sessions' user text
docs_tok = [
    collections.Counter(
        w for w in TOKEN.findall(u.lower()) if w not in STOP_QUESTION and not w.isdigit()
    )
    for u in segs.columns[0]
]
df = collections.Counter()
for c in docs_tok:
    df.update(c.keys())
idf = {w: math.log(n / (1 + d)) for w, d in df.items()}
for topk, nexp, w in [(3, 10, 0.2), (3, 10, 0.35), (5, 15, 0.2), (2, 10, 0.3)]:
    expm = np.full_like(L, -np.inf)
    order = np.argsort(-L, axis=1)
    for qi, qq in enumerate(ds.questions):
        score = collections.Counter()
        for j in order[qi, :topk]:
            if not np.isfinite(L[qi, j]):
                continue
            c = docs_tok[j]
            tot = sum(c.values())
            for t, f in c.items():
                score[t] += f / tot * idf.get(t, 0)
        base = set(query_terms(qq.question, STOP_QUESTION))
        terms = [t for t, _ in score.most_common(nexp + len(base)) if t not in base][:nexp]
        if terms:
            rows = idx.db.execute(
                "SELECT rowid, -bm25(t, 1.0, 0.0) FROM t WHERE t MATCH ?",
                ("{u} : (" + " OR ".join(q(t) for t in terms) + ")",),
            ).fetchall()
            a = np.array(rows)
            expm[qi] = aggregate(n, segs.session_of, a[:, 0].astype(int), a[:, 1])
    show(ds, f"prf top{topk} n{nexp} w{w}", weighted([L, expm], [1 - w, w]))
    show(
        ds, f"prf top{topk} n{nexp} w{w} + D", weighted([L, expm, D], [0.7 * (1 - w), 0.7 * w, 0.3])
    )
