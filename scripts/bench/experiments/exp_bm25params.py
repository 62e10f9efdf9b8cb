"""Sensitivity of BM25 to k1 and b (FTS5 fixes k1=1.2, b=0.75): own numpy BM25, no stemming."""

import collections
import math

import numpy as np
from harness import HEADER, STOP_QUESTION, TOKEN, load, make_segments, query_terms, show

ds = load()
segs = make_segments(ds, "user_session")
docs = [collections.Counter(TOKEN.findall(t.lower())) for t in segs.columns[0]]
lens = np.array([sum(c.values()) for c in docs], float)
N = len(docs)
df = collections.Counter()
for c in docs:
    df.update(c.keys())
print(HEADER)
for k1 in [0.6, 1.2, 2.0]:
    for b in [0.3, 0.75, 1.0]:
        mat = np.full((len(ds.questions), N), -np.inf)
        for qi, q in enumerate(ds.questions):
            s = np.zeros(N)
            hit = np.zeros(N, bool)
            for t in query_terms(q.question, STOP_QUESTION):
                if t not in df:
                    continue
                idf = math.log((N - df[t] + 0.5) / (df[t] + 0.5) + 1)
                tf = np.array([c.get(t, 0) for c in docs], float)
                s += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * lens / lens.mean()))
                hit |= tf > 0
            mat[qi] = np.where(hit, s, -np.inf)
        show(ds, f"own bm25 k1={k1} b={b}", mat)
