"""Session vector = normalized mean of its user-turn vectors (no 256-token truncation)."""

import numpy as np
from embed_cache import VecCache
from exp_union import union_fuse
from harness import HEADER, load, make_segments, show
from mats import get

ds = load()
vc = VecCache()
ut = make_segments(ds, "user_turn")
tv = vc.get(ut.columns[0])
qv = vc.get([q.question for q in ds.questions])
n = len(ds.sessions)
cent = np.zeros((n, tv.shape[1]), np.float32)
np.add.at(cent, ut.session_of, tv)
cent /= np.maximum(np.linalg.norm(cent, axis=1, keepdims=True), 1e-9)
D = qv @ cent.T
L = get("L_us")
print(HEADER)
show(ds, "dense centroid of user turns", D)
show(ds, "dense session text (256 tokens)", get("D_us"))
for w in [0.6, 0.7, 0.8]:
    show(ds, f"union50 L_us(q-stop) {w} + centroid", union_fuse(L, D, 50, w))
