import numpy as np
from harness import HEADER, by_type, load, show, weighted
from mats import CACHE, get

ds = load()
M = {n: get(n) for n in ["L_us", "L_ut", "L_uw", "D_us", "D_utl"]}
M["S_ut"] = np.load(CACHE / "S_user_turn_lse.npy")
M["S_us"] = np.load(CACHE / "S_user_session_max.npy")


print(HEADER)
for ws in [0.2, 0.3, 0.4, 0.5]:
    show(
        ds,
        f"L_us .7 D_us .3 S_us {ws}",
        weighted([M["L_us"], M["D_us"], M["S_us"]], [0.7, 0.3, ws]),
    )
    show(
        ds,
        f"L_us .7 D_us .3 S_ut {ws}",
        weighted([M["L_us"], M["D_us"], M["S_ut"]], [0.7, 0.3, ws]),
    )
    show(
        ds,
        f"L_us .5 L_ut .2 D_us .3 S_us {ws}",
        weighted([M["L_us"], M["L_ut"], M["D_us"], M["S_us"]], [0.5, 0.2, 0.3, ws]),
    )
print(by_type(ds, M["S_us"]))
print(by_type(ds, M["L_us"]))
print(by_type(ds, M["D_us"]))
