"""The embedded Chroma directory's files: checked before chromadb opens them, discarded whole.

chromadb trusts its files: a damaged HNSW file can kill the process (``_hnsw_check``) and
a damaged ``chroma.sqlite3`` fails its open, while some damage passes silently (a flipped
vector value). So the store keeps a small *manifest* beside the directory
(``<chroma dir>.state``, JSON, no ids or vectors: file names, sizes and SHA-256 digests):

- a clean close writes ``{"state": "closed", "files": ...}`` after chromadb let go of the
  files; the next open compares every file with it before chromadb sees them, which
  detects any change made while the index was closed (measured: 0.12 s per 200 MB);
- loading the index removes the manifest first (chromadb changes its files even to read),
  so after a crash there is none and only the structural checks apply: ``check_segment``
  for each HNSW segment, and ``chroma.sqlite3``'s header against its size;
- damage found at any time writes ``{"state": "damaged"}``, which stays until a rebuild
  replaced the directory, so a crash before the rebuild cannot make damage look healed.

``discard`` removes a damaged (or purged) directory without opening it: renamed aside to
``<name>.damaged-<UTC time>`` first (one atomic step, so the path is free for a fresh index
at once and a crash cannot leave half a directory where chromadb would open it), then
deleted. The renamed copy is not kept: it holds rotated vectors, perhaps of users forgotten
since, and nothing reads it. Leftovers of an interrupted discard are swept by the next one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import time
from pathlib import Path
from typing import Any

from aico.ai.memory.semantic._hnsw_check import HNSW_FILES, check_segment
from aico.errors import IndexDamaged

__all__ = [
    "check_files",
    "discard",
    "inspect_closed",
    "mark_damaged",
    "record_clean_close",
    "remove_manifest",
]

_SQLITE = "chroma.sqlite3"
_SQLITE_MAGIC = b"SQLite format 3\x00"
_READ = 1 << 20


def manifest_path(chroma_dir: Path) -> Path:
    return chroma_dir.parent / (chroma_dir.name + ".state")


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write(chroma_dir: Path, payload: dict[str, Any]) -> None:
    """Replace the manifest atomically (temporary file, fsync, rename, fsync dir)."""
    target = manifest_path(chroma_dir)
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = target.with_name(target.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, json.dumps(payload, sort_keys=True).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, target)
    _fsync_dir(target.parent)


def _read(chroma_dir: Path) -> dict[str, Any] | None:
    """The manifest, None if there is none; an unreadable one reads as ``{}``."""
    try:
        raw = manifest_path(chroma_dir).read_bytes()
    except FileNotFoundError:
        return None
    except OSError:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_READ):
            h.update(chunk)
    return h.hexdigest()


def _files(chroma_dir: Path) -> dict[str, list[Any]]:
    return {
        str(p.relative_to(chroma_dir)): [p.stat().st_size, _digest(p)]
        for p in sorted(chroma_dir.rglob("*"))
        if p.is_file()
    }


def record_clean_close(chroma_dir: Path) -> None:
    """After chromadb closed the directory: remember every file, for the next open's check."""
    if not chroma_dir.is_dir():
        remove_manifest(chroma_dir)
        return
    _write(chroma_dir, {"version": 1, "state": "closed", "files": _files(chroma_dir)})


def mark_damaged(chroma_dir: Path, reason: str) -> None:
    """Remember that the directory is damaged until a rebuild replaces it (never raises:
    a full disk must not turn a degraded index into a failed call)."""
    with contextlib.suppress(OSError):
        _write(chroma_dir, {"version": 1, "state": "damaged", "reason": reason})


def remove_manifest(chroma_dir: Path) -> None:
    target = manifest_path(chroma_dir)
    with contextlib.suppress(FileNotFoundError):
        target.unlink()
        _fsync_dir(target.parent)


def _damaged(chroma_dir: Path, what: str, path: Path | None = None) -> IndexDamaged:
    return IndexDamaged(f"chroma at {chroma_dir}: {what}", path=path or chroma_dir)


def _compare(chroma_dir: Path, manifest: dict[str, Any]) -> None:
    expected = manifest.get("files")
    if not isinstance(expected, dict):
        raise _damaged(chroma_dir, "its manifest is unreadable", manifest_path(chroma_dir))
    actual = {
        str(p.relative_to(chroma_dir)): p for p in sorted(chroma_dir.rglob("*")) if p.is_file()
    }
    for name in sorted(set(expected) | set(actual)):
        path = actual.get(name)
        if path is None:
            raise _damaged(chroma_dir, f"{name} is missing since the last clean close")
        want = expected.get(name)
        if not isinstance(want, list) or len(want) != 2:
            raise _damaged(chroma_dir, f"{name} was added since the last clean close", path)
        if path.stat().st_size != want[0] or _digest(path) != want[1]:
            raise _damaged(chroma_dir, f"{name} changed since the last clean close", path)


def _check_structure(chroma_dir: Path, dimension: int | None) -> None:
    segments = sorted(
        p for p in chroma_dir.iterdir() if p.is_dir() and any((p / n).exists() for n in HNSW_FILES)
    )
    sqlite = chroma_dir / _SQLITE
    if not sqlite.is_file():
        if segments:
            raise _damaged(chroma_dir, f"{_SQLITE} is missing beside its HNSW segments", sqlite)
    else:
        _check_sqlite(chroma_dir, sqlite)
    for segment in segments:
        check_segment(segment, dimension)


def _check_sqlite(chroma_dir: Path, sqlite: Path) -> None:
    """The header's magic, page size and page count against the file (what SQLite itself
    reads first); deeper damage makes chromadb's open or a query fail, which is caught."""
    size = sqlite.stat().st_size
    with sqlite.open("rb") as f:
        header = f.read(100)
    if len(header) < 100 or not header.startswith(_SQLITE_MAGIC):
        raise _damaged(chroma_dir, f"{_SQLITE} has no SQLite header", sqlite)
    page = int.from_bytes(header[16:18], "big")
    page = 65536 if page == 1 else page
    if page < 512 or page & (page - 1) or size % page:
        raise _damaged(chroma_dir, f"{_SQLITE} is not a whole number of pages", sqlite)
    pages = int.from_bytes(header[28:32], "big")
    valid_for = int.from_bytes(header[92:96], "big")
    changes = int.from_bytes(header[24:28], "big")
    if pages and valid_for == changes and pages * page > size:
        raise _damaged(chroma_dir, f"{_SQLITE} is shorter than its header says", sqlite)


def check_files(chroma_dir: Path, dimension: int | None) -> None:
    """Raise ``IndexDamaged`` if the closed directory must not be given to chromadb.

    With a manifest of a clean close, every file must match it; without one (first use,
    or a crash while open), the structure is checked. A missing directory passes: chromadb
    starts an empty one, which the store's count check then compares with libSQL.
    """
    manifest = _read(chroma_dir)
    if manifest is not None and manifest.get("state") == "damaged":
        raise _damaged(
            chroma_dir, "marked damaged; waiting for a rebuild", manifest_path(chroma_dir)
        )
    if not chroma_dir.is_dir():
        return
    if manifest is not None and manifest.get("state") == "closed":
        _compare(chroma_dir, manifest)
        return
    _check_structure(chroma_dir, dimension)


def inspect_closed(chroma_dir: Path) -> IndexDamaged | None:
    """For a read-only store: damage provable from the files alone, without any write.

    Only a manifest can tell (another process may be writing the files, unless a clean
    close's manifest is still there): a damaged mark, or files that differ from a clean
    close while that manifest still stands. None when nothing is known to be wrong.
    """
    manifest = _read(chroma_dir)
    if manifest is None:
        return None
    state = manifest.get("state")
    if state == "damaged":
        return _damaged(chroma_dir, "marked damaged; waiting for a rebuild")
    if state != "closed":
        return None
    try:
        if not chroma_dir.is_dir():
            raise _damaged(chroma_dir, "the directory is missing since the last clean close")
        _compare(chroma_dir, manifest)
    except IndexDamaged as exc:
        # A writer that opened the index meanwhile removed the manifest first: no proof.
        return exc if _read(chroma_dir) == manifest else None
    except OSError:
        return None
    return None


def discard(chroma_dir: Path) -> None:
    """Remove the directory without opening it (see the module docstring); then sweep."""
    if chroma_dir.exists():
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        aside = chroma_dir.with_name(f"{chroma_dir.name}.damaged-{stamp}-{secrets.token_hex(4)}")
        try:
            os.replace(chroma_dir, aside)
        except OSError as exc:
            raise _damaged(chroma_dir, f"could not move it aside ({type(exc).__name__})") from exc
        _fsync_dir(chroma_dir.parent)
    for leftover in chroma_dir.parent.glob(f"{chroma_dir.name}.damaged-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    _fsync_dir(chroma_dir.parent)
