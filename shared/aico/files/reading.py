"""Read a file once, hash what was read, and tell whether it changed while being read.

The bytes that are hashed are the bytes that are parsed and chunked (one read), so the hash
always describes the stored content. A file written to during the read is detected by
comparing its ``stat`` before and after (size, mtime, ctime, inode); it is read again, and
after ``attempts`` unstable reads it is reported ``stable=False``: the caller stores what it
read but no stat cache, so the next index reads it again.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["MAX_READ_BYTES", "ReadResult", "StatKey", "read_file", "stat_key"]

#: Larger files are hashed in full but only their first bytes are parsed and chunked.
MAX_READ_BYTES = 8 * 1024 * 1024

StatKey = tuple[int, int, int, int, int]


def stat_key(st: os.stat_result) -> StatKey:
    """What the stat cache compares: size, mtime and ctime (ns), inode, device."""
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)


@dataclass(frozen=True)
class ReadResult:
    data: bytes  # at most MAX_READ_BYTES
    content_hash: str  # sha256 of the whole file as read
    size: int
    stat: os.stat_result  # after the read
    stable: bool


#: Called between the read and the second stat; tests use it to change a file mid-read.
_after_read: Callable[[str], None] | None = None


def read_file(path: str, *, attempts: int = 3) -> ReadResult:
    """Read and hash ``path`` (no symlink followed); ``OSError`` if it cannot be read."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    result: ReadResult | None = None
    for _ in range(max(1, attempts)):
        fd = os.open(path, flags)
        try:
            before = os.fstat(fd)
            digest = hashlib.sha256()
            head = bytearray()
            size = 0
            while block := os.read(fd, 1 << 20):
                digest.update(block)
                size += len(block)
                if len(head) < MAX_READ_BYTES:
                    head += block[: MAX_READ_BYTES - len(head)]
            if _after_read is not None:
                _after_read(path)
            after = os.stat(path, follow_symlinks=False)
        finally:
            os.close(fd)
        stable = stat_key(before) == stat_key(after) and size == after.st_size
        result = ReadResult(bytes(head), digest.hexdigest(), size, after, stable)
        if stable:
            return result
    assert result is not None
    return result
