"""SHA-256 of model files, memoized by (size, mtime, inode).

Hashing the 90 MB safetensors file costs ~60-90 ms, a visible slice of the 1.5 s cold-start
budget, and the installed model never changes in place. The memo holds only paths and digests
of model files (no user content); if it cannot be written the digest is simply recomputed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path

MEMO_FILENAME = "file-hashes.json"


def _stamp(path: Path) -> list[int]:
    info = path.stat()
    return [info.st_size, info.st_mtime_ns, info.st_ino]


def _hash_file(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _read_memo(memo: Path) -> dict[str, dict[str, object]]:
    try:
        data = json.loads(memo.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_memo(memo: Path, data: dict[str, dict[str, object]]) -> None:
    """Write atomically; a failure only costs a re-hash next time."""
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".file-hashes.", dir=memo.parent)
    except OSError:
        return
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, sort_keys=True)
        os.replace(tmp, memo)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def file_digests(paths: list[Path], memo_dir: Path | None) -> dict[Path, str]:
    """Return ``{path: sha256 hex}``, reusing digests whose file stamp has not changed."""
    memo = memo_dir / MEMO_FILENAME if memo_dir is not None else None
    known = _read_memo(memo) if memo is not None else {}
    result: dict[Path, str] = {}
    changed = False
    for path in paths:
        key = str(path.resolve())
        stamp = _stamp(path)
        entry = known.get(key)
        if isinstance(entry, dict) and entry.get("stamp") == stamp and "sha256" in entry:
            result[path] = str(entry["sha256"])
            continue
        digest = _hash_file(path)
        known[key] = {"stamp": stamp, "sha256": digest}
        result[path] = digest
        changed = True
    if memo is not None and changed:
        _write_memo(memo, known)
    return result
