import numpy as np
from harness import HEADER, evaluate, fmt, load, minmax, rrf, weighted, zscore
from mats import get

ds = load()
M = {n: get(n) for n in ["L_us", "L_ut", "L_as", "L_at", "L_uw", "D_us", "D_ut", "D_utl"]}
print(HEADER)


def show(name, m):
    print(
        f"{name:55s}",
        fmt(evaluate(ds, m)),
        f"tune={evaluate(ds, m, 'tune')['recall_all@5']:.3f}",
        flush=True,
    )


for k in [10, 30, 60]:
    show(f"rrf k={k} L_us+D_us", rrf([M["L_us"], M["D_us"]], [1, 1], k))
for w in [0.3, 0.5, 0.6, 0.7, 0.8]:
    show(f"z L_us {w} + D_us", weighted([M["L_us"], M["D_us"]], [w, 1 - w]))
    show(
        f"z50 L_us {w} + D_us",
        weighted([M["L_us"], M["D_us"]], [w, 1 - w], lambda m: zscore(m, 50)),
    )
    show(
        f"mm50 L_us {w} + D_us",
        weighted([M["L_us"], M["D_us"]], [w, 1 - w], lambda m: minmax(m, 50)),
    )
    show(f"z L_us {w} + D_utl", weighted([M["L_us"], M["D_utl"]], [w, 1 - w]))
# multi-signal
names = ["L_us", "L_ut", "L_as", "L_uw", "D_us", "D_ut", "D_utl", "L_at"]
best = []
rng = np.random.default_rng(0)
Z = {n: zscore(M[n], 50) for n in names}
for _ in range(300):
    w = rng.dirichlet(np.ones(len(names)) * 0.7)
    m = sum(wi * Z[n] for wi, n in zip(w, names, strict=True))
    best.append((evaluate(ds, m, "tune")["recall_all@5"], w))
best.sort(key=lambda x: -x[0])
for _s, w in best[:5]:
    m = sum(wi * Z[n] for wi, n in zip(w, names, strict=True))
    show("rand " + " ".join(f"{n}={x:.2f}" for n, x in zip(names, w, strict=True)), m)
