"""``aico_backend.__all__`` is sorted and lists what it exposes (as test_exported_members)."""

from __future__ import annotations

import importlib
import inspect

import pytest


def isort_key(name: str) -> tuple[int, str]:
    kind = 0 if name.isupper() else 1 if name[:1].isupper() else 2
    return kind, name


@pytest.mark.parametrize("name", ["aico_backend", "aico_backend.page", "aico_backend.errors"])
def test_all_is_sorted_and_complete(name):
    module = importlib.import_module(name)
    exported = list(module.__all__)
    assert exported == sorted(exported, key=isort_key)
    public = {
        attr
        for attr, value in vars(module).items()
        if not attr.startswith("_")
        and not inspect.ismodule(value)
        and (getattr(value, "__module__", "") or "").startswith("aico_backend")
    }
    assert public <= set(exported), sorted(public - set(exported))
    assert all(hasattr(module, attr) for attr in exported)
