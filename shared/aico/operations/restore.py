"""Restore a backup into a fresh directory, verify it, then swap it in atomically.

Order, so that the current data is never touched until the restored copy is whole:

1. **Passphrases first.** The archive's key file must unwrap with the passphrase, and (to
   read its forget ledger) so must the current data dir's key file: either failure raises
   ``WrongPassphrase`` before anything is created anywhere.
2. **The data dir alone.** A restore in place takes the data dir exclusively
   (``aico.locking``): ``StoreBusy`` while anything else has it open. Held to the end.
3. **Stage** into ``<parent>/.<name>.restore-<random>``: every file is decrypted and checked
   against the manifest (size, keyed checksum) as it is written.
4. **Verify** the staged copy: each database opens with the key and passes
   ``PRAGMA integrity_check``, schema checksums and versions (``DataStore.verify``). The
   restored files get fresh sidecars and seals (no ``<db>.lock`` or ``.seal`` is ever
   restored: a stale commit record would refuse the file as "missing committed
   transactions").
5. **Re-apply the forget ledger** of the current data dir (``ledger``) through a
   ``MemoryManager`` on the staged copy, and carry the ledger over.
6. **Swap**: the current data dir's backups are hard-linked into the staged copy, then the
   two directories are exchanged in one ``renameat2(RENAME_EXCHANGE)``; the old data is
   deleted (or kept, ``keep_replaced``). A restore ``to`` a new directory renames instead.

A failure or a kill before step 6 leaves the current data dir exactly as it was; the next
restore deletes the abandoned staging directory. Working memory is not restored (the first
open refills it from the log). Nor is the Chroma index: an embedded one is missing, which
the first open notices (no vectors where libSQL has some) and rebuilds in the background
from the libSQL vectors while search uses BM25 and the exact scan (opening does not wait
minutes for it); a Chroma server still holds the replaced data's collections, so a rebuild
marker makes the first open rebuild them before anything is served. Re-applied forgets
rebuild the index here already (a forget purges it by rebuilding it).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

import aico.ai.memory.semantic.schema  # noqa: F401  (registers the "semantic" schema)
from aico.config import Config, load_config
from aico.data.libsql import EncryptedLibSQLConnection, SQLiteSettings
from aico.data.schema import default_registry
from aico.data.store import DataStore
from aico.errors import (
    AicoError,
    DatabaseCorrupted,
    InvalidInput,
    KeyFileError,
    NotFound,
    StorageError,
    WrongPassphrase,
)
from aico.layout import DataDir
from aico.locking import DirLock
from aico.operations import ledger
from aico.operations.backup import (
    KEY_ENTRY,
    BackupInfo,
    OpenedBackup,
    ProgressCallback,
    list_backups,
    open_backup,
    read_files,
)
from aico.security import KeyFile, MasterKey, Purpose

if TYPE_CHECKING:
    from aico.ai.embeddings import Encoder

__all__ = ["RestoreReport", "restore_backup"]

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


@dataclass(frozen=True)
class RestoreReport:
    """What a restore did.

    ``replaced``: where the previous data dir was kept (``keep_replaced``), else None.
    ``forgets_reapplied``: forgets of the current ledger applied again to the restored data;
    ``ledger_rows_carried``: rows copied into the restored ledger. ``index_rebuild_pending``:
    the Chroma index is rebuilt from libSQL after the first open (see the module docstring).
    """

    backup: BackupInfo
    data_dir: Path
    replaced: Path | None
    files: tuple[str, ...]
    raw_bytes: int
    forgets_reapplied: int
    ledger_rows_carried: int
    index_rebuild_pending: bool
    total_s: float


def restore_backup(
    archive: str | os.PathLike[str],
    passphrase: str,
    *,
    data_dir: str | os.PathLike[str] | DataDir,
    to: str | os.PathLike[str] | None = None,
    config: Config | None = None,
    current_passphrase: str | None = None,
    encoder: Encoder | None = None,
    keep_replaced: bool = False,
    ignore_ledger: bool = False,
    rebuild_index: bool = False,
    progress: ProgressCallback | None = None,
) -> RestoreReport:
    """Restore ``archive`` over ``data_dir`` (or into the new directory ``to``).

    ``passphrase`` is the one the backup was made under; ``current_passphrase`` (default:
    the same) unlocks the current data dir to read its forget ledger. ``encoder`` is needed
    only when forgets must be re-applied (default: the configured one). ``ignore_ledger``
    restores even when the current ledger cannot be read: users forgotten after the backup
    then come back. ``rebuild_index`` rebuilds the Chroma index in the staged copy before
    the swap (the restore takes that much longer; the first open then serves at once, see
    the module docstring). See the module docstring for the steps and what a failure leaves.
    """
    started = time.perf_counter()
    config = config or load_config()
    archive = Path(archive)
    current = DataDir.of(data_dir)
    target = DataDir(to) if to is not None else current
    in_place = target.root.absolute() == current.root.absolute()
    with open_backup(archive, passphrase) as opened:
        is_data_dir = _is_data_dir(current)
        current_master: MasterKey | None = None
        unreadable: AicoError | None = None
        if current.key_file.exists():
            try:
                current_master = _unlock_current(current, opened, current_passphrase or passphrase)
            except KeyFileError as exc:  # damaged: what a restore is for (WrongPassphrase is not)
                unreadable = exc
        elif is_data_dir:
            unreadable = KeyFileError(f"no key file at {current.key_file}")
        if in_place and not is_data_dir and _non_empty(current.root):
            raise InvalidInput(f"{current.root} is not empty and is not a data dir")
        if not in_place and _non_empty(target.root):
            raise InvalidInput(f"restore target {target.root} exists and is not empty")
        swap = in_place and is_data_dir
        hold = DirLock(current) if swap else None
        with contextlib.ExitStack() as stack:
            if hold is not None:
                stack.callback(hold.release)
                stack.enter_context(hold.exclusive())
            rows = (
                _refuse_unless(ignore_ledger, current, unreadable)
                if unreadable is not None
                else _current_ledger(current, current_master, config, ignore_ledger)
            )
            staging, lock_fd = _new_staging(target.root)
            try:
                names = _unpack(opened, staging, progress)
                result = _finish_staging(
                    staging, opened.master, current_master, rows, config, encoder, rebuild_index
                )
                if swap:
                    _link_backups(current.backups, staging / "backups")
                _fsync_tree(staging)
                replaced = _swap(target.root, staging, swap=swap, keep_replaced=keep_replaced)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            finally:
                _drop_staging_lock(staging, lock_fd)
        raw_bytes = sum(int(f["size"]) for f in opened.manifest["files"])
        info = BackupInfo(
            str(opened.manifest.get("backup_id", archive.stem)),
            archive,
            float(opened.manifest.get("created_at", 0.0)),
            archive.stat().st_size if archive.exists() else 0,
        )
    return RestoreReport(
        backup=info,
        data_dir=target.root,
        replaced=replaced,
        files=tuple(names),
        raw_bytes=raw_bytes,
        forgets_reapplied=result[0],
        ledger_rows_carried=result[1],
        index_rebuild_pending=result[2],
        total_s=time.perf_counter() - started,
    )


# ---- before anything is written --------------------------------------------------------------


def _non_empty(path: Path) -> bool:
    try:
        return any(path.iterdir())
    except FileNotFoundError:
        return False
    except NotADirectoryError:
        return True


def _is_data_dir(layout: DataDir) -> bool:
    """A key file or a databases directory: what a restore in place may replace."""
    return layout.key_file.exists() or (layout.root / "db").is_dir()


def _unlock_current(current: DataDir, opened: OpenedBackup, passphrase: str) -> MasterKey:
    """The current data dir's master key (its key file exists)."""
    key_file = KeyFile.load(current.key_file)
    if key_file.key_id == opened.master.key_id:
        return opened.master  # same key: no second Argon2 run
    try:
        return KeyFile.unlock(current.key_file, passphrase)
    except WrongPassphrase:
        raise WrongPassphrase("wrong passphrase for the current data dir") from None


def _current_ledger(
    current: DataDir, master: MasterKey | None, config: Config, ignore: bool
) -> list[ledger.LedgerRow]:
    """The current data dir's forget ledger (empty when there is no data dir there)."""
    if master is None:
        return []
    path = current.database("conversations")
    try:
        if not path.exists():
            raise NotFound(f"{path} does not exist")
        conn = EncryptedLibSQLConnection(
            path,
            master.subkey(Purpose.libsql("conversations")),
            settings=SQLiteSettings.from_mapping(config.section("storage.sqlite")),
            seal_key=master.subkey(Purpose.seal("conversations"))
            if config.get("storage.integrity_seal")
            else None,
            readonly=True,
            store="conversations",
            key_verified=True,
        )
        try:
            tables = conn.fetch_value(
                "SELECT count(*) FROM sqlite_master WHERE name = 'forget_ledger'"
            )
            return ledger.read_ledger(conn) if tables else []
        finally:
            conn.close()
    except AicoError as exc:
        return _refuse_unless(ignore, current, exc)


def _refuse_unless(ignore: bool, current: DataDir, exc: AicoError) -> list[ledger.LedgerRow]:
    """No ledger to apply if ``ignore``; otherwise the refusal that says how to go on."""
    if ignore:
        return []
    raise StorageError(
        f"cannot read the forget ledger of {current.root} ({type(exc).__name__}): a "
        "restore would bring back users forgotten since the backup. Repair the "
        "conversations database (or its key file), or restore anyway with ignore_ledger "
        "('aico backup restore --ignore-ledger')"
    ) from exc


# ---- staging ---------------------------------------------------------------------------------


def _staging_lock_path(staging: Path) -> Path:
    return staging.with_name(staging.name + ".lock")


def _new_staging(root: Path) -> tuple[Path, int]:
    """A fresh staging directory beside ``root`` (same file system), locked while in use.

    Abandoned ones (a killed restore's: their lock is free) are deleted first.
    """
    parent = root.absolute().parent
    parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    prefix = f".{root.name}.restore-"
    for old in parent.glob(prefix + "*"):
        if old.name.endswith(".lock") or not old.is_dir():
            continue
        _remove_if_abandoned(old)
    staging = parent / f"{prefix}{secrets.token_hex(6)}"
    lock = _staging_lock_path(staging)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    staging.mkdir(mode=0o700)
    return staging, fd


def _remove_if_abandoned(staging: Path) -> None:
    lock = _staging_lock_path(staging)
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError:
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return  # another restore is using it
        shutil.rmtree(staging, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()
    finally:
        os.close(fd)


def _drop_staging_lock(staging: Path, fd: int) -> None:
    with contextlib.suppress(FileNotFoundError):
        _staging_lock_path(staging).unlink()
    os.close(fd)


class _SyncedFile:
    """A new 0600 file that is fsynced when closed."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._fh: IO[bytes] = open(  # noqa: SIM115  (closed by close())
            os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb"
        )

    def write(self, data: bytes) -> int:
        return self._fh.write(data)

    def close(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()


def _unpack(opened: OpenedBackup, staging: Path, progress: ProgressCallback | None) -> list[str]:
    def sink(name: str) -> _SyncedFile:
        # read_files only yields names the manifest check allowed (no absolute, no "..").
        return _SyncedFile(staging / name)

    names = read_files(opened, sink, progress=progress)
    if KEY_ENTRY not in names:  # pragma: no cover - the manifest check requires it
        raise InvalidInput("the backup holds no key file")
    return names


def _finish_staging(
    staging: Path,
    master: MasterKey,
    current_master: MasterKey | None,
    rows: list[ledger.LedgerRow],
    config: Config,
    encoder: Encoder | None,
    rebuild_index: bool,
) -> tuple[int, int, bool]:
    """Verify the staged data dir, re-apply the ledger; (forgets, rows carried, rebuild)."""
    from aico.ai.memory import key_rotation

    store = DataStore.from_config(
        staging,
        master,
        config,
        registry=default_registry,
        rotation_steps=key_rotation.ROTATION_STEPS,
    )
    try:
        _verify_staged(store)
        forgets: list[ledger.Forget] = []
        unmatched = rows
        if rows:
            restored = ledger.restored_ids(
                store.connection("core"),
                store.connection("conversations"),
                messages=any(r.grain == "message" for r in rows),
            )
            keys = [k for k in (current_master, master) if k is not None]
            forgets, unmatched = ledger.match_ledger(rows, restored, keys=keys)
        semantic_in_use = bool(
            store.connection("core").fetch_value(
                "SELECT count(*) FROM sqlite_master WHERE name = 'semantic_model'"
            )
        )
        if not forgets:
            carried = _carry(store, unmatched)
            if semantic_in_use and rebuild_index:
                _rebuild_index(store, config, encoder)
                return 0, carried, False
            store.close()
            if semantic_in_use and config.section("memory.semantic")["chroma_url"]:
                _write_marker(DataDir(staging).index_rebuild_marker, master.key_id)
            return 0, carried, semantic_in_use
        applied, carried = _reapply(store, forgets, unmatched, config, encoder)
        return applied, carried, False
    finally:
        store.close()


def _carry(store: DataStore, rows: list[ledger.LedgerRow]) -> int:
    if not rows:
        return 0
    return ledger.carry_over(
        store.connection("conversations"), rows, restored_key=store.master_key, now=time.time()
    )


def _rebuild_index(store: DataStore, config: Config, encoder: Encoder | None) -> None:
    """The Chroma index of the staged copy, rebuilt from its libSQL vectors before the swap."""
    from aico.ai.memory.stores import configured_encoder, open_semantic
    from aico.ai.memory.upgrade import upgrade_store

    upgrade_store(store)
    semantic = open_semantic(store, config, encoder or configured_encoder(config))
    try:
        semantic.rebuild()
    finally:
        semantic.close()


def _reapply(
    store: DataStore,
    forgets: list[ledger.Forget],
    unmatched: list[ledger.LedgerRow],
    config: Config,
    encoder: Encoder | None,
) -> tuple[int, int]:
    """Forget again, in the staged copy, what the current ledger says was forgotten.

    Through the coordinator's own ``forget``: every store is cleaned as by the original,
    and each forget records its own ledger row. The Chroma index starts empty here, so its
    purge (a rebuild from libSQL) leaves it complete.
    """
    from aico.ai.memory import MemoryManager
    from aico.ai.memory.stores import configured_encoder
    from aico.ai.memory.upgrade import upgrade_store

    upgrade_store(store)
    manager = MemoryManager.from_store(
        store, config=config, encoder=encoder or configured_encoder(config)
    )
    try:
        applied = 0
        for forget in forgets:
            try:
                manager.forget(
                    forget.user_id,
                    conversation_id=forget.conversation_id,
                    message_id=forget.message_id,
                )
            except NotFound:
                continue  # already gone with a whole user forgotten before it
            applied += 1
        carried = _carry(store, unmatched)
    finally:
        manager.close()
    return applied, carried


def _verify_staged(store: DataStore) -> None:
    """Every restored database opens with the key and passes integrity and schema checks."""
    for name, path in store.databases.items():
        if not path.exists():
            continue
        check = store.connection(name).fetch_all("PRAGMA integrity_check")
        if [next(iter(r.values())) for r in check] != ["ok"]:
            raise DatabaseCorrupted(
                f"the backup's copy of database {name!r} fails PRAGMA integrity_check; "
                "restore another backup",
                path=path,
                store=name,
            )
    store.verify()


def _write_marker(path: Path, key_id: str) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, f"rebuild the Chroma index under master key {key_id}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def _link_backups(source: Path, dest: Path) -> None:
    """The current data dir's archives, hard-linked (no copy) into the staged one."""
    if not source.is_dir():
        return
    for archive in list_backups(source):
        dest.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            os.link(archive.path, dest / archive.path.name)
        except OSError:
            shutil.copy2(archive.path, dest / archive.path.name)


def _fsync_tree(root: Path) -> None:
    """Make every directory entry under ``root`` durable (files were fsynced as written)."""
    for directory, _dirs, _files in os.walk(root):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# ---- the swap --------------------------------------------------------------------------------


def _exchange(a: Path, b: Path) -> bool:
    """Swap two directories in one step; False where the OS or file system cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p]
    renameat2.argtypes.append(ctypes.c_uint)
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(a))


def _swap(root: Path, staging: Path, *, swap: bool, keep_replaced: bool) -> Path | None:
    """Put ``staging`` at ``root``; the previous data dir is deleted or kept aside."""
    parent = root.absolute().parent
    if not swap:
        with contextlib.suppress(FileNotFoundError):
            root.rmdir()  # an empty directory given as the target
        os.rename(staging, root)
        _fsync_dir(parent)
        return None
    if not _exchange(root, staging):
        # No atomic exchange here: two renames; a crash between them leaves the old data
        # dir at staging's name, which docs/operations.md says how to move back.
        aside = parent / f".{root.name}.replaced-{secrets.token_hex(6)}"
        os.rename(root, aside)
        os.rename(staging, root)
        staging = aside
    _fsync_dir(parent)
    if keep_replaced:
        kept = parent / f"{root.name}.replaced-{time.strftime('%Y%m%dT%H%M%S')}"
        os.rename(staging, kept)
        _fsync_dir(parent)
        return kept
    shutil.rmtree(staging, ignore_errors=True)
    return None


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
