import collections

import numpy as np
from harness import HEADER, load, show, weighted
from mats import get

ds = load()
L, D, Lt = get("L_us"), get("D_us"), get("L_ut")
# content twins
key = collections.defaultdict(list)
for i, s in enumerate(ds.sessions):
    key[tuple((t.role, t.content) for t in s.turns)].append(i)
twin_of = np.arange(len(ds.sessions))
for v in key.values():
    for i in v:
        twin_of[i] = v[0]
sd = np.array([s.date.timestamp() for s in ds.sessions])
qd = np.array([q.question_date.timestamp() for q in ds.questions])
days = (qd[:, None] - sd[None, :]) / 86400


def collapse(m, prefer=None):
    """Keep one session per content group: the best-scored (ties: prefer array, higher wins)."""
    m = m.copy()
    for qi in range(m.shape[0]):
        for v in key.values():
            if len(v) > 1:
                vv = np.array(v)
                sc = m[qi, vv] + (0 if prefer is None else 1e-6 * prefer[qi, vv])
                keep = vv[np.argmax(sc)]
                for j in vv:
                    if j != keep:
                        m[qi, j] -= 1e3
    return m


print(HEADER)
base = weighted([L, D], [0.7, 0.3])
show(ds, "base", base)
show(ds, "base collapse twins (first id)", collapse(base))
show(
    ds,
    "base collapse twins (closest before qdate)",
    collapse(base, -np.abs(days) - 1e4 * (days < -1)),
)
asof = np.where(days >= -1, 0, -np.inf)
show(ds, "asof", base + asof)
show(ds, "asof collapse", collapse(base + asof, -np.abs(days)))
