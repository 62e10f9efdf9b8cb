"""Encrypted backups of a data dir: create, list, verify, prune, schedule.

**What a backup holds.** The key file (``keys/master.key``, wrapped under the passphrase as
on disk) and every libSQL database with its WAL: the source of truth. Working memory (LMDB)
is left out: it is a cache of the log's last day, refilled from the log by the first open
after a restore. The Chroma index is left out: it is derived, and a copy taken while a
writer runs would not match the databases; after a restore it is rebuilt from the libSQL
vectors (no re-embedding), in the background of the first open (``restore``).
docs/operations.md has the measurements behind both choices.

**One consistent snapshot while writers run.** ``VACUUM INTO`` is no option: this libSQL
build writes its output *unencrypted* (measured; docs/operations.md), and the driver has no
backup API. So each database's WAL is checkpointed, then the write lock of *every* database
is taken at once (in layout order: core, conversations, sessions, knowledge, file_index) and
the encrypted files are copied as they are: the copy is the state a crash at that instant
would leave, which the repair on open already handles (a consolidation claimed in the log
whose segments are not in the core database yet, for instance). Readers go on; writers wait
for the copy (a file copy, no encryption work). The copy is made by a child process: closing
a descriptor of a database file in this process would drop SQLite's POSIX locks on it.

**The archive** (``archive``): one file, ``<backup dir>/<id>.aicobak``, encrypted as a whole
under ``master.subkey("backup/archive")`` and the archive's random salt, in AES-256-GCM
chunks. Inside: a manifest (format version, created at, key id, schema versions, every file
with its size and HMAC-SHA256 under ``master.subkey("backup/checksum")``), the key file and
the database files, each zstandard-compressed when at least ``compression_threshold`` bytes.

**Retention**: after each backup, archives older than ``backup_retain_days`` and beyond the
newest ``backup_max_count`` are deleted; the newest archive is never deleted.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from aico.config import Config, load_config
from aico.data.store import DataStore
from aico.errors import ConfigError, IntegrityError, InvalidInput, NotFound, ReadOnly
from aico.layout import DATABASE_FILES, DataDir
from aico.operations._durations import parse_duration
from aico.operations.archive import (
    ArchiveHeader,
    PayloadReader,
    PayloadWriter,
    SealedReader,
    SealedWriter,
    derive_archive_key,
    new_header,
    read_header,
)
from aico.security import KeyFile, MasterKey

__all__ = [
    "BACKUP_FORMAT",
    "BACKUP_SUFFIX",
    "BackupInfo",
    "BackupReport",
    "BackupSettings",
    "OpenedBackup",
    "ProgressCallback",
    "Sink",
    "VerifyReport",
    "backup_directory",
    "backup_due",
    "create_backup",
    "find_backup",
    "list_backups",
    "open_backup",
    "prune_backups",
    "read_files",
    "run_scheduled_backup",
    "verify_backup",
]

BACKUP_FORMAT = 1
BACKUP_SUFFIX = ".aicobak"
MANIFEST = "manifest.json"
KEY_ENTRY = "keys/master.key"
ARCHIVE_PURPOSE = "backup/archive"
CHECKSUM_PURPOSE = "backup/checksum"
_ID = re.compile(r"(\d{8}T\d{6}Z)-([0-9a-f]{6})")
_PARTIAL = ".partial"
_SCRATCH = ".snapshot-"

ProgressCallback = Callable[[int, int], None]
"""``progress(done, total)`` in bytes, called as the work advances."""


@dataclass(frozen=True)
class BackupSettings:
    """``[storage.backup]``, checked: every key honoured (docs/operations.md)."""

    backup_dir: str = ""
    backup_interval_s: float = 86_400.0
    backup_retain_days: int = 30
    backup_max_count: int = 10
    compression_threshold: int = 65_536

    @classmethod
    def from_config(cls, config: Config) -> BackupSettings:
        where = "storage.backup"
        section = config.section(where)
        for name in ("backup_retain_days", "backup_max_count", "compression_threshold"):
            value = section[name]
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"{where}.{name} must be a whole number >= 0 (0: no limit)")
        return cls(
            backup_dir=str(section["backup_dir"]),
            backup_interval_s=parse_duration(
                section["backup_interval"], f"{where}.backup_interval"
            ),
            backup_retain_days=section["backup_retain_days"],
            backup_max_count=section["backup_max_count"],
            compression_threshold=section["compression_threshold"],
        )


@dataclass(frozen=True)
class BackupInfo:
    """An archive on disk, as ``list_backups`` sees it without any passphrase."""

    id: str
    path: Path
    created_at: float
    size: int

    @property
    def created_iso(self) -> str:
        return datetime.fromtimestamp(self.created_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class BackupReport:
    """What ``create_backup`` wrote: the archive, its files, bytes in and out, and time."""

    info: BackupInfo
    files: tuple[str, ...]
    raw_bytes: int
    archive_bytes: int
    snapshot_s: float
    total_s: float
    pruned: tuple[BackupInfo, ...] = ()


@dataclass(frozen=True)
class VerifyReport:
    """What ``verify_backup`` checked (every file's size and keyed checksum)."""

    info: BackupInfo
    key_id: str
    created_at: float
    schemas: Mapping[str, Mapping[str, int]]
    files: tuple[str, ...]
    raw_bytes: int
    manifest: Mapping[str, Any] = field(repr=False, default_factory=dict)


# ---- where backups live --------------------------------------------------------------------


def backup_directory(layout: DataDir | str | os.PathLike[str], config: Config | None) -> Path:
    """``[storage.backup] backup_dir``, else ``<data dir>/backups``."""
    layout = DataDir.of(layout)
    configured = BackupSettings.from_config(config).backup_dir if config is not None else ""
    return Path(configured).expanduser() if configured else layout.backups


def _new_id(now: float) -> str:
    stamp = datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{secrets.token_hex(3)}"


def _created_of(backup_id: str) -> float | None:
    match = _ID.fullmatch(backup_id)
    if match is None:
        return None
    return datetime.strptime(match.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()


def list_backups(directory: str | os.PathLike[str]) -> list[BackupInfo]:
    """The archives in ``directory``, newest first (read-only; needs no passphrase)."""
    directory = Path(directory)
    found: list[tuple[tuple[float, int, str], BackupInfo]] = []
    try:
        names = list(directory.iterdir())
    except FileNotFoundError:
        return []
    for path in names:
        if path.suffix != BACKUP_SUFFIX or not path.is_file():
            continue
        created = _created_of(path.stem)
        if created is None:
            continue
        with contextlib.suppress(FileNotFoundError):
            st = path.stat()
            # Ids have whole seconds: within one, the later-written archive is the newer.
            order = (created, st.st_mtime_ns, path.stem)
            found.append((order, BackupInfo(path.stem, path, created, st.st_size)))
    return [info for _, info in sorted(found, key=lambda item: item[0], reverse=True)]


def find_backup(directory: str | os.PathLike[str], which: str | os.PathLike[str]) -> Path:
    """An archive by id (in ``directory``), by ``latest``, or by path."""
    text = str(which)
    if text == "latest":
        found = list_backups(directory)
        if not found:
            raise NotFound(f"there is no backup in {directory}")
        return found[0].path
    if _ID.fullmatch(text):
        path = Path(directory) / (text + BACKUP_SUFFIX)
        if path.is_file():
            return path
        raise NotFound(f"there is no backup {text} in {directory}")
    path = Path(which)
    if path.is_file():
        return path
    raise NotFound(f"no backup named {text!r}: give an id from 'aico backup list' or a path")


def _info_of(path: Path) -> BackupInfo:
    created = _created_of(path.stem)
    if created is None:
        created = path.stat().st_mtime
    return BackupInfo(path.stem, path, created, path.stat().st_size)


# ---- create -------------------------------------------------------------------------------


_COPY_CHILD = r"""
import json, os, shutil, sys
out = []
for src, dst in json.loads(sys.argv[1]):
    try:
        fin = open(src, "rb")
    except FileNotFoundError:
        out.append(-1)
        continue
    with fin, open(os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as fout:
        try:  # in the kernel (a clone where the file system can), else through this process
            while os.copy_file_range(fin.fileno(), fout.fileno(), 1 << 30):
                pass
        except (AttributeError, OSError):
            shutil.copyfileobj(fin, fout, 1 << 20)  # both offsets are where the copy stopped
        fout.flush()
        os.fsync(fout.fileno())
        out.append(fout.tell())
print(json.dumps(out))
"""


def _copy_in_child(pairs: list[tuple[Path, Path]]) -> list[int]:
    """Copy files in a child process; sizes copied (-1: the source did not exist).

    A child, because this process has the databases open through SQLite, and POSIX drops
    every lock a process holds on a file when *any* of its descriptors of it is closed.
    """
    result = subprocess.run(
        [sys.executable, "-c", _COPY_CHILD, json.dumps([[str(a), str(b)] for a, b in pairs])],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no detail"])[-1]
        raise OSError(f"copying the databases failed: {last}")
    sizes: list[int] = json.loads(result.stdout)
    return sizes


@contextlib.contextmanager
def _all_write_locks(store: DataStore, names: list[str]) -> Iterator[None]:
    """Every named database's write lock at once, taken in layout order."""
    with contextlib.ExitStack() as stack:
        for name in names:
            stack.enter_context(store.connection(name).transaction())
        yield


def _snapshot(store: DataStore, target: Path) -> tuple[list[tuple[str, Path]], float]:
    """Copy every database (and its WAL) into ``target``; returns (name, copy) pairs."""
    names = [n for n in DATABASE_FILES if store.path_of(n).exists()]
    for name in names:
        # Best effort: a reader holding the WAL only means the WAL is copied too.
        store.connection(name).checkpoint("TRUNCATE")
    pairs: list[tuple[str, Path, Path]] = []
    for name in names:
        rel = DATABASE_FILES[name]
        src = store.path_of(name)
        for suffix in ("", "-wal"):
            copy = target / f"{name}{suffix or '.db'}"
            pairs.append((rel + suffix, src.with_name(src.name + suffix), copy))
    started = time.perf_counter()
    with _all_write_locks(store, names):
        sizes = _copy_in_child([(src, copy) for _, src, copy in pairs])
    held = time.perf_counter() - started
    copied = []
    for (rel, _, copy), size in zip(pairs, sizes, strict=True):
        if size > 0:
            copied.append((rel, copy))
        elif size == 0:
            copy.unlink()  # an empty WAL carries nothing
    return copied, held


def _hmac_file(key: bytes, path: Path) -> str:
    mac = hmac.new(key, digestmod=hashlib.sha256)
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            mac.update(block)
    return mac.hexdigest()


def _schema_versions(store: DataStore) -> dict[str, dict[str, int]]:
    return {
        status.database: {s.schema: s.current for s in status.schemas}
        for status in store.status()
        if status.exists
    }


def create_backup(
    store: DataStore,
    *,
    config: Config | None = None,
    directory: str | os.PathLike[str] | None = None,
    progress: ProgressCallback | None = None,
    prune: bool = True,
    clock: Callable[[], float] = time.time,
) -> BackupReport:
    """Take one consistent, encrypted backup of ``store``'s data dir (see the module doc).

    ``directory`` defaults to ``backup_directory``. The archive appears complete or not at
    all (written as ``.partial``, fsynced, renamed). ``prune`` applies the retention of
    ``[storage.backup]`` afterwards. Needs a writable store: the snapshot takes the write
    locks.
    """
    if store.read_only:
        raise ReadOnly("a backup takes the databases' write locks: open the store writable")
    config = config or load_config()
    settings = BackupSettings.from_config(config)
    layout = store.layout
    dest = Path(directory) if directory is not None else backup_directory(layout, config)
    started = time.perf_counter()
    now = clock()
    backup_id = _new_id(now)
    master = store.master_key
    key_file = KeyFile.load(layout.key_file)
    if key_file.rotation_pending:
        raise InvalidInput("a master-key rotation is unfinished: run 'aico keys rotate' first")
    _private_dir(dest)
    _private_dir(layout.backups)
    _remove_leftovers(dest, layout.backups)
    scratch = layout.backups / f"{_SCRATCH}{backup_id}"
    partial = dest / f"{backup_id}{BACKUP_SUFFIX}{_PARTIAL}"
    final = dest / f"{backup_id}{BACKUP_SUFFIX}"
    # Created first and locked until the end: a lockable one is a dead backup's (see below).
    fh = open(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")  # noqa: SIM115
    fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
    try:
        scratch.mkdir(mode=0o700)
        copied, held = _snapshot(store, scratch)
        checksum_key = master.subkey(CHECKSUM_PURPOSE)
        key_bytes = layout.key_file.read_bytes()
        files: list[dict[str, Any]] = [
            {"name": KEY_ENTRY, "size": len(key_bytes), "hmac": _hmac(checksum_key, key_bytes)}
        ]
        for rel, copy in copied:
            size = copy.stat().st_size
            files.append({"name": rel, "size": size, "hmac": _hmac_file(checksum_key, copy)})
        manifest = {
            "format": BACKUP_FORMAT,
            "kind": "aico-backup",
            "backup_id": backup_id,
            "created_at": now,
            "key_id": master.key_id,
            "schemas": _schema_versions(store),
            "files": files,
            "left_out": {
                "memory/working": "working memory: a cache, refilled from the log on open",
                "memory/semantic/chroma": "the dense index: rebuilt from libSQL on open",
            },
        }
        raw_total = sum(int(f["size"]) for f in files)
        done = 0

        def advance(n: int) -> None:
            nonlocal done
            done += n
            if progress is not None:
                progress(done, raw_total)

        header, key = new_header(
            "backup",
            {"key_file": key_bytes.decode("utf-8")},
            lambda salt: master.subkey(ARCHIVE_PURPOSE),
        )
        sealed = SealedWriter(fh, key, header)
        payload = PayloadWriter(sealed, compression_threshold=settings.compression_threshold)
        payload.add_bytes(MANIFEST, json.dumps(manifest, sort_keys=True).encode("utf-8"))
        payload.add_bytes(KEY_ENTRY, key_bytes, progress=advance)
        for rel, copy in copied:
            with open(copy, "rb") as src:
                payload.add_file(rel, src, copy.stat().st_size, progress=advance)
        payload.end()
        fh.flush()
        os.fsync(fh.fileno())
        os.replace(partial, final)
        _fsync_dir(dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        fh.close()
    info = _info_of(final)
    pruned: tuple[BackupInfo, ...] = ()
    if prune:
        pruned = tuple(
            prune_backups(
                dest,
                retain_days=settings.backup_retain_days,
                max_count=settings.backup_max_count,
                now=now,
            )
        )
    return BackupReport(
        info=info,
        files=tuple(str(f["name"]) for f in files),
        raw_bytes=raw_total,
        archive_bytes=info.size,
        snapshot_s=held,
        total_s=time.perf_counter() - started,
        pruned=pruned,
    )


def _remove_leftovers(dest: Path, scratch_parent: Path) -> None:
    """Delete what killed backups left: their ``.partial`` archive and snapshot copy.

    A backup holds its ``.partial`` locked from before its snapshot until it is renamed,
    so a ``.partial`` that can be locked belongs to a dead process; a snapshot directory
    whose ``.partial`` is gone, to one that died after the rename. Both hold only
    encrypted bytes; they are deleted because they can be as large as the data dir.
    """
    for partial in dest.glob(f"*{BACKUP_SUFFIX}{_PARTIAL}"):
        try:
            fd = os.open(partial, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # a backup in progress
        finally:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    for scratch in scratch_parent.glob(f"{_SCRATCH}*"):
        backup_id = scratch.name[len(_SCRATCH) :]
        if not (dest / f"{backup_id}{BACKUP_SUFFIX}{_PARTIAL}").exists():
            shutil.rmtree(scratch, ignore_errors=True)


def _hmac(key: bytes, data: bytes) -> str:
    return hmac.new(key, data, hashlib.sha256).hexdigest()


def _private_dir(path: Path) -> None:
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ReadOnly(f"cannot create the backup directory {path}: {exc.strerror}") from None


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---- reading an archive --------------------------------------------------------------------


@dataclass
class OpenedBackup:
    """An archive whose key is known: its header, master key and decrypting reader."""

    header: ArchiveHeader
    master: MasterKey
    key_file: bytes
    payload: PayloadReader
    sealed: SealedReader
    manifest: dict[str, Any]


def _unlock_key_file(key_file: bytes, passphrase: str) -> MasterKey:
    """Unwrap a key file held in memory (``WrongPassphrase`` if it does not unwrap)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="aico-key-") as tmp:
        path = Path(tmp) / "master.key"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with open(fd, "wb") as fh:
            fh.write(key_file)
        return KeyFile.unlock(path, passphrase)


@contextlib.contextmanager
def open_backup(path: str | os.PathLike[str], passphrase: str) -> Iterator[OpenedBackup]:
    """Open an archive for reading; the passphrase is checked before any chunk is read.

    ``WrongPassphrase`` if the archive's key file does not unwrap with ``passphrase``;
    ``IntegrityError`` for a damaged archive; ``InvalidInput`` for a file that is not a
    backup. The manifest (the first entry) is read and checked here.
    """
    path = Path(path)
    with open(path, "rb") as fh:
        header = read_header(fh, name=path.name)
        if header.kind != "backup":
            raise InvalidInput(f"{path.name} is not a backup (it is an aico {header.kind})")
        try:
            key_file = str(header.source["key_file"]).encode("utf-8")
        except KeyError:
            raise IntegrityError(f"{path.name}: the archive's header is malformed") from None
        master = _unlock_key_file(key_file, passphrase)
        key = derive_archive_key(master.subkey(ARCHIVE_PURPOSE), header.salt)
        sealed = SealedReader(fh, key, header, name=path.name)
        payload = PayloadReader(sealed)
        first = payload.next_entry()
        if first is None or first.name != MANIFEST:
            raise IntegrityError(f"{path.name} is damaged or was altered (no manifest)")
        manifest = _parse_manifest(first.read_all(), path.name)
        yield OpenedBackup(header, master, key_file, payload, sealed, manifest)


def _parse_manifest(raw: bytes, name: str) -> dict[str, Any]:
    try:
        manifest = json.loads(raw)
        version = manifest["format"]
        files = manifest["files"]
        if not isinstance(files, list) or not all(
            isinstance(f, dict) and {"name", "size", "hmac"} <= f.keys() for f in files
        ):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise IntegrityError(f"{name}: the manifest is malformed") from None
    if type(version) is not int or version > BACKUP_FORMAT:
        raise InvalidInput(f"{name} has backup format {version!r}; this aico reads up to 1")
    allowed = {KEY_ENTRY} | {rel + s for rel in DATABASE_FILES.values() for s in ("", "-wal")}
    names = [str(f["name"]) for f in files]
    if len(set(names)) != len(names) or not set(names) <= allowed or KEY_ENTRY not in names:
        raise IntegrityError(f"{name}: the manifest lists unexpected files")
    return dict(manifest)


class Sink(Protocol):
    """Where ``read_files`` writes one file: ``write`` each block, then ``close``."""

    def write(self, data: bytes, /) -> object: ...

    def close(self) -> None: ...


def read_files(
    opened: OpenedBackup,
    sink: Callable[[str], Sink | None],
    *,
    progress: ProgressCallback | None = None,
) -> list[str]:
    """Read every file after the manifest, checking each against it; returns their names.

    ``sink(name)`` gives where to write the file's bytes (None: check only); it is closed
    after the file's last block, before its checksum is compared (a caller that must not
    keep a file failing its checksum deletes what it wrote when this raises). Every size
    and HMAC must match, every listed file must be there and no other, in manifest order.
    Names are only ever the manifest's, which ``open_backup`` restricted to the layout's.
    """
    files = opened.manifest["files"]
    total = sum(int(f["size"]) for f in files)
    checksum_key = opened.master.subkey(CHECKSUM_PURPOSE)
    done = 0
    seen: list[str] = []
    for expected in files:
        entry = opened.payload.next_entry()
        if entry is None or entry.name != expected["name"] or entry.size != expected["size"]:
            raise IntegrityError("the backup does not match its manifest (a file is missing)")
        out = sink(entry.name)
        mac = hmac.new(checksum_key, digestmod=hashlib.sha256)
        try:
            for block in entry.blocks():
                mac.update(block)
                if out is not None:
                    out.write(block)
                done += len(block)
                if progress is not None:
                    progress(done, total)
        finally:
            if out is not None:
                out.close()
        if not hmac.compare_digest(mac.hexdigest(), str(expected["hmac"])):
            raise IntegrityError(f"the backup's copy of {entry.name} fails its checksum")
        if entry.name == KEY_ENTRY and not hmac.compare_digest(
            _hmac(checksum_key, opened.key_file), str(expected["hmac"])
        ):
            raise IntegrityError("the backup's key file does not match its header")
        seen.append(entry.name)
    if opened.payload.next_entry() is not None:
        raise IntegrityError("the backup holds files its manifest does not list")
    return seen


def verify_backup(
    path: str | os.PathLike[str],
    passphrase: str,
    *,
    progress: ProgressCallback | None = None,
) -> VerifyReport:
    """Decrypt and check the whole archive without restoring anything.

    Checks every chunk's tag (so every byte), the manifest, each file's size and keyed
    checksum, and that the archive ends where it should. Writes nothing.
    """
    path = Path(path)
    with open_backup(path, passphrase) as opened:
        names = read_files(opened, lambda name: None, progress=progress)
        manifest = opened.manifest
    return VerifyReport(
        info=_info_of(path),
        key_id=str(manifest.get("key_id", "")),
        created_at=float(manifest.get("created_at", 0.0)),
        schemas=manifest.get("schemas", {}),
        files=tuple(names),
        raw_bytes=sum(int(f["size"]) for f in manifest["files"]),
        manifest=manifest,
    )


# ---- retention and schedule ----------------------------------------------------------------


def prune_backups(
    directory: str | os.PathLike[str],
    *,
    retain_days: int,
    max_count: int,
    now: float | None = None,
    dry_run: bool = False,
) -> list[BackupInfo]:
    """Delete archives older than ``retain_days`` or beyond the newest ``max_count``.

    0 turns either limit off. The newest archive always stays, whatever its age. Returns
    what was (``dry_run``: would be) deleted, oldest last.
    """
    now = time.time() if now is None else now
    found = list_backups(directory)
    doomed = []
    for rank, info in enumerate(found):
        if rank == 0:
            continue
        too_old = retain_days > 0 and now - info.created_at > retain_days * 86_400.0
        too_many = max_count > 0 and rank >= max_count
        if too_old or too_many:
            doomed.append(info)
    if not dry_run:
        for info in doomed:
            with contextlib.suppress(FileNotFoundError):
                info.path.unlink()
        if doomed:
            _fsync_dir(Path(directory))
    return doomed


def backup_due(directory: str | os.PathLike[str], interval_s: float, now: float) -> bool:
    """Whether the newest archive is older than ``interval_s`` (0: never due)."""
    if interval_s <= 0:
        return False
    found = list_backups(directory)
    return not found or now - found[0].created_at >= interval_s


def run_scheduled_backup(
    store: DataStore,
    config: Config,
    *,
    now: float | None = None,
    progress: ProgressCallback | None = None,
) -> BackupReport | None:
    """The scheduler's job: a backup if ``backup_interval`` has passed since the newest."""
    settings = BackupSettings.from_config(config)
    now = time.time() if now is None else now
    if not backup_due(backup_directory(store.layout, config), settings.backup_interval_s, now):
        return None
    return create_backup(store, config=config, progress=progress, clock=lambda: now)
