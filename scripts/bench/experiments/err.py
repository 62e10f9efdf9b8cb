import collections

import numpy as np
from harness import by_type, load, ranks_of
from mats import get

ds = load()
m = get("L_us")
print(by_type(ds, m))
print(by_type(ds, m, "recall_any@5"))
R = ranks_of(m)
sid = {s.session_id: i for i, s in enumerate(ds.sessions)}
# which question does each session belong to (as gold)?
owner = collections.defaultdict(list)
for q in ds.questions:
    for a in q.answer_session_ids:
        owner[a].append(q.index)
fails = []
for qi, q in enumerate(ds.questions):
    gr = sorted(R[qi, sid[a]] for a in q.answer_session_ids)
    if gr[-1] > 5:
        fails.append((q, gr))
print(len(fails))
c = collections.Counter((q.question_type, len(q.answer_session_ids)) for q, _ in fails)
print(c)
rng = np.random.default_rng(1)
for j in rng.choice(len(fails), 12, replace=False):
    q, gr = fails[j]
    top = np.argsort(R[q.index])[:5]
    print("\n##", q.question_type, q.question, "| gold ranks", gr)
    for t in top:
        s = ds.sessions[t]
        u = " / ".join(x.content[:90] for x in s.turns if x.role == "user")[:300]
        print("  ", "GOLD" if s.session_id in q.answer_session_ids else "    ", u)
