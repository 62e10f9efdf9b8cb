from harness import HEADER, STOP_QUESTION, evaluate, fmt, lexical_matrix, load, make_segments

ds = load()
print(HEADER)
segs = make_segments(ds, "session")
for tok in ["porter unicode61"]:
    for wa in [0.0, 0.05, 0.1, 0.2, 0.3, 0.5]:
        m = lexical_matrix(ds, segs, tok, STOP_QUESTION, 1.0, wa, "max")
        print(f"session {tok[:6]} question wa={wa}", fmt(evaluate(ds, m)), flush=True)
