"""``aico.security.__all__`` is exactly its public surface, sorted (httpx's check)."""

from __future__ import annotations

import aico.security


def test_all_matches_public_names() -> None:
    public = {
        name
        for name, value in vars(aico.security).items()
        if not name.startswith("_") and getattr(value, "__module__", "").startswith("aico.")
    }
    public |= {n for n in vars(aico.security) if n.isupper() and not n.startswith("_")}
    assert aico.security.__all__ == sorted(aico.security.__all__)
    assert set(aico.security.__all__) == public
