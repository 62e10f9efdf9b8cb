"""The embedded Chroma index belongs to one process at a time.

chromadb's ``PersistentClient`` is not safe across processes: each keeps its own HNSW index
in memory and writes it back over the other's files, and a purge (deleting the directory
to compact it) would pull the files from under the other process. So the first process to
open an embedded index takes an exclusive ``flock`` on ``<chroma dir>.lock`` (its pid is
written inside) and keeps it until its last store on that directory closes; another
process gets ``StoreBusy`` naming that pid. Stores within one process share the hold.

Several processes share dense search through a Chroma server instead
(``memory.semantic.chroma_url``); the message log, working memory and BM25 are shared by
any number of processes either way (docs/architecture.md, "Processes").
"""

from __future__ import annotations

import errno
import fcntl
import os
import threading
from pathlib import Path

from aico.errors import StoreBusy

__all__ = ["IndexOwner"]

_lock = threading.Lock()
_held: dict[Path, tuple[int, int]] = {}  # resolved lock path -> (fd, stores holding it)


def _lock_path(chroma_dir: Path) -> Path:
    return chroma_dir.parent / (chroma_dir.name + ".lock")


class IndexOwner:
    """This process's hold on one embedded Chroma directory (``release`` is idempotent)."""

    def __init__(self, chroma_dir: Path) -> None:
        chroma_dir.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._path = _lock_path(chroma_dir).resolve()
        self._released = False
        with _lock:
            held = _held.get(self._path)
            if held is not None:
                _held[self._path] = (held[0], held[1] + 1)
                return
            fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                holder = _read_pid(fd)
                os.close(fd)
                if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise
                named = f" (pid {holder})" if holder else ""
                raise StoreBusy(
                    f"the semantic index is open in another process{named}; embedded Chroma "
                    "serves one process: close it, or share a Chroma server "
                    "(memory.semantic.chroma_url)",
                    pids=[holder] if holder else [],
                ) from None
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
            _held[self._path] = (fd, 1)

    def sole(self) -> bool:
        """True while this is the only store of the process holding the directory: only
        then may its files be checked, replaced or recorded (no other client has them open)."""
        with _lock:
            held = _held.get(self._path)
            return not self._released and held is not None and held[1] == 1

    def release(self) -> None:
        with _lock:
            if self._released:
                return
            self._released = True
            fd, count = _held[self._path]
            if count > 1:
                _held[self._path] = (fd, count - 1)
                return
            del _held[self._path]
            os.close(fd)  # drops the flock


def _read_pid(fd: int) -> int | None:
    try:
        raw = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        return int(raw) if raw.isdigit() else None
    except OSError:
        return None


def _after_fork_in_child() -> None:
    # A forked child must not hold (or later release) its parent's index.
    with _lock:
        for fd, _ in _held.values():
            os.close(fd)
        _held.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)
