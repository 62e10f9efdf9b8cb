"""Who has a data dir open: shared holds for normal use, an exclusive one for a rotation.

The policy (docs/architecture.md, "Processes"): any number of processes, each with any
number of threads and stores, may use one data dir at the same time. An operation that
changes what every other holder relies on (a master-key rotation; later a restore) needs
the data dir *alone*: it is refused up front, with ``StoreBusy`` naming the other holders'
pids, while any other open store exists, in another process or in this one.

Mechanism (POSIX ``flock``, which belongs to an open file description, not to a process):

- Every ``DirLock`` opens ``locks/data-dir.lock`` itself and holds ``LOCK_SH`` on it until
  ``release``. Two stores in one process are two holders, exactly like two processes. An
  open that meets an exclusive holder fails at once with ``StoreBusy`` (it does not wait
  for a rotation to end).
- ``exclusive()`` switches the holder's own lock to ``LOCK_EX`` without blocking. ``flock``
  cannot convert a lock atomically (a failed conversion drops the shared lock on Linux),
  so the switch is an explicit unlock, a non-blocking ``LOCK_EX`` attempt and, on failure,
  ``LOCK_SH`` again, all under ``locks/gate.lock``: only a gate holder ever asks for
  ``LOCK_EX``, so the shared lock is always given back and no other switcher can win in
  the gap.
- Every holder also keeps a file ``locks/holders/<pid>-<random>`` with ``LOCK_EX`` on it:
  that is how the others learn its pid. A file nobody holds a lock on belongs to a process
  that is gone; every open, and whoever lists the holders, deletes it. The kernel drops
  both locks when a process dies (even by ``SIGKILL``), so a crash never leaves the data
  dir busy; a stale holder file only ever costs its deletion, it never blocks.
- Descriptors are close-on-exec, and a ``fork()`` child closes its inherited copies at once
  (``os.register_at_fork``) without unlocking them, so the parent's holds stay exactly the
  parent's. A child that wants a data dir opens its own store.

Only processes that follow this protocol are seen; POSIX only, like the seal sidecar locks.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
import threading
import weakref
from collections.abc import Iterator
from pathlib import Path

from aico.errors import StorageError, StoreBusy, StoreClosed
from aico.layout import DataDir

__all__ = ["DirLock", "holders"]

_FLAGS = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)


def _try_lock(fd: int, kind: int) -> bool:
    try:
        fcntl.flock(fd, kind | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            return False
        raise
    return True


def _ensure_dir(directory: Path) -> None:
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(
            f"cannot create the lock directory {directory}: {exc.strerror}"
        ) from None


def _open(path: Path) -> int:
    try:
        return os.open(path, _FLAGS, 0o600)
    except OSError as exc:
        raise StorageError(f"cannot open the lock file {path}: {exc.strerror}") from None


def _same_file(path: Path, fd: int) -> bool:
    try:
        on_disk = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (on_disk.st_dev, on_disk.st_ino) == (mine.st_dev, mine.st_ino)


def _holder_pid(name: str) -> int | None:
    head, sep, _ = name.partition("-")
    return int(head) if sep and head.isdigit() else None


def _live_holders(layout: DataDir, *, skip: Path | None = None) -> list[int]:
    """The pid of every live holder file (one per open store), deleting the dead ones."""
    try:
        entries = sorted(os.scandir(layout.lock_holders), key=lambda e: e.name)
    except FileNotFoundError:
        return []
    pids = []
    for entry in entries:
        pid = _holder_pid(entry.name)
        path = Path(entry.path)
        if pid is None or path == skip:
            continue
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            continue  # its holder just released it
        try:
            if not _try_lock(fd, fcntl.LOCK_EX):
                pids.append(pid)
            elif _same_file(path, fd):
                # Nobody holds it: its process died without releasing.
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
        finally:
            os.close(fd)
    return pids


def holders(data_dir: DataDir | str | os.PathLike[str]) -> list[int]:
    """The pids of every store holding ``data_dir`` open now, one entry per store, sorted.

    Stale entries of dead processes are removed on the way; nothing else is changed.
    """
    layout = DataDir.of(data_dir)
    return sorted(_live_holders(layout))


class _Handles:
    """The descriptors of one hold; kept apart from ``DirLock`` for the finalizer."""

    def __init__(self, lock_fd: int, holder_fd: int, holder_path: Path) -> None:
        self.lock_fd: int | None = lock_fd
        self.holder_fd: int | None = holder_fd
        self.holder_path = holder_path
        self.pid = os.getpid()

    def release(self) -> None:
        """Leave the holder set: remove the holder file, then drop both locks."""
        if self.lock_fd is None or self.pid != os.getpid():
            return
        with _OPEN_MUTEX:
            _OPEN.discard(self)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.holder_path)
        for fd in (self.holder_fd, self.lock_fd):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)  # closing the last descriptor drops the flock
        self.lock_fd = self.holder_fd = None

    def abandon(self) -> None:
        """In a fork child: close the inherited copies; the parent's locks stay put."""
        for fd in (self.holder_fd, self.lock_fd):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.lock_fd = self.holder_fd = None


_OPEN: set[_Handles] = set()
_OPEN_MUTEX = threading.Lock()


def _after_fork_in_child() -> None:
    global _OPEN_MUTEX
    _OPEN_MUTEX = threading.Lock()  # another thread may have held it at the fork
    for handles in list(_OPEN):
        handles.abandon()
    _OPEN.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _register_holder(layout: DataDir) -> tuple[int, Path]:
    """Create this hold's ``<pid>-<random>`` file and lock it; return (fd, path)."""
    while True:
        path = layout.lock_holders / f"{os.getpid()}-{secrets.token_hex(6)}"
        try:
            fd = os.open(path, _FLAGS | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        except OSError as exc:
            raise StorageError(f"cannot create the holder file {path}: {exc.strerror}") from None
        try:
            # Blocking: a lister that saw the fresh file unlocked holds it for an instant,
            # deletes it, and we start again with a new name.
            fcntl.flock(fd, fcntl.LOCK_EX)
            if _same_file(path, fd):
                os.write(fd, f"{os.getpid()}\n".encode("ascii"))
                return fd, path
        except BaseException:
            os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            raise
        os.close(fd)


class DirLock:
    """One open store's hold on a data dir: shared from construction until ``release``.

    Raises ``StoreBusy`` (naming the holders) if the data dir is held exclusively.
    ``exclusive()`` makes this hold the only one for the duration of a ``with`` block.
    Thread-safe; ``release`` is idempotent, and a hold that is garbage-collected or still
    open at interpreter exit is released then.
    """

    def __init__(self, data_dir: DataDir | str | os.PathLike[str]) -> None:
        self.layout = DataDir.of(data_dir)
        self._mutex = threading.Lock()
        self._exclusive = False
        _ensure_dir(self.layout.lock_holders)
        holder_fd, holder_path = _register_holder(self.layout)
        try:
            lock_fd = _open(self.layout.lock_file)
        except BaseException:
            os.close(holder_fd)
            os.unlink(holder_path)
            raise
        self._handles = _Handles(lock_fd, holder_fd, holder_path)
        with _OPEN_MUTEX:
            _OPEN.add(self._handles)
        self._finalizer = weakref.finalize(self, self._handles.release)
        try:
            acquired = _try_lock(lock_fd, fcntl.LOCK_SH)
        except BaseException:
            self.release()
            raise
        pids = sorted(_live_holders(self.layout, skip=holder_path))  # drops stale entries
        if not acquired:
            self.release()
            listed = f" ({_pid_list(pids)})" if pids else ""
            raise StoreBusy(
                f"the data dir {self.layout.root} is held exclusively{listed}, by a master-key "
                "rotation or a restore; retry when it has finished",
                pids=pids,
            )

    @property
    def held(self) -> bool:
        return self._handles.lock_fd is not None

    @property
    def is_exclusive(self) -> bool:
        return self._exclusive

    def others(self) -> list[int]:
        """The pids of every *other* hold on this data dir (this process's own included)."""
        return sorted(_live_holders(self.layout, skip=self._handles.holder_path))

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the data dir alone inside the block; ``StoreBusy`` at once if it is not alone.

        Nothing waits: with another holder anywhere (another process, or another store of
        this process), the error names them and this hold stays shared, as it was.
        """
        with self._mutex:
            fd = self._require_fd()
            if self._exclusive:
                raise StoreBusy(f"the data dir {self.layout.root} is already held exclusively")
            gate = _open(self.layout.lock_gate)
            try:
                fcntl.flock(gate, fcntl.LOCK_EX)  # held for the switch only: never long
                fcntl.flock(fd, fcntl.LOCK_UN)
                alone = _try_lock(fd, fcntl.LOCK_EX)
                if not alone:
                    fcntl.flock(fd, fcntl.LOCK_SH)  # cannot block: only gate holders go EX
            finally:
                os.close(gate)
            if not alone:
                raise self._busy()
            self._exclusive = True
        try:
            yield
        finally:
            with self._mutex:
                self._exclusive = False
                if self._handles.lock_fd is not None:
                    # Nobody else holds the file now, so nobody can take it in between.
                    fcntl.flock(self._handles.lock_fd, fcntl.LOCK_SH)

    def _busy(self) -> StoreBusy:
        pids = self.others()
        me = os.getpid()
        elsewhere = sorted(set(p for p in pids if p != me))
        here = sum(1 for p in pids if p == me)
        parts = []
        if elsewhere:
            noun = "another process" if len(elsewhere) == 1 else "other processes"
            parts.append(f"{noun} ({_pid_list(elsewhere)})")
        if here:
            noun = "another store" if here == 1 else f"{here} other stores"
            parts.append(f"{noun} of this process (pid {me})")
        where = " and in ".join(parts) or "another process"
        them = "them" if len(elsewhere) + here > 1 else "it"
        return StoreBusy(
            f"the data dir {self.layout.root} is open in {where}; close {them} and retry",
            pids=pids,
        )

    def release(self) -> None:
        """Drop this hold (idempotent). A hold inherited through ``fork()`` is not dropped."""
        with self._mutex:
            self._exclusive = False
            self._finalizer.detach()
            self._handles.release()

    def _require_fd(self) -> int:
        fd = self._handles.lock_fd
        if fd is None:
            raise StoreClosed(f"the hold on data dir {self.layout.root} was released")
        return fd

    def __enter__(self) -> DirLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _pid_list(pids: list[int]) -> str:
    if len(pids) == 1:
        return f"pid {pids[0]}"
    return "pids " + ", ".join(str(p) for p in pids)
