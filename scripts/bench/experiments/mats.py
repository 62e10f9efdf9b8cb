"""Compute and cache the per-signal session-score matrices used by the fusion experiments."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from harness import STOP_QUESTION, Segments, dense_matrix, lexical_matrix, load, make_segments

CACHE = Path("/tmp/lme/mats")
CACHE.mkdir(parents=True, exist_ok=True)


def swap(segs: Segments) -> Segments:
    """Put the assistant column first so it is indexed as its own table."""
    return Segments(
        segs.name + "_asst",
        segs.session_of,
        [segs.columns[1], [""] * len(segs.session_of)],
        segs.column_names,
    )


def concat(segs: Segments) -> Segments:
    return Segments(
        segs.name + "_cat",
        segs.session_of,
        [[u + "\n" + a for u, a in zip(*segs.columns, strict=True)], [""] * len(segs.session_of)],
        segs.column_names,
    )


def get(name: str) -> np.ndarray:
    p = CACHE / f"{name}.npy"
    if p.exists():
        return np.load(p)
    ds = load()
    P = "porter unicode61"
    if name == "L_us":
        m = lexical_matrix(ds, make_segments(ds, "user_session"), P, STOP_QUESTION)
    elif name == "L_ut":
        m = lexical_matrix(ds, make_segments(ds, "user_turn"), P, STOP_QUESTION, how="lse")
    elif name == "L_as":
        m = lexical_matrix(ds, swap(make_segments(ds, "session")), P, STOP_QUESTION)
    elif name == "L_at":
        t = make_segments(ds, "turn")
        keep = [i for i, a in enumerate(t.columns[1]) if a]
        t = Segments(
            "asst_turn",
            t.session_of[keep],
            [[t.columns[1][i] for i in keep], [""] * len(keep)],
            t.column_names,
        )
        m = lexical_matrix(ds, t, P, STOP_QUESTION, how="lse")
    elif name == "L_s":
        m = lexical_matrix(ds, concat(make_segments(ds, "session")), P, STOP_QUESTION)
    elif name == "L_ex":
        m = lexical_matrix(ds, concat(make_segments(ds, "exchange")), P, STOP_QUESTION, how="lse")
    elif name == "L_uw":
        m = lexical_matrix(ds, make_segments(ds, "user_window"), P, STOP_QUESTION, how="lse")
    elif name == "D_us":
        m = dense_matrix(ds, make_segments(ds, "user_session"))
    elif name == "D_ut":
        m = dense_matrix(ds, make_segments(ds, "user_turn"))
    elif name == "D_utl":
        m = dense_matrix(ds, make_segments(ds, "user_turn"), how="lse", temp=0.05)
    elif name == "D_at":
        m = dense_matrix(ds, make_segments(ds, "turn"), col=1)
    elif name == "D_ex":
        s = concat(make_segments(ds, "exchange"))
        m = dense_matrix(ds, s)
    else:
        raise KeyError(name)
    np.save(p, m)
    return m


if __name__ == "__main__":
    from harness import HEADER, evaluate, fmt

    ds = load()
    print(HEADER)
    for n in sys.argv[1:]:
        print(f"{n:6s}", fmt(evaluate(ds, get(n))), flush=True)
