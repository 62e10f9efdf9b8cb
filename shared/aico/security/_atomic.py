"""Crash-safe replacement of a small file: temp file, fsync, rename, fsync directory.

A reader sees either the whole old file or the whole new one, and after a crash at any
point at least one of them is on disk. ``_crash_hook`` lets tests kill the process
between steps; it is ``None`` in normal use.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from aico.errors import KeyFileError

__all__ = ["STEP_REPLACED", "STEP_TEMP_WRITTEN", "atomic_write", "exclusive_lock", "temp_path"]

STEP_TEMP_WRITTEN = "temp-written"
"""The temp file is complete and fsynced; the target is untouched."""
STEP_REPLACED = "replaced"
"""The rename happened; the directory is not yet fsynced."""

_crash_hook: Callable[[str], None] | None = None


def _step(name: str) -> None:
    if _crash_hook is not None:
        _crash_hook(name)


def temp_path(path: Path) -> Path:
    """Where the next version of ``path`` is staged."""
    return path.with_name(path.name + ".tmp")


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # Windows: directories cannot be opened; NTFS renames are journaled
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_temp(path: Path, data: bytes, mode: int) -> Path:
    tmp = temp_path(path)
    # A leftover from a crash may carry looser permissions: never reuse it.
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    return tmp


def _create_from(tmp: Path, path: Path) -> None:
    # link() is the atomic "create only if absent" for a fully written file.
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError:  # the filesystem has no hard links: check-then-rename is the best left
        if os.path.lexists(path):
            raise FileExistsError(path) from None
        os.replace(tmp, path)
    else:
        os.unlink(tmp)


def atomic_write(path: Path, data: bytes, *, mode: int = 0o600, overwrite: bool = True) -> None:
    """Replace (or, with ``overwrite=False``, create) ``path`` with ``data`` atomically.

    With ``overwrite=False`` an existing file raises ``FileExistsError`` and is left alone.
    """
    tmp = _write_temp(path, data, mode)
    _step(STEP_TEMP_WRITTEN)
    try:
        if overwrite:
            os.replace(tmp, path)
        else:
            _create_from(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _step(STEP_REPLACED)
    fsync_dir(path.parent)


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Serialise read-modify-write cycles on ``path`` across processes (POSIX advisory lock).

    Readers never need it: they always see a complete file thanks to :func:`atomic_write`.
    """
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; admin operations are rare and manual
        yield
        return
    lock = path.with_name(path.name + ".lock")
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    except FileNotFoundError:
        raise KeyFileError(f"key file {path} does not exist") from None
    except OSError as exc:
        raise KeyFileError(f"cannot lock key file {path}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
