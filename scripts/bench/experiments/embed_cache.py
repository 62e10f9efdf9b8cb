"""Embed the LongMemEval corpus once and cache the vectors outside the repo (throwaway)."""

from __future__ import annotations

import hashlib
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from longmemeval_data import load_dataset

CACHE = Path(os.environ.get("LME_CACHE", "/tmp/lme/cache"))


def _key(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


class VecCache:
    """sha1(text) -> vector, persisted as one npz per model name."""

    def __init__(self, model: str = "minilm") -> None:
        self.path = CACHE / f"{model}.npz"
        self.model = model
        self.vecs: dict[str, np.ndarray] = {}
        if self.path.exists():
            z = np.load(self.path)
            self.vecs = dict(zip(z["keys"].tolist(), z["vecs"], strict=True))
        self._enc = None

    def _encoder(self):
        if self._enc is None:
            from aico.ai.embeddings import OnnxMiniLMEncoder

            self._enc = OnnxMiniLMEncoder(threads=int(os.environ.get("LME_THREADS", "2")))
        return self._enc

    def get(self, texts: list[str]) -> np.ndarray:
        missing = sorted({_key(t): t for t in texts if _key(t) not in self.vecs}.items())
        if missing:
            t0 = time.time()
            # sort by length so batches pad little
            missing.sort(key=lambda kv: len(kv[1]))
            vs = self._encoder().encode([t for _, t in missing], batch_size=32)
            for (k, _), v in zip(missing, vs, strict=True):
                self.vecs[k] = v
            print(f"embedded {len(missing)} in {time.time() - t0:.1f}s", file=sys.stderr)
            self.save()
        return (
            np.stack([self.vecs[_key(t)] for t in texts])
            if texts
            else np.zeros((0, 384), np.float32)
        )

    def save(self) -> None:
        CACHE.mkdir(parents=True, exist_ok=True)
        keys = list(self.vecs)
        tmp = self.path.with_suffix(".tmp.npz")
        np.savez(tmp, keys=np.array(keys), vecs=np.stack([self.vecs[k] for k in keys]))
        tmp.replace(self.path)


if __name__ == "__main__":
    ds = load_dataset(os.environ.get("LONGMEMEVAL_ORACLE", "/tmp/lme/longmemeval_oracle.json"))
    vc = VecCache()
    texts: list[str] = [q.question for q in ds.questions]
    vc.get(texts)
    user = [t.content for s in ds.sessions for t in s.turns if t.role == "user"]
    vc.get(user)
    sess_user = ["\n".join(t.content for t in s.turns if t.role == "user") for s in ds.sessions]
    vc.get(sess_user)
    asst = [t.content for s in ds.sessions for t in s.turns if t.role != "user"]
    vc.get(asst)
