"""Check ``data.mdb`` against its own map before LMDB maps it.

Why: LMDB ``mmap``s the data file and trusts its meta page. A file shorter than the map the
meta page describes faults with SIGBUS on the first read past its end, and no exception can
be raised from a signal: the process dies. So the two meta pages are read here with plain
reads (a short file gives a short read, never a signal), the one LMDB would use is picked the
way LMDB picks it (the valid one with the larger transaction id), and a file that is shorter
than ``(last_pg + 1) * page_size`` of that meta, or whose metas LMDB would refuse, is refused
with ``WorkingMemoryCorrupted`` before ``lmdb.open`` runs.

Layout (64-bit, host byte order, as LMDB writes it; verified against py-lmdb's files):

    page header  mp_pgno:8 ... mp_flags:2 at header-6      (P_META = 0x08)
                 16 bytes in LMDB 0.9 (data version 1), 24 in LMDB 1.0 (data version 3)
    MDB_meta     magic:4 (0xBEEFC0DE)  version:4  address:8  mapsize:8
                 dbs[FREE] 48 bytes: pad:4 (= the page size) flags:2 depth:2
                                     branch:8 leaf:8 overflow:8 entries:8 root:8
                 dbs[MAIN] 48 bytes, same layout
                 last_pg:8  txnid:8

Meta 0 is at offset 0 and names the page size; meta 1 is at offset ``page_size``. A commit
rewrites only the older meta, from ``dbs[FREE].depth`` on: the header, magic, version, page
size and free-list flags of both pages are never rewritten, so damage there in the meta LMDB
does not use today is used after the next commit, and both are checked. Commit ``N`` writes
meta ``N % 2`` with txnid ``N``, so at rest the two txnids are consecutive with meta 0 even
(both 0 in a new file): a damaged txnid would make LMDB silently pick the older snapshot.
"""

from __future__ import annotations

import errno
import os
import struct
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import lmdb

from aico.errors import WorkingMemoryCorrupted, WorkingMemoryError

__all__ = ["DATA_FILE", "LOCK_FILE", "MapInfo", "check_map", "damaged"]

DATA_FILE: Final = "data.mdb"
LOCK_FILE: Final = "lock.mdb"

_MAGIC: Final = 0xBEEFC0DE
_P_META: Final = 0x08
_INTEGERKEY: Final = 0x08  # the free list's flags, as LMDB writes them
_P_INVALID: Final = 2**64 - 1
_MAX_DEPTH: Final = 32  # LMDB's cursor stack: a deeper tree cannot be walked
_META_LEN: Final = 136  # sizeof(MDB_meta) on a 64-bit build
_E: Final = "<" if sys.byteorder == "little" else ">"
_U16: Final = struct.Struct(_E + "H")
_U32: Final = struct.Struct(_E + "I")
_U64: Final = struct.Struct(_E + "Q")
# LMDB major version -> (page header size, data version, largest page size).
_ENGINES: Final = {0: (16, 1, 0x8000), 1: (24, 3, 0x10000)}


@dataclass(frozen=True, slots=True)
class MapInfo:
    """What the meta page LMDB would use says, and how large the file really is."""

    page_size: int
    last_pg: int
    txnid: int
    used_bytes: int
    file_bytes: int


@dataclass(frozen=True, slots=True)
class _Meta:
    pgno: int
    flags: int
    magic: int
    version: int
    page_size: int
    roots: tuple[int, int]
    depths: tuple[int, int]
    db_flags: tuple[int, int]
    last_pg: int
    txnid: int


def _parse(buf: bytes, header: int) -> _Meta:
    m = header
    return _Meta(
        pgno=_U64.unpack_from(buf, 0)[0],
        flags=_U16.unpack_from(buf, header - 6)[0],
        magic=_U32.unpack_from(buf, m)[0],
        version=_U32.unpack_from(buf, m + 4)[0],
        page_size=_U32.unpack_from(buf, m + 24)[0],
        depths=(_U16.unpack_from(buf, m + 30)[0], _U16.unpack_from(buf, m + 78)[0]),
        db_flags=(_U16.unpack_from(buf, m + 28)[0], _U16.unpack_from(buf, m + 76)[0]),
        roots=(_U64.unpack_from(buf, m + 64)[0], _U64.unpack_from(buf, m + 112)[0]),
        last_pg=_U64.unpack_from(buf, m + 120)[0],
        txnid=_U64.unpack_from(buf, m + 128)[0],
    )


def damaged(directory: Path, why: str) -> WorkingMemoryCorrupted:
    """The one wording of "this environment is damaged": it names the file, never content."""
    return WorkingMemoryCorrupted(
        f"working memory at {directory} is damaged: {why}; move it aside "
        "(quarantine_working) and rebuild it from the message log",
        path=directory,
    )


def _read_meta(fd: int, offset: int, header: int) -> _Meta | None:
    buf = os.pread(fd, header + _META_LEN, offset)
    return _parse(buf, header) if len(buf) == header + _META_LEN else None


def _problem(meta: _Meta | None, pgno: int, version: int) -> str | None:
    if meta is None:
        return f"meta page {pgno} is cut off"
    if meta.pgno != pgno or not meta.flags & _P_META or meta.magic != _MAGIC:
        return f"meta page {pgno} is not an LMDB meta page"
    if meta.version != version:
        return f"meta page {pgno} has data version {meta.version}, LMDB here uses {version}"
    if meta.db_flags != (_INTEGERKEY, 0):
        return f"meta page {pgno} names impossible database flags"
    return None


def _inspect(directory: Path, data: Path) -> MapInfo | None:
    header, version, max_page = _ENGINES.get(lmdb.version()[0], _ENGINES[1])
    try:
        fd = os.open(data, os.O_RDONLY)
    except FileNotFoundError:
        return _no_data(directory)
    try:
        if os.fstat(fd).st_size:
            return _check_metas(directory, fd, header, version, max_page)
    finally:
        os.close(fd)
    return _no_data(directory)


def _no_data(directory: Path) -> MapInfo | None:
    if (directory / LOCK_FILE).exists():
        # LMDB writes both meta pages while it creates the environment, right after
        # lock.mdb: an environment with a lock file but no data was deleted or cut to zero.
        raise damaged(directory, f"{DATA_FILE} is missing or empty beside {LOCK_FILE}")
    return None


def _check_metas(directory: Path, fd: int, header: int, version: int, max_page: int) -> MapInfo:
    meta0 = _read_meta(fd, 0, header)
    problem = _problem(meta0, 0, version)
    if problem is not None or meta0 is None:
        raise damaged(directory, problem or "meta page 0 is cut off")
    page = meta0.page_size
    if page < 256 or page > max_page or page & (page - 1):
        raise damaged(directory, f"meta page 0 names an impossible page size ({page})")
    meta1 = _read_meta(fd, page, header)
    problem = _problem(meta1, 1, version)
    if problem is not None or meta1 is None:
        raise damaged(directory, problem or "meta page 1 is cut off")
    if meta1.page_size != page:
        raise damaged(directory, "the two meta pages disagree on the page size")
    fresh = meta0.txnid == meta1.txnid == 0
    if not fresh and (meta0.txnid % 2 or abs(meta0.txnid - meta1.txnid) != 1):
        raise damaged(directory, "the meta pages' transaction ids are not consecutive")
    meta = meta1 if meta0.txnid < meta1.txnid else meta0  # mdb_env_pick_meta
    if meta.last_pg < 1:
        raise damaged(directory, f"the meta page claims {meta.last_pg + 1} page(s)")
    for root, depth in zip(meta.roots, meta.depths, strict=True):
        if root != _P_INVALID and not 2 <= root <= meta.last_pg:
            raise damaged(directory, "a root page lies outside the map")
        if depth > _MAX_DEPTH:
            raise damaged(directory, f"a tree claims depth {depth}")
    used = (meta.last_pg + 1) * page
    # The size is read after the metas: a writer extends the file before it publishes a
    # meta page that covers the new pages, so this order never sees a too-short file.
    size = os.fstat(fd).st_size
    if size < used:
        raise damaged(
            directory, f"{DATA_FILE} is {size} bytes, shorter than its map ({used} bytes)"
        )
    return MapInfo(page, meta.last_pg, meta.txnid, used, size)


def check_map(directory: Path, *, retries: int = 0) -> MapInfo | None:
    """The map of the environment in ``directory``; None if there is none yet.

    Raises ``WorkingMemoryCorrupted`` (``path`` = ``directory``) for a file LMDB could not
    map safely. ``retries``: an opener that joins while another process writes may read a
    meta page in the middle of its update; it looks again before it calls the file damaged.
    """
    data = directory / DATA_FILE
    for attempt in range(retries + 1):
        try:
            return _inspect(directory, data)
        except WorkingMemoryCorrupted:
            if attempt == retries:
                raise
            time.sleep(0.01 * (attempt + 1))
        except OSError as exc:
            if exc.errno == errno.EIO:
                raise damaged(directory, f"{DATA_FILE} cannot be read (I/O error)") from None
            raise WorkingMemoryError(
                f"cannot read working memory at {directory}: {exc.strerror}"
            ) from None
    raise AssertionError("unreachable")  # pragma: no cover
