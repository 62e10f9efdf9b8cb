"""Session-level BM25 (user words) fused with exchange-level dense (user + assistant words)."""

from exp_union import union_fuse
from harness import HEADER, STOP_BASIC, by_type, lexical_matrix, load, make_segments, show, weighted
from mats import get

ds = load()
Lq, Dex, Dus, Lut = get("L_us"), get("D_ex"), get("D_us"), get("L_ut")
Lc = lexical_matrix(ds, make_segments(ds, "user_session"), "porter unicode61", STOP_BASIC)
print(HEADER)
show(ds, "D_ex alone", Dex)
for w in [0.5, 0.6, 0.7, 0.8]:
    show(ds, f"z-all L_us(question) {w} + D_ex", weighted([Lq, Dex], [w, 1 - w]))
    show(ds, f"union50 L_us(question) {w} + D_ex", union_fuse(Lq, Dex, 50, w))
    show(ds, f"union50 L_us(classic) {w} + D_ex", union_fuse(Lc, Dex, 50, w))
show(ds, "z-all L_us .5 D_ex .25 D_us .25", weighted([Lq, Dex, Dus], [0.5, 0.25, 0.25]))
print(by_type(ds, union_fuse(Lq, Dex, 50, 0.7)))
