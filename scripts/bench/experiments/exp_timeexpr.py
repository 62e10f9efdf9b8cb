import numpy as np
from harness import HEADER, by_type, load, show, weighted
from mats import get
from timeexpr import window

ds = load()
L, D = get("L_us"), get("D_us")
sd = np.array([s.date.timestamp() for s in ds.sessions])
base = weighted([L, D], [0.8, 0.2])
W = np.zeros_like(base)
hit = 0
for qi, q in enumerate(ds.questions):
    w = window(q.question, q.question_date)
    if w:
        hit += 1
        W[qi] = (sd >= w[0].timestamp()) & (sd <= w[1].timestamp())
print("questions with a time expression", hit)
print(HEADER)
show(ds, "base L.8 D.2", base)
for w in [0.25, 0.5, 1.0, 2.0]:
    show(ds, f"time-expression window boost {w}", base + w * W)
print(by_type(ds, base))
print(by_type(ds, base + 1.0 * W))
