"""Product-style fusion (z-scores over the candidate union) x stopword list x BM25 weight."""

from exp_union import union_fuse
from harness import HEADER, STOP_BASIC, STOP_QUESTION, lexical_matrix, load, make_segments, show
from mats import get

ds = load()
D = get("D_us")
segs = make_segments(ds, "user_session")
print(HEADER)
for name, stop in [("classic", STOP_BASIC), ("question", STOP_QUESTION)]:
    L = lexical_matrix(ds, segs, "porter unicode61", stop)
    show(ds, f"{name} bm25", L)
    for w in [0.6, 0.7, 0.8, 0.9]:
        show(ds, f"{name} union z n50 w{w}", union_fuse(L, D, 50, w))
