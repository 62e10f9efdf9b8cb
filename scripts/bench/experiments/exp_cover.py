"""Coverage-aware re-ranking (xQuAD over query terms) of the fused top-N."""

import numpy as np
from harness import (
    HEADER,
    STOP_QUESTION,
    FtsIndex,
    load,
    make_segments,
    query_terms,
    show,
    weighted,
)
from mats import CACHE, get

ds = load()
n = len(ds.sessions)
segs = make_segments(ds, "user_session")
idx = FtsIndex(segs, "porter unicode61")
p = CACHE / "termmatch.npz"
# per question: terms x sessions bm25 of each single term
if p.exists():
    z = np.load(p, allow_pickle=True)
    TM, DF = list(z["tm"]), list(z["df"])
else:
    TM, DF = [], []
    for q in ds.questions:
        terms = query_terms(q.question, STOP_QUESTION)
        mat = np.zeros((len(terms), n))
        df = np.zeros(len(terms))
        for ti, t in enumerate(terms):
            ids, sc = idx.search([t])
            mat[ti, segs.session_of[ids]] = sc
            df[ti] = len(ids)
        TM.append(mat)
        DF.append(df)
    np.savez(p, tm=np.array(TM, dtype=object), df=np.array(DF, dtype=object))

L, D = get("L_us"), get("D_us")


def xquad(base, N=30, lam=0.5, binary=False, wmode="idf", depth=10):
    out = np.full_like(base, -np.inf)
    for qi in range(base.shape[0]):
        order = np.argsort(-base[qi])[:N]
        rel = base[qi, order]
        rel = (rel - rel.min()) / max(rel.max() - rel.min(), 1e-9)
        tm = TM[qi][:, order]
        if tm.shape[0] == 0:
            out[qi, order] = -np.arange(N)
            continue
        if binary:
            m = (tm > 0).astype(float)
        else:
            m = tm / np.maximum(tm.max(axis=1, keepdims=True), 1e-9)
        if wmode == "idf":
            w = np.log(n / (1 + DF[qi]))
            w = np.maximum(w, 0)
        else:
            w = np.ones(len(DF[qi]))
        w = w / max(w.sum(), 1e-9)
        uncovered = np.ones(len(w))
        chosen = []
        avail = list(range(N))
        for _ in range(min(depth, N)):
            gain = (1 - lam) * rel[avail] + lam * ((w * uncovered)[:, None] * m[:, avail]).sum(
                axis=0
            )
            j = avail[int(np.argmax(gain))]
            chosen.append(j)
            avail.remove(j)
            uncovered *= 1 - m[:, j]
        for r, j in enumerate(chosen):
            out[qi, order[j]] = 1000 - r
        for j in avail:
            out[qi, order[j]] = base[qi, order[j]] - 1e6  # below
    return out


print(HEADER)
base = weighted([L, D], [0.7, 0.3])
show(ds, "base", base)
for N in [20, 30]:
    for lam in [0.2, 0.35, 0.5, 0.7]:
        for binary in [False, True]:
            show(ds, f"xquad N{N} lam{lam} bin{int(binary)}", xquad(base, N, lam, binary))
