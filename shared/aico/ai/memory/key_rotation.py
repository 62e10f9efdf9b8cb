"""Master-key rotation for the memory kept outside libSQL: working memory and the Chroma index.

``DataStore.rotate_master_key`` rekeys the databases and then, while the new key is still
*pending* in the key file, runs the store's ``rotation_steps``. ``ROTATION_STEPS`` below are
the memory layer's; ``aico.ai.memory.stores`` gives them to every store it opens, so a first
rotation, a re-run of ``aico keys rotate`` and the resume in ``DataStore.open`` all cover
the same stores, and the old key is dropped from the key file only after every step is done:

1. **working memory** (``rekey_working_memory``): every LMDB record is re-sealed under the new
   subkeys in one atomic LMDB commit (``WorkingMemoryStore.rekey``). At every instant the
   store opens with exactly one of the two keys, both of which the key file holds until the
   end; a store already under the new key is skipped. Nothing is dropped: the cache may hold
   messages not consolidated yet.
2. **semantic index** (``retire_semantic_index``): the Chroma vectors are rotated by a matrix
   and filed under collection names derived from the old key, so they are useless (and not
   to be kept) under the new one. The step first writes a durable *rebuild marker*, then
   deletes the local Chroma directory. Nothing is lost: the source of truth (segments and
   unrotated vectors) is in libSQL, already rekeyed.

Rebuilding needs the embedding model's identity, which ``DataStore`` does not have, so it
happens after the key file is updated, wherever a semantic store is opened by the
``MemoryManager`` (``finish_index_rekey``): its ``rebuild()`` drops every collection of the
store (a Chroma server's old-key collections too) and writes all vectors under the new keys;
the marker goes only after that succeeded. A crash in between leaves the marker, and the next
open rebuilds again.

Precondition (as for the libSQL rekey): no other store has the data dir open. The rotation
enforces it: it holds the data dir exclusively and refuses with ``StoreBusy`` otherwise.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from aico.ai.memory.working import WorkingMemoryStore
from aico.data.store import DataStore, RotationStep
from aico.errors import SemanticMemoryError
from aico.layout import DataDir
from aico.security import MasterKey

if TYPE_CHECKING:
    from aico.ai.memory.semantic import SemanticMemoryStore

__all__ = [
    "ROTATION_STEPS",
    "finish_index_rekey",
    "index_rebuild_marker",
    "index_rebuild_pending",
    "rekey_working_memory",
    "retire_semantic_index",
]


def index_rebuild_marker(data_dir: str | os.PathLike[str] | DataDir) -> Path:
    """The file whose presence says the Chroma index must be rebuilt under the current key."""
    return DataDir.of(data_dir).index_rebuild_marker


def index_rebuild_pending(data_dir: str | os.PathLike[str] | DataDir) -> bool:
    return index_rebuild_marker(data_dir).exists()


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # Windows cannot open directories; its renames and deletes are journaled
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_marker(path: Path, key_id: str) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, f"rebuild the Chroma index under master key {key_id}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    _fsync_dir(path.parent)


def _semantic_in_use(store: DataStore) -> bool:
    """True when the core database has a semantic model row (some store indexed there)."""
    if "core" not in store.databases or not store.path_of("core").exists():
        return False
    conn = store.connection("core")
    if not conn.fetch_value(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'semantic_model'"
    ):
        return False
    return bool(conn.fetch_value("SELECT count(*) FROM semantic_model"))


def rekey_working_memory(store: DataStore, old: MasterKey, new: MasterKey) -> dict[str, int]:
    """Rotation step: re-seal the data dir's working memory under ``new`` (idempotent)."""
    return WorkingMemoryStore.rekey(store.layout.working_memory, old, new).as_dict()


def retire_semantic_index(store: DataStore, old: MasterKey, new: MasterKey) -> dict[str, int]:
    """Rotation step: mark the Chroma index for a rebuild, then delete the local copy."""
    chroma = store.layout.chroma
    if not chroma.exists() and not _semantic_in_use(store):
        return {"index_rebuild_pending": 0, "local_index_deleted": 0}
    _write_marker(store.layout.index_rebuild_marker, new.key_id)
    deleted = 0
    if chroma.exists():
        try:
            shutil.rmtree(chroma)
        except OSError as exc:
            raise SemanticMemoryError(
                f"cannot delete the old Chroma index at {chroma}: {exc.strerror}"
            ) from None
        _fsync_dir(chroma.parent)
        deleted = 1
    return {"index_rebuild_pending": 1, "local_index_deleted": deleted}


def finish_index_rekey(
    semantic: SemanticMemoryStore, data_dir: str | os.PathLike[str] | DataDir
) -> int | None:
    """Rebuild the index if a rotation left the marker; the vectors written, or None.

    ``semantic`` must be open with the current master key. The marker is removed only after
    the rebuild returned, so a crash during it makes the next open rebuild again.
    """
    marker = index_rebuild_marker(data_dir)
    if not marker.exists():
        return None
    written = semantic.rebuild()
    with contextlib.suppress(FileNotFoundError):
        marker.unlink()
    _fsync_dir(marker.parent)
    return written


ROTATION_STEPS: dict[str, RotationStep] = {
    "working_memory": rekey_working_memory,
    "semantic_index": retire_semantic_index,
}
"""The memory layer's rotation steps, in the order they run (read when a store is opened)."""
