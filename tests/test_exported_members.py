"""Each public package's ``__all__`` is sorted and is exactly what it exposes (httpx's check)."""

from __future__ import annotations

import importlib
import inspect

import pytest

PACKAGES = [
    "aico",
    "aico.config",
    "aico.data",
    "aico.data.libsql",
    "aico.data.libsql.registry",
    "aico.data.logs",
    "aico.data.repositories",
    "aico.data.schema",
    "aico.data.user",
    "aico.errors",
    "aico.security",
    "aico.ai.embeddings",
    "aico.ai.memory",
    "aico.ai.memory.semantic",
    "aico.operations",
    "aico.analytics",
    "aico.files",
    "aico.ai.memory.working",
]


def isort_key(name: str) -> tuple[int, str]:
    """Ruff's RUF022 order: CONSTANTS, then Classes, then functions and the rest."""
    kind = 0 if name.isupper() else 1 if name[:1].isupper() else 2
    return kind, name


@pytest.mark.parametrize("name", PACKAGES)
def test_all_is_sorted_and_complete(name):
    module = importlib.import_module(name)
    exported = list(module.__all__)
    assert exported == sorted(exported, key=isort_key), f"{name}.__all__ is not sorted"
    public = {
        attr
        for attr, value in vars(module).items()
        if not attr.startswith("_")
        and not inspect.ismodule(value)
        and (getattr(value, "__module__", "") or "").startswith("aico")
    }
    missing = public - set(exported)
    assert not missing, f"{name} exposes {sorted(missing)} without listing them in __all__"
    for attr in exported:
        assert hasattr(module, attr), f"{name}.__all__ lists {attr!r}, which does not exist"
