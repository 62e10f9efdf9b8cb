"""Walk a folder: the files to index, their ``lstat``, never following a symbolic link.

A symbolic link is never followed, whether it points inside the root or out of it: one
pointing out would index files the user did not choose; one pointing in would index a file
twice. Links are counted (``WalkStats.symlinks_skipped``) so the report can say so.
Files that vanish or cannot be read mid-walk are skipped and counted, never fatal.
"""

from __future__ import annotations

import os
import stat as stat_mod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from aico.files.ignore import IgnoreRules

__all__ = ["WalkEntry", "WalkStats", "walk"]


@dataclass(frozen=True)
class WalkEntry:
    """One regular file: its path relative to the root (posix) and its ``lstat``."""

    rel_path: str
    path: str
    stat: os.stat_result


@dataclass
class WalkStats:
    files: int = 0
    ignored: int = 0
    symlinks_skipped: int = 0
    unreadable: int = 0


def walk(root: Path, rules: IgnoreRules, stats: WalkStats | None = None) -> Iterator[WalkEntry]:
    """Every regular file under ``root`` that ``rules`` keep, depth first, sorted by name."""
    stats = stats if stats is not None else WalkStats()
    stack: list[tuple[str, str]] = [(str(root), "")]
    while stack:
        directory, rel_dir = stack.pop()
        try:
            with os.scandir(directory) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            stats.unreadable += 1
            continue
        if rules.use_gitignore:
            for entry in entries:
                if entry.name == ".gitignore" and entry.is_file(follow_symlinks=False):
                    try:
                        with open(entry.path, encoding="utf-8", errors="replace") as fh:
                            rules.add_gitignore(rel_dir, fh.read())
                    except OSError:
                        stats.unreadable += 1
        subdirs: list[tuple[str, str]] = []
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                stats.unreadable += 1
                continue
            if stat_mod.S_ISLNK(st.st_mode):
                stats.symlinks_skipped += 1
                continue
            is_dir = stat_mod.S_ISDIR(st.st_mode)
            if rules.ignored(rel, is_dir=is_dir):
                stats.ignored += 1
                continue
            if is_dir:
                subdirs.append((entry.path, rel))
            elif stat_mod.S_ISREG(st.st_mode):
                stats.files += 1
                yield WalkEntry(rel, entry.path, st)
        stack.extend(reversed(subdirs))
