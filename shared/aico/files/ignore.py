"""Which paths of a folder the index skips: ``.gitignore`` files plus a configurable list.

Patterns use git's wildmatch syntax (``pathspec``'s ``gitwildmatch``). A ``.gitignore`` in a
sub-folder applies below that folder only, as in git; the configured list applies
everywhere, like a root ``.gitignore`` that nobody has to commit.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pathspec

__all__ = ["DEFAULT_IGNORES", "IgnoreRules"]

#: Skipped unless the caller passes its own list: tool caches and dependency folders hold
#: no notes of the user's and would dominate a first index.
DEFAULT_IGNORES: tuple[str, ...] = (
    ".git/",
    ".hg/",
    ".svn/",
    "node_modules/",
    "__pycache__/",
    ".venv/",
    "venv/",
    ".mypy_cache/",
    ".pytest_cache/",
    ".ruff_cache/",
    ".tox/",
    "*.pyc",
    ".DS_Store",
)


def _spec(lines: Iterable[str]) -> pathspec.PathSpec[Any]:
    return pathspec.PathSpec.from_lines("gitwildmatch", lines)


@dataclass
class IgnoreRules:
    """The configured patterns plus every ``.gitignore`` met on the walk (by folder)."""

    patterns: tuple[str, ...] = DEFAULT_IGNORES
    use_gitignore: bool = True
    _global: pathspec.PathSpec[Any] = field(init=False, repr=False)
    _by_dir: dict[str, pathspec.PathSpec[Any]] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self._global = _spec(self.patterns)

    def add_gitignore(self, rel_dir: str, text: str) -> None:
        """Rules of ``rel_dir/.gitignore`` (``rel_dir`` is ``""`` for the root)."""
        if self.use_gitignore:
            spec = _spec(text.splitlines())
            if spec.patterns:
                self._by_dir[rel_dir] = spec

    def ignored(self, rel_path: str, *, is_dir: bool) -> bool:
        """Whether ``rel_path`` (posix, relative to the root) is skipped."""
        probe = rel_path + "/" if is_dir else rel_path
        if self._global.match_file(probe):
            return True
        for rel_dir, spec in self._by_dir.items():
            if not rel_dir:
                if spec.match_file(probe):
                    return True
            elif probe.startswith(rel_dir + "/") and spec.match_file(probe[len(rel_dir) + 1 :]):
                return True
        return False
