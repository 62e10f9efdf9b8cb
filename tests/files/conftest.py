"""A memory manager over a real encrypted data dir (fast fake encoder) and a folder to index."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from aico.ai.embeddings import HashingEncoder
from aico.ai.memory import MemoryManager
from aico.config import Config
from aico.data.repositories import UserService

PASSPHRASE = "correct horse battery staple"


@pytest.fixture
def manager(tmp_path: Path, test_config: Config) -> Iterator[MemoryManager]:
    m = MemoryManager.initialize(
        tmp_path / "data", PASSPHRASE, config=test_config, encoder=HashingEncoder(dimension=384)
    )
    users = UserService(m.store.connection("core"))
    users.create_user("Alice", user_id="alice")
    users.create_user("Bob", user_id="bob")
    yield m
    m.close()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A small project: Python with a test, TypeScript, Markdown notes, a binary file."""
    root = tmp_path / "project"
    (root / "pkg").mkdir(parents=True)
    (root / "web").mkdir()
    (root / "notes").mkdir()
    (root / "tests").mkdir()
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "core.py").write_text(
        '"""Core maths."""\n\nimport os\n\n\nclass Calculator:\n    def add(self, a, b):\n'
        "        return a + b\n\n\ndef helper():\n    return 1\n"
    )
    (root / "pkg" / "util.py").write_text("from . import core\nfrom .core import helper\n")
    (root / "tests" / "test_core.py").write_text("from pkg.core import Calculator\n")
    (root / "web" / "app.ts").write_text(
        "import { api } from './api';\nconst x = require('./lib/thing');\n"
        "export function main() {\n  return api();\n}\n"
    )
    (root / "web" / "api.ts").write_text("export const api = () => 1;\n")
    (root / "notes" / "garden.md").write_text(
        "# Garden\n\nThe tomatoes need watering every morning in July.\n\n"
        "## Links\n\nSee [core](../pkg/core.py) and [web](https://example.com).\n"
    )
    (root / "image.bin").write_bytes(b"\x89PNG\x00\x01\x02" * 100)
    return root
