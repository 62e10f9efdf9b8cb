"""One LMDB environment per data dir per process, and the one seam for LMDB errors.

Why a registry: LMDB forbids opening the same environment twice in one process (its
``fcntl`` locks belong to the process, so a second handle's close would drop the first
one's locks), and AICO paid for reopening it on every call. Stores on the same directory
share one ``SharedEnv``, reference-counted, keyed by ``(realpath, pid)``.

Why the fork hooks: an environment must never be used across ``fork()``. Before a fork we
wait for in-flight transactions (the gate below) so none is alive when the child starts;
the child then closes its inherited copies — safe only because no transaction or spare
reader slot of the parent exists in them, which is also why ``max_spare_txns=0`` — and a
store used in the child reopens lazily. An environment that could not be quiesced is
kept, never closed, and the child gets an error instead of a shared handle.

Map growth: the map is virtual, so the initial size is generous; ``MapFullError`` doubles
it and retries the whole transaction, and ``MapResizedError`` (another process grew it)
adopts the new size and retries. ``set_mapsize`` invalidates live transactions, so it runs
under the gate's exclusive side, after every reader in this process has finished.

Damage: LMDB trusts its file, and a damaged one can kill the process with a signal. So the
process's first store on a directory goes through ``_guard`` before ``lmdb.open``: the file
is checked against its map, a clean-close seal is verified, or an uncleanly closed file is
walked in a child first; the last closer in any process seals it again. Every LMDB error
that means damage becomes ``WorkingMemoryCorrupted``, and an environment that raised one is
never sealed.
"""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Final, TypeVar

import lmdb

from aico.ai.memory.working._check import LOCK_FILE, damaged
from aico.ai.memory.working._guard import OpenGuard
from aico.errors import (
    AicoError,
    NotFound,
    ReadOnly,
    StorageError,
    StorageFull,
    WorkingMemoryCorrupted,
    WorkingMemoryError,
)

__all__ = [
    "CANARY",
    "DB_BY_USER",
    "DB_EXPIRY",
    "DB_MESSAGES",
    "DB_META",
    "DB_NAMES",
    "DB_SESSIONS",
    "DB_VALUES",
    "SharedEnv",
    "acquire",
    "generation",
    "is_open",
    "release",
    "translate",
]

T = TypeVar("T")

# The named databases of the environment, and the meta key of the key-check canary.
DB_META: Final = b"meta"
DB_MESSAGES: Final = b"messages"
DB_VALUES: Final = b"values"
DB_SESSIONS: Final = b"sessions"
DB_BY_USER: Final = b"by_user"
DB_EXPIRY: Final = b"expiry"
DB_NAMES: Final = (DB_META, DB_MESSAGES, DB_VALUES, DB_SESSIONS, DB_BY_USER, DB_EXPIRY)
CANARY: Final = b"canary"
_RETRIES: Final = 64
_FORK_QUIESCE_TIMEOUT_S: Final = 5.0
_PAGE: Final = 4096

_CORRUPT: Final = (
    lmdb.CorruptedError,
    lmdb.PageNotFoundError,
    lmdb.InvalidError,
    lmdb.VersionMismatchError,
    lmdb.BadChecksumError,
    lmdb.PanicError,
    lmdb.IncompatibleError,
)


# A write that failed for want of room; and the codes of "this cannot be written".
_FULL: Final = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
_UNWRITABLE: Final = (errno.EROFS, errno.EACCES, errno.EPERM)


def _errno_of(exc: BaseException) -> int | None:
    """The system error code behind an LMDB error, if it has one.

    py-lmdb's C binding raises ``DiskError`` for ENOSPC and ``ReadonlyError`` for EACCES,
    but a plain ``lmdb.Error("mdb_txn_commit: File too large")`` for EFBIG or EDQUOT: the
    code only survives as its ``strerror`` text (the cffi binding passes the number).
    """
    if isinstance(exc, OSError):
        return exc.errno
    for arg in exc.args:
        if isinstance(arg, int) and not isinstance(arg, bool):
            return arg
    text = str(exc)
    return next((code for code in _FULL + _UNWRITABLE if text.endswith(os.strerror(code))), None)


def translate(exc: BaseException, path: str, *, read_only: bool = False) -> StorageError:
    """The ``aico`` error for an LMDB exception. LMDB messages hold paths and codes only."""
    name = type(exc).__name__
    if isinstance(exc, _CORRUPT):
        return WorkingMemoryCorrupted(
            f"working memory at {path} is corrupted or incompatible ({name}); move it aside "
            "(quarantine_working) and rebuild it from the message log",
            path=path,
        )
    code = _errno_of(exc)
    if isinstance(exc, lmdb.DiskError) or code in _FULL:
        reason = os.strerror(code if code in _FULL else errno.ENOSPC)
        return StorageFull(f"working memory at {path} could not be written: {reason}")
    if (isinstance(exc, lmdb.ReadonlyError) or code in _UNWRITABLE) and not read_only:
        reason = os.strerror(code if code in _UNWRITABLE else errno.EACCES)
        return ReadOnly(
            f"working memory at {path} cannot be written ({reason}); open it with read_only=True"
        )
    if isinstance(exc, lmdb.MapFullError):
        return WorkingMemoryError(f"working memory at {path} reached its maximum map size")
    if isinstance(exc, lmdb.ReadersFullError):
        return WorkingMemoryError(f"working memory at {path} has no free reader slot")
    return WorkingMemoryError(f"working memory at {path} failed: {name}: {exc}")


class _Gate:
    """Many transactions in, or one map resize / close / fork: a small readers-writer gate."""

    __slots__ = ("_active", "_cond", "_exclusive")

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._active = 0
        self._exclusive = False

    def __enter__(self) -> None:
        with self._cond:
            while self._exclusive:
                self._cond.wait()
            self._active += 1

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        with self._cond:
            self._active -= 1
            if not self._active:
                self._cond.notify_all()

    def acquire_exclusive(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._exclusive:
                if not self._cond.wait(_remaining(deadline)):
                    return False
            self._exclusive = True
            while self._active:
                if not self._cond.wait(_remaining(deadline)):
                    self._exclusive = False
                    self._cond.notify_all()
                    return False
        return True

    def release_exclusive(self) -> None:
        with self._cond:
            self._exclusive = False
            self._cond.notify_all()


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


class SharedEnv:
    """An open environment, its named databases, and retrying transaction runners.

    ``check`` runs once LMDB is open, while this process may still be the only opener (the
    store proves its key there, and after an unclean close authenticates every record);
    ``seal_key`` is set by a store whose key was proved, and the last closer seals with it.
    """

    def __init__(
        self,
        path: str,
        *,
        map_size: int,
        max_map_size: int,
        sync: bool,
        metasync: bool,
        max_readers: int,
        read_only: bool = False,
        seal_key: bytes,
        check: Callable[[SharedEnv], None] | None = None,
    ) -> None:
        self.path = path
        self.pid = os.getpid()
        self.sync = sync
        self.metasync = sync and metasync
        self.max_map_size = max(max_map_size, map_size)
        self.read_only = read_only
        self.refs = 0
        self.closed = False
        self.damaged = False
        self.seal_key: bytes | None = None
        self._gate = _Gate()
        self._quiesced = False
        self.guard = OpenGuard(Path(path), read_only=read_only)
        self.guard.enter(seal_key)
        try:
            self.env = self._open(path, map_size, max_readers)
            try:
                self.stale_readers_cleared = self.env.reader_check() if self._lmdb_lock else 0
                self.dbs: dict[bytes, Any] = (
                    self._find_dbs() if read_only else self.write(self._open_dbs)
                )
                if check is not None:
                    check(self)
            except BaseException:
                self.env.close()
                raise
        except BaseException:
            self.guard.close()
            raise
        self.guard.opened()

    @property
    def unclean(self) -> bool:
        """True for the first opener after an unclean close (no seal), until a store clears it."""
        return self.guard.unclean

    def mark_clean(self) -> None:
        """A store authenticated every record: later stores need not do it again."""
        self.guard.unclean = False

    def _open(self, path: str, map_size: int, max_readers: int) -> lmdb.Environment:
        # A read-only opener uses LMDB's lock only where it can write lock.mdb (LMDB opens it
        # read-write and tolerates nothing but EROFS); without it nobody else is writing.
        lock_file = os.path.join(path, LOCK_FILE)
        self._lmdb_lock = not self.read_only or os.access(lock_file, os.W_OK)
        # Opening begins a transaction; if another process grows the map between LMDB
        # reading the meta page and that transaction, the open fails with MapResizedError
        # and simply has to be repeated.
        for _ in range(_RETRIES):
            try:
                return lmdb.open(
                    path,
                    map_size=_round_up(map_size),
                    subdir=True,
                    max_dbs=len(DB_NAMES),
                    sync=self.sync,
                    metasync=self.metasync,
                    readahead=False,
                    meminit=True,  # zero page slack: never write stray heap bytes to disk
                    max_readers=max_readers,
                    max_spare_txns=0,  # no reader slot may outlive a transaction (see fork)
                    mode=0o700,
                    lock=self._lmdb_lock,
                    readonly=self.read_only,
                )
            except lmdb.MapResizedError:
                continue
            except lmdb.Error as exc:
                raise self._failure(exc) from exc
        raise WorkingMemoryError(f"working memory at {path} kept being resized while opening")

    def _open_dbs(self, txn: lmdb.Transaction) -> dict[bytes, Any]:
        self._check_names(txn)
        return {name: self.env.open_db(name, txn=txn, create=True) for name in DB_NAMES}

    def _find_dbs(self) -> dict[bytes, Any]:
        # Without a transaction: a handle opened inside a read transaction is not valid
        # after it (py-lmdb), and a read-only environment cannot begin a write one.
        self.read(self._check_names)
        try:
            return {name: self.env.open_db(name, create=False) for name in DB_NAMES}
        except lmdb.NotFoundError:
            raise NotFound(f"there is no working-memory store at {self.path}") from None
        except lmdb.Error as exc:
            raise self._failure(exc) from exc

    def _check_names(self, txn: lmdb.Transaction) -> None:
        # A damaged name would otherwise make open_db(create=True) start an empty database
        # beside the real one, and the cache would look empty instead of damaged.
        if any(name not in DB_NAMES for name in txn.cursor().iternext(values=False)):
            raise damaged(Path(self.path), "it holds a database this store does not know")

    def _failure(self, exc: BaseException) -> StorageError:
        """Translate, and remember damage: a damaged environment is never sealed."""
        error = translate(exc, self.path, read_only=self.read_only)
        if isinstance(error, WorkingMemoryCorrupted):
            self.damaged = True
        return error

    # -- transactions ----------------------------------------------------------------

    def read(self, fn: Callable[[Any], T]) -> T:
        """Run ``fn`` in a read transaction, adopting a map grown by another process."""
        for _ in range(_RETRIES):
            try:
                with self._gate, self.env.begin() as txn:
                    return fn(txn)
            except lmdb.MapResizedError:
                self._adopt_map_size()
            except lmdb.Error as exc:
                raise self._failure(exc) from exc
        raise WorkingMemoryError(f"working memory at {self.path} kept being resized")

    def write(self, fn: Callable[[Any], T], *, flush: bool = False) -> T:
        """Run ``fn`` in a write transaction; on a full map grow it and run ``fn`` again.

        ``fn`` must be safe to re-run: everything it did in a failed attempt was aborted.
        """
        if self.read_only:
            raise ReadOnly(f"working memory at {self.path} is open read-only")
        for _ in range(_RETRIES):
            seen = 0
            try:
                with self._gate:  # everything touching the map waits out a resize
                    seen = self.env.info()["map_size"]
                    with self.env.begin(write=True) as txn:
                        result = fn(txn)
                    if flush:
                        self.env.sync(True)
                return result
            except lmdb.MapFullError:
                self._grow(seen)
            except lmdb.MapResizedError:
                self._adopt_map_size()
            except lmdb.Error as exc:
                raise self._failure(exc) from exc
        raise WorkingMemoryError(f"working memory at {self.path} could not grow its map")

    def _exclusive(self, what: Callable[[], None]) -> None:
        self._gate.acquire_exclusive()
        try:
            what()
        except lmdb.MapResizedError:
            pass  # the map moved again under us: the caller's next attempt adopts it
        except lmdb.Error as exc:
            raise self._failure(exc) from exc
        finally:
            self._gate.release_exclusive()

    def _grow(self, seen: int) -> None:
        def grow() -> None:
            current = self.env.info()["map_size"]
            if current > seen:
                return  # another thread grew it meanwhile
            if current >= self.max_map_size:
                raise WorkingMemoryError(
                    f"working memory at {self.path} reached its maximum map size "
                    f"({self.max_map_size} bytes); sweep it or raise the limit"
                )
            self.env.set_mapsize(min(_round_up(current * 2), self.max_map_size))

        self._exclusive(grow)

    def _adopt_map_size(self) -> None:
        self._exclusive(lambda: self.env.set_mapsize(0))

    # -- housekeeping ----------------------------------------------------------------

    def flush(self) -> None:
        """Force everything committed so far to disk (for ``sync=False`` stores)."""
        if self.read_only:
            return
        try:
            with self._gate:
                self.env.sync(True)
        except lmdb.Error as exc:
            raise self._failure(exc) from exc

    def info(self) -> dict[str, int]:
        try:
            with self._gate:
                info = self.env.info()
                page = self.env.stat()["psize"]
        except lmdb.Error as exc:
            raise self._failure(exc) from exc
        return {
            "map_size": int(info["map_size"]),
            "used_bytes": int((info["last_pgno"] + 1) * page),
            "page_size": int(page),
            "readers": int(info["num_readers"]),
            "max_readers": int(info["max_readers"]),
        }

    def close(self) -> None:
        """Close LMDB; the last writer in any process then seals the file (``_guard``)."""
        if self.closed:
            return
        self._gate.acquire_exclusive()
        try:
            self.closed = True
            key = self.seal_key
            try:
                seal = self.guard.release() and key is not None and not self.damaged
                if seal:
                    self.env.sync(True)  # the seal must cover what is on disk
            except (OSError, lmdb.Error):
                seal = False
            finally:
                self.env.close()
            if seal and key is not None:
                self.guard.seal(key)
        finally:
            self.guard.close()
            self._gate.release_exclusive()

    # -- fork ------------------------------------------------------------------------

    def _quiesce(self) -> None:
        self._quiesced = self._gate.acquire_exclusive(_FORK_QUIESCE_TIMEOUT_S)

    def _resume(self) -> None:
        if self._quiesced:
            self._quiesced = False
            self._gate.release_exclusive()

    def _abandon_in_child(self) -> None:
        self.guard.close()  # only this copy of the descriptor: the parent's lock stays
        if self._quiesced:
            # No transaction of the parent is alive in this copy, so closing touches none of
            # the parent's reader slots; it frees the handle so this process can reopen.
            self.env.close()
        else:
            _INHERITED.append(self)  # keep alive forever; closing could break the parent
        self.closed = True


def _round_up(size: int) -> int:
    return max(_PAGE * 16, -(-int(size) // _PAGE) * _PAGE)


_lock = threading.Lock()
_registry: dict[tuple[str, int], SharedEnv] = {}
_INHERITED: list[SharedEnv] = []
_generation = 0


def generation() -> int:
    """Bumped in every forked child: a store holding an older value must reopen."""
    return _generation


def acquire(
    path: str | os.PathLike[str],
    *,
    map_size: int,
    max_map_size: int,
    sync: bool,
    metasync: bool = True,
    max_readers: int = 126,
    read_only: bool = False,
    seal_key: bytes,
    check: Callable[[SharedEnv], None] | None = None,
) -> SharedEnv:
    """The process's environment for ``path`` (opened on first use). First opener's options win.

    ``check(shared)`` runs for every store that acquires it (see ``SharedEnv``); if it
    raises, the reference is dropped again. A read-only environment cannot serve a store
    that wants to write (``ReadOnly``); a read-only store on a writable one simply never
    writes.
    """
    if not read_only:
        try:
            os.makedirs(path, mode=0o700, exist_ok=True)
        except OSError as exc:
            if exc.errno in _UNWRITABLE:
                raise ReadOnly(
                    f"cannot create working memory at {path} ({exc.strerror}); "
                    "open it with read_only=True"
                ) from None
            raise WorkingMemoryError(
                f"cannot create working memory at {path}: {exc.strerror}"
            ) from None
    real = os.path.realpath(path)
    with _lock:
        key = (real, os.getpid())
        shared = _registry.get(key)
        if shared is None:
            if any(s.path == real for s in _INHERITED):
                raise WorkingMemoryError(
                    f"working memory at {real} was busy in the parent when this process "
                    "forked; it cannot be reopened here"
                )
            shared = SharedEnv(
                real,
                map_size=map_size,
                max_map_size=max_map_size,
                sync=sync,
                metasync=metasync,
                max_readers=max_readers,
                read_only=read_only,
                seal_key=seal_key,
                check=check,
            )
            _registry[key] = shared
            shared.refs += 1
            return shared
        if shared.read_only and not read_only:
            raise ReadOnly(f"working memory at {real} is open read-only in this process")
        shared.refs += 1
    if check is not None:
        try:
            check(shared)
        except BaseException:
            release(shared)
            raise
    return shared


def is_open(path: str | os.PathLike[str]) -> bool:
    """True if this process has the environment at ``path`` open."""
    with _lock:
        return (os.path.realpath(path), os.getpid()) in _registry


def release(shared: SharedEnv) -> None:
    """Drop one reference; the last one closes the environment."""
    with _lock:
        shared.refs -= 1
        if shared.refs > 0:
            return
        if _registry.get((shared.path, shared.pid)) is shared:
            del _registry[(shared.path, shared.pid)]
    if shared.pid == os.getpid():
        shared.close()


def _before_fork() -> None:
    _lock.acquire()
    for shared in _registry.values():
        shared._quiesce()


def _after_fork_in_parent() -> None:
    for shared in _registry.values():
        shared._resume()
    _lock.release()


def _after_fork_in_child() -> None:
    global _lock, _generation
    _generation += 1
    for shared in list(_registry.values()):
        try:
            shared._abandon_in_child()
        except (lmdb.Error, AicoError):
            _INHERITED.append(shared)
    _registry.clear()
    _lock = threading.Lock()


os.register_at_fork(
    before=_before_fork,
    after_in_parent=_after_fork_in_parent,
    after_in_child=_after_fork_in_child,
)
