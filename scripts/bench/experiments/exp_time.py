import numpy as np
from harness import HEADER, by_type, load, show, weighted
from mats import get

ds = load()
L, D = get("L_us"), get("D_us")
sd = np.array([s.date.timestamp() for s in ds.sessions])
qd = np.array([q.question_date.timestamp() for q in ds.questions])
days = (qd[:, None] - sd[None, :]) / 86400  # >0: session before question


print(HEADER)
base = weighted([L, D], [0.7, 0.3])
show(ds, "z L_us .7 + D_us .3", base)
# oracle per-question best-of
asof = np.where(days >= -1, 0, -np.inf)
show(ds, "as-of filter (session <= qdate+1d)", base + asof)
for tau in [3, 10, 30, 100]:
    for w in [0.5, 1.0, 2.0]:
        prior = w * np.exp(-np.abs(days) / tau)
        show(ds, f"recency |dt| tau={tau} w={w}", base + prior)
print(by_type(ds, base + asof))
