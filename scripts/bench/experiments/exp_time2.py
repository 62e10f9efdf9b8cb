import numpy as np
from harness import HEADER, by_type, load, show, weighted
from mats import get

ds = load()
L, D, Lt, Du = get("L_us"), get("D_us"), get("L_ut"), get("D_utl")
sd = np.array([s.date.timestamp() for s in ds.sessions])
qd = np.array([q.question_date.timestamp() for q in ds.questions])
days = (qd[:, None] - sd[None, :]) / 86400


print(HEADER)
for slack in [0, 1, 7]:
    asof = np.where(days >= -slack, 0, -np.inf)
    for w in [1.0, 0.8, 0.7, 0.6, 0.5]:
        show(ds, f"asof slack{slack} L {w} D", weighted([L, D], [w, 1 - w]) + asof)
asof = np.where(days >= -1, 0, -np.inf)
show(ds, "asof L .5 Lt .2 D .3", weighted([L, Lt, D], [0.5, 0.2, 0.3]) + asof)
for tau in [7, 30, 90]:
    for w in [0.5, 1.0]:
        show(
            ds,
            f"asof + recency tau{tau} w{w}",
            weighted([L, D], [0.7, 0.3]) + asof + w * np.exp(-np.clip(days, 0, None) / tau),
        )
print(by_type(ds, weighted([L, D], [0.7, 0.3]) + asof))
