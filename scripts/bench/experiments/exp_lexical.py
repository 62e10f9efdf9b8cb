"""Lexical grid: segment unit x tokenizer x stopwords x aggregation x column weights."""

from __future__ import annotations

import time

from harness import (
    HEADER,
    STOP_BASIC,
    STOP_QUESTION,
    evaluate,
    fmt,
    lexical_matrix,
    load,
    make_segments,
)

ds = load()
print(f"{'config':60s} {HEADER}")
for unit in ["user_turn", "user_session", "exchange", "turn", "session", "user_window"]:
    segs = make_segments(ds, unit)
    for tok in ["porter unicode61", "unicode61"]:
        for sname, stop in [("basic", STOP_BASIC), ("question", STOP_QUESTION)]:
            wa_list = (
                [0.0]
                if unit in ("user_turn", "user_session", "user_window")
                else [0.0, 0.2, 0.5, 1.0]
            )
            for wa in wa_list:
                aggs = ["max"] if unit in ("user_session", "session") else ["max", "sum", "lse"]
                for how in aggs:
                    t0 = time.time()
                    m = lexical_matrix(ds, segs, tok, stop, 1.0, wa, how)
                    name = f"{unit:12s} {tok[:6]:6s} {sname:8s} wa={wa:.1f} {how:4s}"
                    took = time.time() - t0
                    print(f"{name:60s} {fmt(evaluate(ds, m))}  {took:.1f}s", flush=True)
