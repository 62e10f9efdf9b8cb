"""Structural checks of Chroma's HNSW segment files, made before chromadb may load them.

chromadb 1.5.9 loads a collection's HNSW index with hnswlib's ``loadPersistedIndex``, which
trusts its files: a truncated ``header.bin`` or ``link_lists.bin`` leaves fields
uninitialised (measured: SIGSEGV, or an allocation so large the kernel kills the process),
and a flipped neighbour id in ``data_level0.bin`` makes the first query read out of bounds
(SIGSEGV). No exception is raised that could be caught. So before the embedded index is
opened, every persisted segment is checked here against what hnswlib itself would need,
from the format it writes (chroma-core/hnswlib ``hnswalg.h``, ``persistHeader`` and
``persistDirty``):

- ``header.bin``: 100 bytes, ``HEADER_FIELDS`` (int version, six size_t, int maxlevel,
  uint32 entry point, three size_t, double mult, size_t ef_construction);
- ``data_level0.bin``: ``cur_element_count`` records of ``size_data_per_element`` bytes:
  a uint32 whose low 16 bits count the level-0 neighbours (byte 2: the deleted mark), the
  ``maxM0`` neighbour ids, the vector (float32), the label (uint64);
- ``length.bin``: one float32 per element;
- ``link_lists.bin``: per element, a uint32 byte count and that many bytes of upper-level
  lists, each a uint32 count and ``maxM`` neighbour ids.

Only what could crash or mislead hnswlib is checked (bounds, sizes, counts, finite floats);
a flipped bit that keeps every value plausible is caught by the manifest of a clean close
(``_index_files``), not here. Reading is in chunks, so memory stays bounded.
"""

from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np

from aico.errors import IndexDamaged

__all__ = ["HNSW_FILES", "check_segment"]

HNSW_FILES = ("header.bin", "data_level0.bin", "length.bin", "link_lists.bin")
_HEADER = struct.Struct("<iQQQQQQiIQQQdQ")  # 100 bytes
_VERSION = 1
_LABEL = 8  # sizeof(labeltype)
_CHUNK = 8192  # elements read at a time


def _fail(directory: Path, name: str, what: str) -> IndexDamaged:
    return IndexDamaged(
        f"chroma at {directory.parent}: {directory.name}/{name} fails its checks ({what})",
        path=directory / name,
    )


def check_segment(directory: Path, dimension: int | None = None) -> None:
    """Raise ``IndexDamaged`` if the HNSW files in ``directory`` could not be loaded safely.

    A directory holding none of the four files is a segment not persisted yet (chromadb
    keeps it in its log until then) and passes; one holding only some of them does not.
    ``dimension``, when known, must be the vectors' length.
    """
    present = [name for name in HNSW_FILES if (directory / name).is_file()]
    if not present:
        return
    if len(present) != len(HNSW_FILES):
        missing = sorted(set(HNSW_FILES) - set(present))
        raise _fail(directory, missing[0], "missing")
    raw = (directory / "header.bin").read_bytes()
    if len(raw) != _HEADER.size:
        raise _fail(directory, "header.bin", f"{len(raw)} bytes, not {_HEADER.size}")
    (
        version,
        offset_level0,
        max_elements,
        count,
        per_element,
        label_offset,
        offset_data,
        max_level,
        entry_point,
        max_m,
        max_m0,
        m,
        mult,
        ef_construction,
    ) = _HEADER.unpack(raw)
    links0 = max_m0 * 4 + 4
    data_size = label_offset - offset_data
    checks = (
        (version == _VERSION, "version"),
        (offset_level0 == 0, "level-0 offset"),
        (count <= max_elements < 2**32, "element counts"),
        (2 <= m <= 4096 and max_m == m and max_m0 == 2 * m, "M"),
        (offset_data == links0, "data offset"),
        (data_size > 0 and data_size % 4 == 0, "vector size"),
        (dimension is None or data_size == 4 * dimension, "dimension"),
        (per_element == label_offset + _LABEL, "element size"),
        (-1 <= max_level <= 64 and (count == 0 or max_level >= 0), "max level"),
        (count == 0 or entry_point < count, "entry point"),
        (m >= 2 and math.isfinite(mult) and abs(mult - 1 / math.log(m)) < 1e-9, "level multiplier"),
        (1 <= ef_construction <= 10**7, "ef_construction"),
    )
    for ok, what in checks:
        if not ok:
            raise _fail(directory, "header.bin", what)
    _check_level0(directory, count, per_element, max_m0, offset_data, label_offset)
    _check_lengths(directory, count)
    levels = _check_link_lists(directory, count, max_m, max_level)
    if count and levels.get(entry_point, 0) != max_level:
        raise _fail(directory, "link_lists.bin", "entry point level")


def _check_level0(
    directory: Path,
    count: int,
    per_element: int,
    max_m0: int,
    offset_data: int,
    label_offset: int,
) -> None:
    path = directory / "data_level0.bin"
    if path.stat().st_size < count * per_element:
        raise _fail(directory, path.name, "shorter than its elements")
    labels: list[np.ndarray] = []
    slots = np.arange(max_m0, dtype=np.uint32)
    with path.open("rb") as f:
        for start in range(0, count, _CHUNK):
            n = min(_CHUNK, count - start)
            block = np.frombuffer(f.read(n * per_element), dtype=np.uint8)
            if block.size != n * per_element:
                raise _fail(directory, path.name, "shorter than its elements")
            rows = block.reshape(n, per_element)
            head = rows[:, :4].copy().view("<u4")[:, 0]
            sizes = head & 0xFFFF
            if np.any(sizes > max_m0) or np.any((head >> 16) > 1):
                raise _fail(directory, path.name, "neighbour count")
            ids = rows[:, 4:offset_data].copy().view("<u4")
            used = slots[None, :] < sizes[:, None]
            if np.any(ids[used] >= count):
                raise _fail(directory, path.name, "neighbour id")
            vectors = rows[:, offset_data:label_offset].copy().view("<f4")
            if not np.all(np.isfinite(vectors)):
                raise _fail(directory, path.name, "vector value")
            labels.append(rows[:, label_offset : label_offset + _LABEL].copy().view("<u8")[:, 0])
    if labels:
        every = np.concatenate(labels)
        if np.unique(every).size != every.size:
            raise _fail(directory, path.name, "duplicate label")


def _check_lengths(directory: Path, count: int) -> None:
    path = directory / "length.bin"
    if path.stat().st_size < count * 4:
        raise _fail(directory, path.name, "shorter than its elements")
    values = np.fromfile(path, dtype="<f4", count=count)
    if values.size != count or not np.all(np.isfinite(values)):
        raise _fail(directory, path.name, "value")


def _check_link_lists(directory: Path, count: int, max_m: int, max_level: int) -> dict[int, int]:
    """Walk every element's upper-level lists; returns the level of each element above 0."""
    path = directory / "link_lists.bin"
    data = path.read_bytes()
    per_level = max_m * 4 + 4
    levels: dict[int, int] = {}
    offset = 0
    for element in range(count):
        if offset + 4 > len(data):
            raise _fail(directory, path.name, "shorter than its elements")
        (size,) = struct.unpack_from("<I", data, offset)
        offset += 4
        if size == 0:
            continue
        level, rest = divmod(size, per_level)
        if rest or not 1 <= level <= max(max_level, 0) or offset + size > len(data):
            raise _fail(directory, path.name, "list size")
        block = np.frombuffer(data, dtype="<u4", count=size // 4, offset=offset)
        block = block.reshape(level, max_m + 1)
        if np.any(block[:, 0] > max_m):
            raise _fail(directory, path.name, "neighbour count")
        used = np.arange(max_m)[None, :] < block[:, :1]
        if np.any(block[:, 1:][used] >= count):
            raise _fail(directory, path.name, "neighbour id")
        levels[element] = level
        offset += size
    return levels
