"""Git status of the files under a root, through the ``git`` command when there is one.

Never fails for want of git: no ``git`` binary, no repository, or a git that errors all
mean "no status" (``None`` for every file). Paths come back relative to the root.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["GitState", "git_state"]

_TIMEOUT_S = 30.0
_CODES = {"M": "modified", "A": "added", "D": "deleted", "R": "renamed", "C": "copied"}


@dataclass(frozen=True)
class GitState:
    """``status(rel_path)``: ``clean``, ``modified``, ``added``, ``untracked``... or None."""

    in_repo: bool = False
    head: str | None = None
    changed: dict[str, str] = field(default_factory=dict)

    def status(self, rel_path: str) -> str | None:
        if not self.in_repo:
            return None
        return self.changed.get(rel_path, "clean")


def _git(root: Path, *args: str) -> str | None:
    exe = shutil.which("git")
    if exe is None:
        return None
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}
    try:
        done = subprocess.run(
            [exe, "-C", str(root), *args],
            capture_output=True,
            timeout=_TIMEOUT_S,
            env=env,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.decode("utf-8", errors="surrogateescape")


def git_state(root: Path) -> GitState:
    """Status of every changed file under ``root`` (one ``git status`` call), or no repo."""
    prefix = _git(root, "rev-parse", "--show-prefix")
    if prefix is None:
        return GitState()
    prefix = prefix.strip()
    head = _git(root, "rev-parse", "--verify", "-q", "HEAD")
    out = _git(root, "status", "--porcelain=v1", "-z", "--untracked-files=all", "--", ".")
    changed: dict[str, str] = {}
    if out:
        records = out.split("\0")
        i = 0
        while i < len(records):
            record = records[i]
            i += 1
            if len(record) < 4:
                continue
            code, path = record[:2], record[3:]
            if code[0] in "RC":
                i += 1  # the next record is the old path
            if code == "??":
                status = "untracked"
            else:
                letter = code[1] if code[1] != " " else code[0]
                status = _CODES.get(letter, "modified")
            if path.startswith(prefix):
                changed[path[len(prefix) :]] = status
    return GitState(True, head.strip() if head else None, changed)
