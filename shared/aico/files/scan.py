"""One pass over a folder: what changed since the rows the index holds, reading only that.

``scan`` walks the root and compares each file's ``lstat`` with the stat cache of its row
(size, mtime and ctime in ns, inode, device): an equal key means unchanged, and the file's
content is not opened. Everything else is read once (``reading.read_file``) and hashed.
``plan`` then pairs what disappeared with what appeared by content hash (a rename in the
same folder, a move to another) and names every other difference. No store is touched.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from aico.files.detect import Detected, detect
from aico.files.ignore import IgnoreRules
from aico.files.reading import ReadResult, StatKey, read_file, stat_key
from aico.files.walker import WalkStats, walk

__all__ = ["Known", "Plan", "Read", "ScanResult", "plan", "scan"]


class Known(Protocol):
    """What the scan needs of an indexed file (``FileRecord`` has it)."""

    @property
    def id(self) -> str: ...
    @property
    def rel_path(self) -> str: ...
    @property
    def content_hash(self) -> str | None: ...
    @property
    def stat_key(self) -> tuple[int | None, ...]: ...
    @property
    def deleted_at(self) -> float | None: ...
    @property
    def chunk_count(self) -> int | None: ...


@dataclass(frozen=True)
class Read:
    """A file that was read: its walk stat, what was read, and what it is."""

    rel_path: str
    path: str
    stat: os.stat_result
    result: ReadResult
    detected: Detected


@dataclass
class ScanResult:
    seen: dict[str, os.stat_result] = field(default_factory=dict)  # rel_path -> lstat
    unchanged: set[str] = field(default_factory=set)
    read: dict[str, Read] = field(default_factory=dict)
    walk: WalkStats = field(default_factory=WalkStats)
    unreadable: int = 0


def scan(root: Path, rules: IgnoreRules, known: Mapping[str, Known]) -> ScanResult:
    """Walk ``root``; read the files whose stat differs from ``known[rel_path]``'s cache."""
    out = ScanResult()
    for entry in walk(root, rules, out.walk):
        out.seen[entry.rel_path] = entry.stat
        row = known.get(entry.rel_path)
        key: StatKey = stat_key(entry.stat)
        if (
            row is not None
            and row.deleted_at is None
            and row.chunk_count is not None
            and tuple(row.stat_key) == key
        ):
            out.unchanged.add(entry.rel_path)
            continue
        try:
            result = read_file(entry.path)
        except OSError:
            out.unreadable += 1
            del out.seen[entry.rel_path]
            continue
        out.read[entry.rel_path] = Read(
            entry.rel_path, entry.path, entry.stat, result, detect(result.data)
        )
    return out


@dataclass
class Plan:
    """What to write. Paths are relative to the root; renames map old -> new."""

    created: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    touched: list[str] = field(default_factory=list)  # read, same hash: stat cache only
    deleted: list[str] = field(default_factory=list)
    renamed: dict[str, str] = field(default_factory=dict)  # same folder
    moved: dict[str, str] = field(default_factory=dict)  # another folder


def plan(result: ScanResult, known: Mapping[str, Known]) -> Plan:
    out = Plan()
    gone = [rel for rel, row in known.items() if row.deleted_at is None and rel not in result.seen]
    appeared: dict[str, list[str]] = {}
    for rel, read in result.read.items():
        row = known.get(rel)
        if row is None or row.deleted_at is not None:
            appeared.setdefault(read.result.content_hash, []).append(rel)
        elif row.content_hash == read.result.content_hash and row.chunk_count is not None:
            out.touched.append(rel)
        else:
            out.modified.append(rel)
    for rel in sorted(gone):
        row = known[rel]
        candidates = appeared.get(row.content_hash or "")
        if candidates:
            # Prefer a new path in the same folder, then the same name elsewhere.
            same_dir = [c for c in candidates if posixpath.dirname(c) == posixpath.dirname(rel)]
            same_name = [c for c in candidates if posixpath.basename(c) == posixpath.basename(rel)]
            new = (same_dir or same_name or candidates)[0]
            candidates.remove(new)
            target = out.renamed if posixpath.dirname(new) == posixpath.dirname(rel) else out.moved
            target[rel] = new
        else:
            out.deleted.append(rel)
    out.created = sorted(rel for paths in appeared.values() for rel in paths)
    return out
