"""Freed process memory must not reach embedded Chroma's files (glibc ``M_PERTURB``, _heap.py).

chromadb 1.5.9 writes a new HNSW index's ``data_level0.bin`` and ``length.bin`` at their full
initial capacity from uninitialised ``malloc`` memory; the slots past the element count are
what these tests read.
"""

from __future__ import annotations

import gc
import platform
import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from semantic_support import T0, scan_for

from aico.ai.memory.semantic import Segment, SemanticMemoryStore
from aico.ai.memory.semantic._heap import harden_heap

MARKER = b"ZQXFREEDHEAPMARKER"
PRINTABLE_RUN = re.compile(rb"[\x20-\x7e]{16,}")

# malloc / write the marker / free / malloc the same size again; print what the new block holds.
_REUSE_PROBE = """
import ctypes, sys
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
if sys.argv[1] == "fill":
    from aico.ai.memory.semantic._heap import harden_heap
    assert harden_heap()
size = 64 * 1024
block = libc.malloc(size)
ctypes.memmove(block, {marker!r} * (size // {length}), size // {length} * {length})
libc.free(block)
again = libc.malloc(size)
data = ctypes.string_at(again, size)
print(data.count({marker!r}), sum(1 for b in data if b))
"""


def _glibc_or_skip() -> None:
    if not harden_heap():
        pytest.skip("M_PERTURB needs glibc")


def _reuse_probe(mode: str) -> tuple[int, int]:
    """(marker copies, non-zero bytes) in a reused 64 KiB block, in a fresh interpreter."""
    code = _REUSE_PROBE.format(marker=MARKER, length=len(MARKER))
    out = subprocess.run(
        [sys.executable, "-c", code, mode], capture_output=True, text=True, check=True, timeout=60
    )
    copies, nonzero = out.stdout.split()
    return int(copies), int(nonzero)


def test_harden_heap_is_idempotent() -> None:
    _glibc_or_skip()
    assert harden_heap() is True
    assert harden_heap() is True


@pytest.mark.slow  # spawns two interpreters
def test_reused_heap_memory_holds_zeros_not_old_contents() -> None:
    """The mechanism, with a control: without the fill a freed block comes back as it was."""
    _glibc_or_skip()
    copies, _ = _reuse_probe("plain")
    assert copies > 1000, "control: glibc should hand the freed block back with its contents"
    assert _reuse_probe("fill") == (0, 0)


def _index_dirs(root: Path) -> list[Path]:
    return sorted(h.parent for h in root.rglob("header.bin"))


def _unused_regions(index_dir: Path) -> tuple[bytes, bytes]:
    """The bytes of data_level0.bin and length.bin past the persisted element count."""
    header = (index_dir / "header.bin").read_bytes()
    # int version, then size_t offsetLevel0, max_elements, cur_element_count, size_per_element
    _, capacity, count, per_element = struct.unpack_from("<4Q", header, 4)
    assert count <= capacity
    data = (index_dir / "data_level0.bin").read_bytes()
    lengths = (index_dir / "length.bin").read_bytes()
    return data[count * per_element :], lengths[count * 4 :]


@pytest.mark.slow  # ~4-9 s: three rebuilds
def test_new_chroma_indexes_persist_zeros_in_unused_slots(
    tmp_path: Path, sem_store: SemanticMemoryStore
) -> None:
    """Marker texts are written and freed right before Chroma creates and persists new
    indexes (two collections below their 100-slot initial capacity, rebuilt three times).
    No marker may reach Chroma's files, and the never-filled slots of every data_level0.bin
    must be exactly the fill (zeros), not recycled memory."""
    _glibc_or_skip()
    for round_ in range(3):
        texts = [f"{MARKER.decode()}{round_}{i:04d} " * 150 for i in range(200)]
        blobs = [t.encode() for t in texts]
        sem_store.add_segments(
            [Segment(u, t, T0 + i) for u in ("alice", "bob") for i, t in enumerate(texts[:150])]
        )
        del texts, blobs
        gc.collect()
        sem_store.rebuild()  # deletes the Chroma directory: new indexes are created and persisted
    sem_store.close()

    chroma = tmp_path / "chroma"
    assert scan_for(chroma, [MARKER]) == []
    dirs = _index_dirs(chroma)
    assert dirs, "expected at least one persisted HNSW index"
    for index_dir in dirs:
        unused_data, unused_lengths = _unused_regions(index_dir)
        assert unused_data.count(0) == len(unused_data), f"{index_dir.name}: recycled memory"
        # length.bin's 400 bytes may come from a Chroma thread's own tcache (not filled).
        assert PRINTABLE_RUN.findall(unused_lengths) == []


def test_release_free_memory_runs_on_glibc() -> None:
    from aico.ai.memory.semantic._heap import release_free_memory

    assert release_free_memory() is (platform.libc_ver()[0] == "glibc")
