"""Learning to rank on the tune half, scored on the held-out half (is there signal left?).

Features per (question, candidate session) over the fused top-50: z-scores of every lexical,
dense and SPLADE signal, their ranks, and query-term coverage. Logistic regression (pointwise)
and a small gradient-boosted tree model (sklearn) are tried.
"""

import numpy as np
from harness import HEADER, evaluate, fmt, load, ranks_of, split, weighted, zscore
from mats import CACHE, get
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

ds = load()
names = ["L_us", "L_ut", "L_uw", "L_as", "L_at", "D_us", "D_ut", "D_utl"]
M = {n: get(n) for n in names}
M["S_us"] = np.load(CACHE / "S_user_session_max.npy")
M["S_ut"] = np.load(CACHE / "S_user_turn_lse.npy")
tm = np.load(CACHE / "termmatch.npz", allow_pickle=True)
TM, DF = list(tm["tm"]), list(tm["df"])
n_s = len(ds.sessions)
Z = {k: zscore(v) for k, v in M.items()}
R = {k: ranks_of(v) for k, v in M.items()}
base = weighted([M["L_us"], M["D_us"]], [0.8, 0.2])
order = np.argsort(-base, axis=1)[:, :50]


def coverage(qi):
    t = TM[qi]
    if t.shape[0] == 0:
        return np.zeros(n_s), np.zeros(n_s)
    w = np.maximum(np.log(n_s / (1 + DF[qi])), 0)
    w = w / max(w.sum(), 1e-9)
    present = (t > 0).astype(float)
    return (w[:, None] * present).sum(0), present.mean(0)


X, y, qid = [], [], []
for qi, q in enumerate(ds.questions):
    cov_w, cov = coverage(qi)
    gold = {i for i, s in enumerate(ds.sessions) if s.session_id in q.answer_session_ids}
    for j in order[qi]:
        f = [Z[k][qi, j] for k in Z] + [np.log(R[k][qi, j]) for k in R] + [cov_w[j], cov[j]]
        X.append(f)
        y.append(int(j in gold))
        qid.append(qi)
X, y, qid = np.array(X), np.array(y), np.array(qid)
X = np.nan_to_num(X, neginf=-10, posinf=10)
tune = set(split(ds.questions, "tune"))
tr = np.array([q in tune for q in qid])


def to_mat(scores):
    m = np.full_like(base, -np.inf)
    for s, qi, j in zip(scores, qid, order.reshape(-1), strict=True):
        m[qi, j] = s
    return m


print(HEADER)
print("base     ", fmt(evaluate(ds, base, "heldout")), "(held-out)")
for name, model in [
    ("logreg", LogisticRegression(C=1.0, max_iter=2000)),
    ("gbt", HistGradientBoostingClassifier(max_iter=150, learning_rate=0.05, max_depth=3)),
]:
    model.fit(X[tr], y[tr])
    m = to_mat(model.predict_proba(X)[:, 1])
    print(f"{name:9s}", fmt(evaluate(ds, m, "heldout")), "(held-out)", flush=True)
# and the reverse direction, to average out the split
held = ~tr
for name, model in [("logreg", LogisticRegression(C=1.0, max_iter=2000))]:
    model.fit(X[held], y[held])
    m = to_mat(model.predict_proba(X)[:, 1])
    print(f"{name} rev", fmt(evaluate(ds, m, "tune")), "(trained on held-out, scored on tune)")
    print("base     ", fmt(evaluate(ds, base, "tune")), "(tune)")
