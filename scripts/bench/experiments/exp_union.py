"""Emulate the product's fusion: z-scores over the union of each retriever's top-n candidates."""

import numpy as np
from harness import HEADER, load, show
from mats import get

ds = load()
L, D = get("L_us"), get("D_us")


def union_fuse(b, d, n=50, w=0.6, method="zscore"):
    out = np.full_like(b, -np.inf)
    for qi in range(b.shape[0]):
        bf = np.where(np.isfinite(b[qi]), b[qi], 0.0)  # product fills BM25 with 0 when no match
        bt = [j for j in np.argsort(-b[qi])[:n] if np.isfinite(b[qi, j])]
        dt = list(np.argsort(-d[qi])[:n])
        u = np.array(sorted(set(bt) | set(dt)))
        if not bt:
            out[qi, u] = d[qi, u]
            continue
        x, y = bf[u], d[qi, u]
        if method == "zscore":
            zx = (x - x.mean()) / max(x.std(), 1e-12)
            zy = (y - y.mean()) / max(y.std(), 1e-12)
        else:
            zx = (x - x.min()) / max(np.ptp(x), 1e-12)
            zy = (y - y.min()) / max(np.ptp(y), 1e-12)
        out[qi, u] = w * zx + (1 - w) * zy
    return out


if __name__ == "__main__":
    print(HEADER)
    show(ds, "bm25", L)
    for n in [50, 100, 200, 940]:
        for w in [0.6, 0.7, 0.8]:
            show(ds, f"union z n{n} w{w}", union_fuse(L, D, n, w))
    for n in [50, 100]:
        for w in [0.6, 0.7, 0.8]:
            show(ds, f"union minmax n{n} w{w}", union_fuse(L, D, n, w, "minmax"))
