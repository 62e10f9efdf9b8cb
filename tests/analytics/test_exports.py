"""``aico.analytics.__all__`` is sorted and is exactly what it exposes (httpx's check)."""

from __future__ import annotations

import inspect

import aico.analytics


def test_all_is_sorted_and_complete() -> None:
    module = aico.analytics
    exported = list(module.__all__)

    def key(name: str) -> tuple[int, str]:
        return (0 if name.isupper() else 1 if name[:1].isupper() else 2), name

    assert exported == sorted(exported, key=key)
    public = {
        attr
        for attr, value in vars(module).items()
        if not attr.startswith("_")
        and not inspect.ismodule(value)
        and (getattr(value, "__module__", "") or "").startswith("aico")
    }
    assert public <= set(exported), "exposed without being listed"
    assert all(hasattr(module, name) for name in exported)
