"""Keep freed process memory out of embedded Chroma's files (glibc ``M_PERTURB``).

Why: chromadb 1.5.9's HNSW (chroma-core/hnswlib ``initPersistentIndex``) writes its freshly
``malloc``'d ``data_level0`` and ``length`` buffers to disk at their full initial capacity
(100 slots) when a collection's index is created. Slots beyond the element count are never
initialised and stay on disk until real elements fill them, so whatever the allocator handed
out (freed heap memory of this process) lands in ``data_level0.bin`` / ``length.bin``. The
native code uses the system allocator (the bindings import ``malloc``/``free`` from libc,
no bundled jemalloc/mimalloc), and this process also holds decrypted user text.

Setting glibc's ``M_PERTURB`` makes ``malloc`` fill every chunk it carves from an arena with
``~byte`` and ``free`` fill released chunks with ``byte``. With ``byte = 0xFF`` fresh
allocations read as zeros (like ``calloc``), so Chroma's uninitialised slots hold zeros
instead of old data. The per-thread tcache (chunks up to 1032 bytes, 7 per size) bypasses
the fill, so a ``length.bin`` (400 bytes) can still hold a few bytes a Chroma thread itself
freed; see docs/semantic-memory.md for the measured cost and what remains.

Process-wide and permanent, so it is applied only when an embedded ``PersistentClient`` is
opened, never at import and never for a Chroma server.
"""

from __future__ import annotations

import ctypes
import logging
import threading

__all__ = ["FILL_BYTE", "harden_heap", "release_free_memory"]

log = logging.getLogger(__name__)

M_PERTURB = -6  # glibc malloc.h
FILL_BYTE = 0xFF  # freed chunks become 0xFF, newly allocated chunks 0x00

_lock = threading.Lock()
_applied: bool | None = None  # None: not tried yet


def harden_heap() -> bool:
    """Turn on glibc's malloc/free fill once per process; True if it is in force.

    Idempotent and never raises: where the C library is not glibc (macOS, musl, Windows)
    it logs one debug line and returns False.
    """
    global _applied
    with _lock:
        if _applied is None:
            _applied = _set_perturb(FILL_BYTE)
        return _applied


def _set_perturb(byte: int) -> bool:
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018  (glibc-only symbol: the probe)
        mallopt = libc.mallopt
    except (OSError, TypeError, AttributeError):
        log.debug("not glibc: heap fill for embedded Chroma not available")
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    if mallopt(M_PERTURB, byte) != 1:
        log.debug("mallopt(M_PERTURB) refused: heap fill for embedded Chroma not available")
        return False
    log.debug("glibc M_PERTURB set: freed memory no longer reaches Chroma's files")
    return True


def release_free_memory() -> bool:
    """Give free heap pages back to the OS (glibc ``malloc_trim``); True if it ran.

    Why: chromadb's import and HNSW load leave ~30 MB of freed but retained heap behind
    (measured: RSS 349 -> 321 MB after loading a 10k-vector index), which counts against
    the process's memory budget for as long as it runs. Never raises.
    """
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018  (glibc-only symbol: the probe)
        trim = libc.malloc_trim
    except (OSError, TypeError, AttributeError):
        return False
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    trim(0)
    return True
