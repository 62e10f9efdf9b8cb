"""Dense query rewriting: does a declarative or keyword-only query embed closer to the evidence?"""

import re

import numpy as np
from embed_cache import VecCache
from harness import (
    HEADER,
    STOP_QUESTION,
    aggregate,
    load,
    make_segments,
    query_terms,
    show,
    weighted,
)
from mats import get

ds = load()
vc = VecCache()
segs = make_segments(ds, "user_session")
sv = vc.get(segs.columns[0])
ut = make_segments(ds, "user_turn")
tv = vc.get(ut.columns[0])
n = len(ds.sessions)
WH = re.compile(
    r"^(can you remind me|do you remember|i mentioned|i'm trying to remember|remind me)?\W*"
    r"(how (many|much|long|often|old)( \w+)?|what( \w+)?|which( \w+)?"
    r"|who|whom|where|when|why|how)\s+"
    r"(did|do|does|was|were|is|are|have|has|had|am|will|would|should|can)?\s*",
    re.I,
)


def declarative(q: str) -> str:
    s = WH.sub("", q.strip()).rstrip("?").strip()
    return s if s else q


def session_mat(qv, vecs, seg):
    sims = qv @ vecs.T
    idx = np.arange(len(seg.session_of))
    return np.stack([aggregate(n, seg.session_of, idx, sims[i]) for i in range(len(qv))])


L = get("L_us")
print(HEADER)
for name, fn in [
    ("question", lambda q: q),
    ("declarative", declarative),
    ("keywords", lambda q: " ".join(query_terms(q, STOP_QUESTION))),
]:
    qv = vc.get([fn(q.question) for q in ds.questions])
    for unit, vecs, seg in [("session", sv, segs), ("turn", tv, ut)]:
        m = session_mat(qv, vecs, seg)
        show(ds, f"D {name} {unit}", m)
        show(ds, f"  L .7 + D {name} {unit}", weighted([L, m], [0.7, 0.3]))
print([declarative(q.question) for q in ds.questions[:8]])
