"""``WorkingMemoryStore``: a session's last 24 hours, sealed in LMDB. It touches LMDB only.

LMDB is a cache with a clock. Every value is AES-GCM sealed (``_seal``), every key is a keyed
hash plus big-endian numbers (``_keys``), expiry is exact (a read never returns an entry
whose time has passed, swept or not), and the sweeper walks an expiry index instead of the
data. The message log (libSQL) is the source of truth: the ``MemoryManager`` writes a
message there first and appends it here afterwards, and repairs this store *from* the log
after a crash (``has_message`` makes that replay idempotent). Nothing here writes libSQL.

Named databases of the one environment:

    meta       canary (sealed key check) and format version
    messages   H(session) ‖ created_us ‖ seq        → sealed message
    values     H(session) ‖ H(key)                  → sealed JSON value
    sessions   H(session)                           → sealed SessionRecord (expiry = max entry)
    by_user    H(user) ‖ H(session)                 → sealed session id
    expiry     expires_us ‖ tag ‖ record key        → empty
"""

from __future__ import annotations

import functools
import hmac
import logging
import math
import os
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from aico.ai.memory.working import _env
from aico.ai.memory.working._audit import WatchedSealer, audit_records
from aico.ai.memory.working._check import damaged
from aico.ai.memory.working._closeseal import derive_seal_key
from aico.ai.memory.working._codec import (
    SessionRecord,
    decode_message,
    decode_session,
    decode_value,
    encode_message,
    encode_session,
    encode_value,
)
from aico.ai.memory.working._env import SharedEnv
from aico.ai.memory.working._keys import (
    HASH_LEN,
    MAX_SEQ,
    TAG_MESSAGE,
    TAG_SESSION,
    TAG_VALUE,
    KeyHasher,
    expiry_key,
    message_created_us,
    message_key,
    split_expiry_key,
    split_message_key,
)
from aico.ai.memory.working._message import WorkingMessage
from aico.ai.memory.working._reseal import ResealReport, reseal_records
from aico.ai.memory.working._seal import NEVER, Sealer, expires_of
from aico.errors import (
    IntegrityError,
    InvalidInput,
    ReadOnly,
    StoreClosed,
    WrongPassphrase,
)
from aico.layout import DataDir
from aico.security import MasterKey, Purpose

if TYPE_CHECKING:
    from aico.config import Config

__all__ = ["DEFAULT_TTL_S", "WorkingMemoryStore"]

log = logging.getLogger(__name__)

DEFAULT_TTL_S: Final = 24 * 3600.0
DEFAULT_MAP_SIZE: Final = 64 * 1024 * 1024
DEFAULT_MAX_MAP_SIZE: Final = 16 * 1024**3
DEFAULT_MAX_VALUE_BYTES: Final = 1024 * 1024
_MAX_ID_CHARS: Final = 128
_MAX_ROLE_CHARS: Final = 32
_MAX_VALUE_KEY_CHARS: Final = 512
_SWEEP_BATCH: Final = 2000
_CANARY: Final = _env.CANARY
_FORMAT_KEY: Final = b"format"
_FORMAT: Final = b"1"

_M: Final = _env.DB_MESSAGES
_V: Final = _env.DB_VALUES
_S: Final = _env.DB_SESSIONS
_U: Final = _env.DB_BY_USER
_X: Final = _env.DB_EXPIRY
_META: Final = _env.DB_META
_TAG_DB: Final = {TAG_MESSAGE: _M, TAG_VALUE: _V, TAG_SESSION: _S}

# py-lmdb's stubs type every read as ``bytes | memoryview`` (it depends on ``buffers=``);
# this store never asks for buffers, so transactions are handled untyped and reads are bytes.
Txn = Any


def _check_id(value: object, what: str, limit: int = _MAX_ID_CHARS) -> str:
    # The message never echoes the value: ids can be personal.
    if not isinstance(value, str) or not 1 <= len(value) <= limit:
        raise InvalidInput(f"{what} must be a string of 1-{limit} characters")
    return value


def _check_count(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidInput(f"{what} must be a non-negative integer")
    return value


def _prefix_end(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key starting with ``prefix`` (None: no such key)."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes([stripped[-1] + 1])


class WorkingMemoryStore:
    """Sealed, expiring working memory over one shared LMDB environment.

    Keys: pass the ``MasterKey`` (the store derives ``Purpose.LMDB_VALUES`` and
    ``Purpose.LMDB_KEY_HASH``), or the two 32-byte subkeys explicitly (``values_key`` /
    ``key_hash_key``; an explicit one overrides the derived one). A key that does not match
    the one the store was created with raises ``WrongPassphrase`` before any entry is read.

    ``clock`` returns unix seconds and is used for every TTL decision.

    Durability: by default every commit is flushed to disk (LMDB's two ``fdatasync``: data
    pages, then the meta page). ``metasync=False`` keeps one flush per commit; an OS crash
    may then undo the last commit, never corrupt the file (the same promise as libSQL's
    ``synchronous=NORMAL``). ``sync=False`` flushes nothing; call ``flush()`` when it
    matters. All stores of a process share the environment; the first one's mode applies,
    and a later store that asks for more durability syncs after each of its own commits.

    Damage: opening checks the file first and raises ``WorkingMemoryCorrupted`` (never a
    signal) for a damaged environment, and so does any LMDB error that means damage later;
    ``quarantine_working`` moves it aside so that a fresh one can be opened (see ``_guard``).

    ``read_only=True`` opens an existing environment without writing it (nor its seal):
    every write raises ``ReadOnly``, ``refresh_on_read`` is ignored, and a directory the
    process cannot write is fine. A missing environment raises ``NotFound``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        master_key: MasterKey | None = None,
        *,
        values_key: bytes | None = None,
        key_hash_key: bytes | None = None,
        ttl: float = DEFAULT_TTL_S,
        clock: Callable[[], float] = time.time,
        max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
        map_size: int = DEFAULT_MAP_SIZE,
        max_map_size: int = DEFAULT_MAX_MAP_SIZE,
        sync: bool = True,
        metasync: bool = True,
        refresh_on_read: bool = False,
        read_only: bool = False,
    ) -> None:
        self._sealer, self._hasher, self._seal_key = self._keys(
            master_key, values_key, key_hash_key
        )
        self._ttl_us = self._ttl_to_us(ttl)
        self._clock = clock
        self._max_value_bytes = _check_count(max_value_bytes, "max_value_bytes")
        for name, size in (("map_size", map_size), ("max_map_size", max_map_size)):
            if _check_count(size, name) == 0:
                raise InvalidInput(f"{name} must be positive")
        self._map_size = map_size
        self._max_map_size = max_map_size
        self._sync = bool(sync)
        self._metasync = bool(metasync)
        self.refresh_on_read = bool(refresh_on_read)
        self._read_only = bool(read_only)
        self._path = Path(path)
        self._closed = False
        # Test seam: called right after each LMDB write commits (fault injection).
        self._after_lmdb_write: Callable[[str], None] | None = None
        self._open_env()

    # -- construction ----------------------------------------------------------------

    def _keys(
        self, master_key: MasterKey | None, values_key: bytes | None, key_hash_key: bytes | None
    ) -> tuple[Sealer, KeyHasher, bytes]:
        if master_key is not None and not isinstance(master_key, MasterKey):
            raise InvalidInput("master_key must be an aico.security.MasterKey")
        if values_key is None:
            if master_key is None:
                raise InvalidInput("pass a master_key or both values_key and key_hash_key")
            values_key = master_key.subkey(Purpose.LMDB_VALUES)
        if key_hash_key is None:
            if master_key is None:
                raise InvalidInput("pass a master_key or both values_key and key_hash_key")
            key_hash_key = master_key.subkey(Purpose.LMDB_KEY_HASH)
        if not isinstance(key_hash_key, bytes) or len(key_hash_key) != 32:
            raise InvalidInput("key_hash_key must be 32 bytes")
        sealer = WatchedSealer(values_key, self._saw_damage)
        return sealer, KeyHasher(key_hash_key), derive_seal_key(key_hash_key)

    @classmethod
    def rekey(cls, path: str | os.PathLike[str], old: MasterKey, new: MasterKey) -> ResealReport:
        """Move the store at ``path`` from ``old`` to ``new`` (master-key rotation); idempotent.

        A store that already opens with ``new`` is left alone, so a rotation resumed after
        a crash skips it; one that neither key opens raises ``WrongPassphrase`` and is not
        touched. A directory without a store is nothing to do. No other store may have the
        directory open meanwhile (it would keep writing under the old key).
        """
        if not (Path(path) / "data.mdb").exists():
            return ResealReport()
        try:
            with cls(path, new):
                return ResealReport(already_current=True)
        except WrongPassphrase:
            pass
        with cls(path, old) as store:
            return store.reseal(new)

    def reseal(
        self,
        master_key: MasterKey | None = None,
        *,
        values_key: bytes | None = None,
        key_hash_key: bytes | None = None,
    ) -> ResealReport:
        """Re-seal every record under new keys in one atomic, flushed commit (see ``_reseal``).

        Afterwards this store uses the new keys. Other stores open on the same directory,
        in this process or another, still hold the old ones and must be closed first.
        """
        sealer, hasher, seal_key = self._keys(master_key, values_key, key_hash_key)
        env = self._writable()
        dbs = {name: env.dbs[name] for name in _env.DB_NAMES}
        report = env.write(
            lambda txn: reseal_records(txn, dbs, self._sealer, sealer, hasher), flush=True
        )
        self._sealer, self._hasher, self._seal_key = sealer, hasher, seal_key
        env.seal_key = seal_key  # the last closer seals under the new key
        return report

    @staticmethod
    def default_path(data_dir: str | os.PathLike[str]) -> Path:
        """Where a data dir keeps its working memory (``DataDir.working_memory``)."""
        return DataDir(data_dir).working_memory

    @classmethod
    def from_config(
        cls,
        data_dir: str | os.PathLike[str],
        master_key: MasterKey,
        config: Config,
        *,
        clock: Callable[[], float] = time.time,
        read_only: bool = False,
    ) -> WorkingMemoryStore:
        """Open the data dir's store with the ``[memory.working]`` settings."""
        section = config.section("memory.working")
        return cls(
            cls.default_path(data_dir),
            master_key,
            ttl=float(section["ttl_hours"]) * 3600.0,
            clock=clock,
            max_value_bytes=int(section["max_value_bytes"]),
            map_size=int(section["map_size_mb"]) * 1024 * 1024,
            sync=bool(section["sync"]),
            metasync=bool(section["metasync"]),
            refresh_on_read=bool(section["refresh_on_read"]),
            read_only=read_only,
        )

    def _open_env(self) -> None:
        try:  # acquire calls _bind, which takes the handles and proves the keys
            _env.acquire(
                self._path,
                map_size=self._map_size,
                max_map_size=self._max_map_size,
                sync=self._sync,
                metasync=self._metasync,
                read_only=self._read_only,
                seal_key=self._seal_key,
                check=self._bind,
            )
        except BaseException:
            self._closed = True
            raise
        self._generation = _env.generation()

    def _bind(self, shared: SharedEnv) -> None:
        """Take the environment's handles and prove the keys (``acquire``'s check)."""
        self._shared = shared
        # A store asking for durability on an environment another store opened without it
        # still gets it, by syncing after each of its own commits.
        self._flush = self._sync and not shared.sync
        db = shared.dbs
        self._db_m, self._db_v, self._db_s = db[_M], db[_V], db[_S]
        self._db_u, self._db_x, self._db_meta = db[_U], db[_X], db[_META]
        self._dbs = {_M: self._db_m, _V: self._db_v, _S: self._db_s}
        self._check_key()
        if shared.unclean:
            # No seal vouched for the values: open each once now rather than fail later.
            directory = Path(shared.path)
            shared.read(lambda txn: audit_records(txn, db, self._sealer, directory))
            shared.mark_clean()
        shared.seal_key = self._seal_key

    def _check_key(self) -> None:
        """Prove the keys on the sealed canary before anything else is read."""
        token = self._hasher.check_token()
        raw = self._shared.read(lambda txn: txn.get(_CANARY, db=self._db_meta))
        if raw is None:
            if self._read_only:
                self._shared.read(self._require_empty)
                return  # nothing sealed here yet, so no key to prove
            raw = self._shared.write(self._create_canary, flush=self._flush)
        try:
            found = Sealer.open(self._sealer, _META, _CANARY, raw)  # a wrong key is no damage
        except IntegrityError:
            if self._shared.read(self._key_opens_a_record):
                # The key opens the records, so it is the canary that was damaged.
                raise damaged(Path(self._shared.path), "its key check record is damaged") from None
            raise WrongPassphrase(
                "wrong key: this working memory was sealed with another key"
            ) from None
        if not hmac.compare_digest(found, token):
            raise WrongPassphrase("wrong key: this working memory was sealed with another key")

    def _key_opens_a_record(self, txn: Txn) -> bool:
        """True if the first record of some sealed database opens with this store's key."""
        for name, db in ((_M, self._db_m), (_S, self._db_s), (_V, self._db_v)):
            cursor = txn.cursor(db=db)
            if cursor.first():
                try:
                    Sealer.open(self._sealer, name, cursor.key(), cursor.value())
                except IntegrityError:
                    continue
                return True
        return False

    def _require_empty(self, txn: Txn) -> None:
        for db in (self._db_m, self._db_v, self._db_s):
            if txn.stat(db)["entries"]:
                raise IntegrityError("working memory holds data but no key check record")

    def _create_canary(self, txn: Txn) -> bytes:
        existing: bytes | None = txn.get(_CANARY, db=self._db_meta)
        if existing is not None:
            return existing  # another process created it first
        self._require_empty(txn)
        sealed = self._sealer.seal(_META, _CANARY, NEVER, self._hasher.check_token())
        txn.put(_CANARY, sealed, db=self._db_meta)
        txn.put(_FORMAT_KEY, _FORMAT, db=self._db_meta)
        return sealed

    def _env(self) -> _env.SharedEnv:
        if self._closed:
            raise StoreClosed("the working-memory store is closed")
        if self._generation != _env.generation():
            # We are in a forked child: never touch the parent's environment, reopen.
            self._open_env()
        return self._shared

    def _saw_damage(self) -> None:
        """A record failed authentication: never seal this environment over it."""
        shared: SharedEnv | None = getattr(self, "_shared", None)
        if shared is not None:
            shared.damaged = True

    def _writable(self) -> SharedEnv:
        if self._read_only:
            raise ReadOnly("this working-memory store is open read-only")
        return self._env()

    # -- lifecycle -------------------------------------------------------------------

    @property
    def path(self) -> Path:
        return self._path

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def read_only(self) -> bool:
        return self._read_only

    @property
    def ttl(self) -> float:
        """The default time to live, in seconds."""
        return self._ttl_us / 1_000_000

    def close(self) -> None:
        """Release this store's reference to the shared environment. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._generation == _env.generation():
            _env.release(self._shared)

    def __enter__(self) -> WorkingMemoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def flush(self) -> None:
        """Make every committed write durable (only needed with ``sync=False``)."""
        self._env().flush()

    # -- helpers ---------------------------------------------------------------------

    @staticmethod
    def _ttl_to_us(ttl: object) -> int:
        if (
            not isinstance(ttl, int | float)
            or isinstance(ttl, bool)
            or not math.isfinite(ttl)
            or ttl <= 0
        ):
            raise InvalidInput("ttl must be a positive number of seconds")
        return max(1, round(ttl * 1_000_000))

    def _now_us(self, now: float | None = None) -> int:
        value = self._clock() if now is None else now
        return round(value * 1_000_000)

    def _entry_ttl_us(self, ttl: float | None) -> int:
        return self._ttl_us if ttl is None else self._ttl_to_us(ttl)

    def _check_size(self, payload: bytes, what: str) -> None:
        if len(payload) > self._max_value_bytes:
            raise InvalidInput(
                f"{what} is {len(payload)} bytes; the working-memory limit is "
                f"{self._max_value_bytes} bytes"
            )

    def _open_session(self, sh: bytes, raw: bytes) -> SessionRecord:
        return decode_session(self._sealer.open(_S, sh, raw))

    def _live_session(self, txn: Txn, sh: bytes, now_us: int) -> tuple[SessionRecord, int] | None:
        """The session's record and expiry if it has live working memory, else None."""
        raw = txn.get(sh, db=self._db_s)
        if raw is None:
            return None
        expires = expires_of(raw)
        if expires <= now_us:
            return None
        return self._open_session(sh, raw), expires

    def _put_session(
        self, txn: Txn, sh: bytes, record: SessionRecord, expires: int, old_expires: int | None
    ) -> None:
        if old_expires is not None and old_expires != expires:
            txn.delete(expiry_key(old_expires, TAG_SESSION, sh), db=self._db_x)
        txn.put(sh, self._sealer.seal(_S, sh, expires, encode_session(record)), db=self._db_s)
        txn.put(expiry_key(expires, TAG_SESSION, sh), b"", db=self._db_x)

    def _drop_session_record(self, txn: Txn, sh: bytes, user_hash: bytes | None) -> None:
        """Delete a session record, its expiry entry and its by-user entry."""
        raw = txn.get(sh, db=self._db_s)
        if raw is not None:
            txn.delete(expiry_key(expires_of(raw), TAG_SESSION, sh), db=self._db_x)
            txn.delete(sh, db=self._db_s)
            if user_hash is None:
                try:
                    user_hash = self._hasher.user(self._open_session(sh, raw).user_id)
                except IntegrityError:
                    log.warning("working memory: dropping a session record that failed auth")
        if user_hash is not None:
            txn.delete(user_hash + sh, db=self._db_u)
        else:
            self._drop_by_user_suffix(txn, sh)

    def _drop_by_user_suffix(self, txn: Txn, sh: bytes) -> None:
        # Only when the session record cannot tell us its user: a full by_user scan.
        stale = [k for k in txn.cursor(db=self._db_u).iternext(values=False) if k[HASH_LEN:] == sh]
        for key in stale:
            txn.delete(key, db=self._db_u)

    def _hook(self, operation: str) -> None:
        if self._after_lmdb_write is not None:
            self._after_lmdb_write(operation)

    # -- writes ----------------------------------------------------------------------

    def append(
        self,
        user_id: str,
        session_id: str,
        role: str,
        content: str,
        *,
        conversation_id: str | None = None,
        ttl: float | None = None,
        metadata: dict[str, Any] | None = None,
        message_id: str | None = None,
        created_at: float | None = None,
        unique: bool = False,
    ) -> WorkingMessage:
        """Add a message to the session. Returns it as stored.

        ``message_id`` lets the caller reuse the id of the libSQL message row; by default a
        random one is made. ``created_at`` (unix seconds, default now) is when the message
        was written to the log: its TTL counts from then, so a message replayed into working
        memory after a crash expires when it would have anyway. A session belongs to the
        user who first wrote to it. ``unique`` (a replay from the log) first looks for the
        message id in the session, inside the same write transaction, and adds nothing if
        it is there: LMDB has one writer at a time across processes, so two replays of one
        message can never both append it.
        """
        _check_id(user_id, "user_id")
        _check_id(session_id, "session_id")
        _check_id(role, "role", _MAX_ROLE_CHARS)
        if not isinstance(content, str):
            raise InvalidInput("content must be a string")
        if conversation_id is not None:
            _check_id(conversation_id, "conversation_id")
        if metadata is not None and not isinstance(metadata, dict):
            raise InvalidInput("metadata must be a dict")
        message_id = uuid.uuid4().hex if message_id is None else message_id
        _check_id(message_id, "message_id")
        ttl_us = self._entry_ttl_us(ttl)
        payload = encode_message(
            message_id, user_id, session_id, role, conversation_id, metadata, content
        )
        self._check_size(payload, "the message")
        env = self._writable()
        sh = self._hasher.session(session_id)
        now_us = self._now_us()
        if created_at is not None:
            if not isinstance(created_at, int | float) or not math.isfinite(created_at):
                raise InvalidInput("created_at must be a finite number of seconds")
            now_us = min(now_us, round(created_at * 1_000_000))

        def write(txn: Txn) -> tuple[int, int, SessionRecord, int] | None:
            if unique and self._holds_message(txn, sh, message_id):
                return None
            raw = txn.get(sh, db=self._db_s)
            old_expires = None if raw is None else expires_of(raw)
            record: SessionRecord | None = None
            if raw is not None and old_expires is not None and old_expires > now_us:
                try:
                    record = self._open_session(sh, raw)
                except IntegrityError:
                    log.warning("working memory: replacing a session record that failed auth")
            if raw is not None and record is None:
                # Expired but not swept yet (or unreadable): this append starts it afresh.
                self._drop_session_record(txn, sh, None)
                old_expires = None
            if record is not None and not hmac.compare_digest(
                record.user_id.encode(), user_id.encode()
            ):
                raise InvalidInput("this session_id belongs to another user")

            created, seq = now_us, 0
            cursor = txn.cursor(db=self._db_m)
            end = _prefix_end(sh)
            found = cursor.set_range(end) if end is not None else False
            found = cursor.prev() if found else cursor.last()
            if found:
                last = cursor.key()
                if last[:HASH_LEN] == sh:
                    _, last_created, last_seq = split_message_key(last)
                    if created <= last_created:  # same microsecond, or the clock went back
                        created, seq = last_created, last_seq + 1
                        if seq > MAX_SEQ:
                            created, seq = last_created + 1, 0
            key = message_key(sh, created, seq)
            expires = min(created + ttl_us, NEVER - 1)
            txn.put(key, self._sealer.seal(_M, key, expires, payload), db=self._db_m)
            txn.put(expiry_key(expires, TAG_MESSAGE, key), b"", db=self._db_x)

            if record is None:
                record = SessionRecord(session_id, user_id, conversation_id, created, created, 1)
                uh = self._hasher.user(user_id)
                txn.put(
                    uh + sh,
                    self._sealer.seal(_U, uh + sh, NEVER, session_id.encode("utf-8")),
                    db=self._db_u,
                )
                session_expires = expires
            else:
                record = replace(
                    record,
                    last_us=created,
                    message_count=record.message_count + 1,
                    conversation_id=conversation_id or record.conversation_id,
                )
                session_expires = max(expires, old_expires or 0)
            self._put_session(txn, sh, record, session_expires, old_expires)
            return created, expires, record, session_expires

        written = env.write(write, flush=self._flush)
        if written is None:  # unique: already there
            created = expires = now_us
        else:
            created, expires, _record, _session_expires = written
        self._hook("append")
        return WorkingMessage(
            id=message_id,
            session_id=session_id,
            user_id=user_id,
            role=role,
            content=content,
            created_at=created / 1_000_000,
            expires_at=expires / 1_000_000,
            metadata=dict(metadata or {}),
            conversation_id=conversation_id,
        )

    def put_value(self, session_id: str, key: str, value: Any, *, ttl: float | None = None) -> None:
        """Store a JSON value under ``key`` for the session (scratch state, caches).

        The value has its own expiry; if the session has live messages and the value
        outlives them, the session's working memory is extended to match.
        """
        _check_id(session_id, "session_id")
        _check_id(key, "key", _MAX_VALUE_KEY_CHARS)
        payload = encode_value(session_id, key, value)
        self._check_size(payload, "the value")
        ttl_us = self._entry_ttl_us(ttl)
        env = self._writable()
        sh = self._hasher.session(session_id)
        record_key = sh + self._hasher.value_key(key)
        now_us = self._now_us()
        expires = min(now_us + ttl_us, NEVER - 1)

        def write(txn: Txn) -> tuple[SessionRecord, int] | None:
            old = txn.get(record_key, db=self._db_v)
            if old is not None:
                txn.delete(expiry_key(expires_of(old), TAG_VALUE, record_key), db=self._db_x)
            sealed = self._sealer.seal(_V, record_key, expires, payload)
            txn.put(record_key, sealed, db=self._db_v)
            txn.put(expiry_key(expires, TAG_VALUE, record_key), b"", db=self._db_x)
            return self._extend_session(txn, sh, expires, now_us)

        if env.write(write, flush=self._flush) is not None:
            self._hook("put_value")

    def _extend_session(
        self, txn: Txn, sh: bytes, expires: int, now_us: int
    ) -> tuple[SessionRecord, int] | None:
        """Push a live session's expiry out to ``expires``; None if nothing changed."""
        try:
            live = self._live_session(txn, sh, now_us)
        except IntegrityError:
            return None
        if live is None or live[1] >= expires:
            return None
        record, old_expires = live
        self._put_session(txn, sh, record, expires, old_expires)
        return record, expires

    def delete_value(self, session_id: str, key: str) -> bool:
        """Remove one value; True if it existed (expired or not)."""
        _check_id(session_id, "session_id")
        _check_id(key, "key", _MAX_VALUE_KEY_CHARS)
        env = self._writable()
        record_key = self._hasher.session(session_id) + self._hasher.value_key(key)

        def write(txn: Txn) -> bool:
            old = txn.get(record_key, db=self._db_v)
            if old is None:
                return False
            txn.delete(expiry_key(expires_of(old), TAG_VALUE, record_key), db=self._db_x)
            txn.delete(record_key, db=self._db_v)
            return True

        return env.write(write, flush=self._flush)

    def _owner_differs(self, txn: Txn, sh: bytes, user_id: str) -> bool:
        """True if the session's record names another user (an unreadable one counts as ours)."""
        raw = txn.get(sh, db=self._db_s)
        if raw is None:
            return False
        try:
            return self._open_session(sh, raw).user_id != user_id
        except IntegrityError:
            return False

    def _purge_session(self, txn: Txn, sh: bytes, user_hash: bytes | None) -> int:
        removed = 0
        end = _prefix_end(sh)
        for db, tag in ((self._db_m, TAG_MESSAGE), (self._db_v, TAG_VALUE)):
            cursor = txn.cursor(db=db)
            doomed: list[tuple[bytes, int]] = []
            if cursor.set_range(sh):
                for key, value in cursor:
                    if end is not None and key >= end:
                        break
                    doomed.append((key, expires_of(value)))
            for key, expires in doomed:
                txn.delete(expiry_key(expires, tag, key), db=self._db_x)
                txn.delete(key, db=db)
            removed += len(doomed)
        self._drop_session_record(txn, sh, user_hash)
        return removed

    def delete_session(self, session_id: str) -> int:
        """Forget a session: its messages, values and record; returns how many entries went."""
        _check_id(session_id, "session_id")
        env = self._writable()
        sh = self._hasher.session(session_id)
        removed = env.write(lambda txn: self._purge_session(txn, sh, None), flush=self._flush)
        self._hook("delete_session")
        return removed

    def delete_user(self, user_id: str, *, sessions: Sequence[str] = ()) -> int:
        """Forget every session of a user: those LMDB indexes by user, plus ``sessions``.

        ``sessions`` are ids the caller knows from the log (a session whose by-user entry
        was lost is still found). Returns the number of sessions removed.
        """
        _check_id(user_id, "user_id")
        env = self._writable()
        uh = self._hasher.user(user_id)
        from_rows = {self._hasher.session(_check_id(sid, "session_id")) for sid in sessions}

        def write(txn: Txn) -> int:
            cursor = txn.cursor(db=self._db_u)
            hashes = set(from_rows)
            if cursor.set_range(uh):
                for key in cursor.iternext(values=False):
                    if key[:HASH_LEN] != uh:
                        break
                    hashes.add(key[HASH_LEN:])
            removed = 0
            for sh in hashes:
                if self._owner_differs(txn, sh, user_id):
                    txn.delete(uh + sh, db=self._db_u)  # a stale entry; the session moved on
                    continue
                self._purge_session(txn, sh, uh)
                removed += 1
            return removed

        removed = env.write(write, flush=self._flush)
        self._hook("delete_user")
        return removed

    def delete_messages(
        self,
        session_id: str,
        message_ids: Sequence[str] = (),
        *,
        conversation_id: str | None = None,
    ) -> int:
        """Remove messages of one session: those with these ids, or of this conversation.

        What a forget of one message or one conversation needs. Ids live inside the sealed
        values, so the session's entries are opened to find them. Returns the number removed.
        """
        _check_id(session_id, "session_id")
        wanted = {_check_id(m, "message_id") for m in message_ids}
        if conversation_id is not None:
            _check_id(conversation_id, "conversation_id")
        if not wanted and conversation_id is None:
            return 0
        env = self._writable()
        sh = self._hasher.session(session_id)
        end = _prefix_end(sh)

        def write(txn: Txn) -> int:
            cursor = txn.cursor(db=self._db_m)
            doomed: list[tuple[bytes, int]] = []
            if cursor.set_range(sh):
                for key, value in cursor:
                    if end is not None and key >= end:
                        break
                    try:
                        message = self._to_message(
                            key, expires_of(value), self._sealer.open(_M, key, value)
                        )
                    except IntegrityError:
                        continue
                    if message.id in wanted or (
                        conversation_id is not None and message.conversation_id == conversation_id
                    ):
                        doomed.append((key, expires_of(value)))
            for key, expires in doomed:
                txn.delete(expiry_key(expires, TAG_MESSAGE, key), db=self._db_x)
                txn.delete(key, db=self._db_m)
            return len(doomed)

        removed = env.write(write, flush=self._flush)
        self._hook("delete_messages")
        return removed

    def _holds_message(self, txn: Txn, sh: bytes, message_id: str) -> bool:
        cursor = txn.cursor(db=self._db_m)
        if not cursor.set_range(sh):
            return False
        end = _prefix_end(sh)
        for key, value in cursor:
            if end is not None and key >= end:
                return False
            try:
                plaintext = self._sealer.open(_M, key, value)
            except IntegrityError:
                continue
            if self._to_message(key, expires_of(value), plaintext).id == message_id:
                return True
        return False

    def has_message(self, session_id: str, message_id: str) -> bool:
        """True if the session holds a message with this id, expired or not (read-only).

        What makes replaying the log's working outbox idempotent after a crash between the
        LMDB commit and the outbox row's removal.
        """
        _check_id(session_id, "session_id")
        _check_id(message_id, "message_id")
        sh = self._hasher.session(session_id)
        return bool(self._env().read(lambda txn: self._holds_message(txn, sh, message_id)))

    def _scan(
        self,
        txn: Txn,
        lo: bytes,
        hi: bytes | None,
        *,
        newest_first: bool,
        limit: int | None,
        now_us: int,
        skip_corrupt: bool,
    ) -> list[tuple[bytes, int, bytes]]:
        """Live messages with ``lo <= key < hi``: ``(key, expires_us, plaintext)``."""
        cursor = txn.cursor(db=self._db_m)
        out: list[tuple[bytes, int, bytes]] = []
        if newest_first:
            found = cursor.set_range(hi) if hi is not None else False
            found = cursor.prev() if found else cursor.last()
            items = cursor.iterprev() if found else iter(())
        else:
            found = cursor.set_range(lo)
            items = cursor.iternext() if found else iter(())
        open_ = self._sealer.open
        for key, sealed in items:
            if key < lo or (hi is not None and key >= hi):
                break
            expires = expires_of(sealed)
            if expires <= now_us:
                continue
            try:
                out.append((key, expires, open_(_M, key, sealed)))
            except IntegrityError:
                if not skip_corrupt:
                    raise
                log.warning("working memory: skipped an entry that failed authentication")
            if limit is not None and len(out) >= limit:
                break
        return out

    @staticmethod
    def _to_message(key: bytes, expires: int, plaintext: bytes) -> WorkingMessage:
        message_id, user_id, session_id, role, conv, meta, content = decode_message(plaintext)
        return WorkingMessage(
            message_id,
            session_id,
            user_id,
            role,
            content,
            message_created_us(key) / 1_000_000,
            expires / 1_000_000,
            meta,
            conv,
        )

    def recent(
        self,
        session_id: str,
        n: int = 20,
        *,
        newest_first: bool = True,
        skip_corrupt: bool = False,
    ) -> list[WorkingMessage]:
        """The ``n`` newest live messages of a session; unknown session → ``[]``.

        An entry that fails authentication raises ``IntegrityError``; with
        ``skip_corrupt=True`` it is left out (and logged, without content) instead.
        """
        _check_id(session_id, "session_id")
        _check_count(n, "n")
        if n == 0:
            return []
        env = self._env()
        sh = self._hasher.session(session_id)
        now_us = self._now_us()
        hi = _prefix_end(sh)
        found = env.read(
            lambda txn: self._scan(
                txn,
                sh,
                hi,
                newest_first=True,
                limit=n,
                now_us=now_us,
                skip_corrupt=skip_corrupt,
            )
        )
        if not newest_first:
            found.reverse()
        messages = [self._to_message(*item) for item in found]
        if self.refresh_on_read and found:
            self._refresh(sh, [(_M, TAG_MESSAGE, k, p) for k, _, p in found], now_us)
        return messages

    def range(
        self,
        session_id: str,
        start: float | None = None,
        end: float | None = None,
        *,
        newest_first: bool = False,
        limit: int | None = None,
        skip_corrupt: bool = False,
    ) -> list[WorkingMessage]:
        """Live messages created in ``[start, end)`` (unix seconds; None = open-ended)."""
        _check_id(session_id, "session_id")
        if limit is not None:
            _check_count(limit, "limit")
        for bound in (start, end):
            if bound is not None and (
                not isinstance(bound, int | float) or isinstance(bound, bool) or bound < 0
            ):
                raise InvalidInput("start and end must be non-negative unix seconds or None")
        if start is not None and end is not None and end < start:
            raise InvalidInput("end must not be before start")
        if limit == 0:
            return []
        env = self._env()
        sh = self._hasher.session(session_id)
        lo = sh if start is None else message_key(sh, min(round(start * 1e6), NEVER), 0)
        hi = _prefix_end(sh) if end is None else message_key(sh, min(round(end * 1e6), NEVER), 0)
        now_us = self._now_us()
        found = env.read(
            lambda txn: self._scan(
                txn,
                lo,
                hi,
                newest_first=newest_first,
                limit=limit,
                now_us=now_us,
                skip_corrupt=skip_corrupt,
            )
        )
        messages = [self._to_message(*item) for item in found]
        if self.refresh_on_read and found:
            self._refresh(sh, [(_M, TAG_MESSAGE, k, p) for k, _, p in found], now_us)
        return messages

    def get_value(self, session_id: str, key: str, default: Any = None) -> Any:
        """The session's live value for ``key``, or ``default``."""
        _check_id(session_id, "session_id")
        _check_id(key, "key", _MAX_VALUE_KEY_CHARS)
        env = self._env()
        sh = self._hasher.session(session_id)
        record_key = sh + self._hasher.value_key(key)
        now_us = self._now_us()
        sealed = env.read(lambda txn: txn.get(record_key, db=self._db_v))
        if sealed is None or expires_of(sealed) <= now_us:
            return default
        plaintext = self._sealer.open(_V, record_key, sealed)
        if self.refresh_on_read:
            self._refresh(sh, [(_V, TAG_VALUE, record_key, plaintext)], now_us)
        return decode_value(plaintext)

    def sessions(self, user_id: str) -> list[str]:
        """Ids of the user's sessions with live working memory, most recently active first."""
        _check_id(user_id, "user_id")
        env = self._env()
        uh = self._hasher.user(user_id)
        now_us = self._now_us()

        def read(txn: Txn) -> list[tuple[int, str]]:
            found: list[tuple[int, str]] = []
            cursor = txn.cursor(db=self._db_u)
            if not cursor.set_range(uh):
                return found
            for key in cursor.iternext(values=False):
                if key[:HASH_LEN] != uh:
                    break
                sh = key[HASH_LEN:]
                try:
                    live = self._live_session(txn, sh, now_us)
                except IntegrityError:
                    log.warning("working memory: skipped a session record that failed auth")
                    continue
                if live is not None and live[0].user_id == user_id:
                    found.append((live[0].last_us, live[0].session_id))
            return found

        return [sid for _, sid in sorted(env.read(read), reverse=True)]

    def message_ids(self) -> list[tuple[str, str]]:
        """``(session_id, message_id)`` of every stored message, expired or not (read-only).

        What the coordinator checks against the log on open: working memory may hold only
        messages the log holds.
        """
        env = self._env()

        def read(txn: Txn) -> list[tuple[str, str]]:
            found: list[tuple[str, str]] = []
            for key, value in txn.cursor(db=self._db_m):
                try:
                    plaintext = self._sealer.open(_M, key, value)
                except IntegrityError:
                    continue
                message = self._to_message(key, expires_of(value), plaintext)
                found.append((message.session_id, message.id))
            return found

        return env.read(read)

    def _refresh(
        self, sh: bytes, items: list[tuple[bytes, bytes, bytes, bytes]], now_us: int
    ) -> None:
        """Refresh-on-read: give the entries just read a full TTL from now."""
        if self._read_only:
            return  # a read-only store writes nothing, not even a refreshed expiry
        expires = min(now_us + self._ttl_us, NEVER - 1)

        def write(txn: Txn) -> tuple[SessionRecord, int] | None:
            for db_name, tag, key, plaintext in items:
                db = self._dbs[db_name]
                current = txn.get(key, db=db)
                if current is None:
                    continue
                old = expires_of(current)
                if old >= expires or old <= now_us:
                    continue
                txn.delete(expiry_key(old, tag, key), db=self._db_x)
                txn.put(key, self._sealer.seal(db_name, key, expires, plaintext), db=db)
                txn.put(expiry_key(expires, tag, key), b"", db=self._db_x)
            return self._extend_session(txn, sh, expires, now_us)

        self._env().write(write, flush=self._flush)

    # -- maintenance -----------------------------------------------------------------

    def sweep(self, *, now: float | None = None, limit: int | None = None) -> int:
        """Remove expired records, reading only the expired part of the expiry index.

        Returns the number of messages and values removed (session records whose time is
        up go too). ``limit`` caps the index entries
        handled in this call. Runs in batches so readers are never held up for long.
        """
        if limit is not None:
            _check_count(limit, "limit")
        env = self._writable()
        now_us = self._now_us(now)
        removed = handled = 0
        while limit is None or handled < limit:
            batch = _SWEEP_BATCH if limit is None else min(_SWEEP_BATCH, limit - handled)
            entries, steps, ended, done = env.write(
                functools.partial(self._sweep_batch, now_us=now_us, batch=batch),
                flush=self._flush,
            )
            removed += entries
            handled += steps
            if ended:
                self._hook("sweep")
            if done:
                break
        return removed

    def _sweep_batch(
        self, txn: Txn, now_us: int, batch: int
    ) -> tuple[int, int, list[tuple[str, int]], bool]:
        cursor = txn.cursor(db=self._db_x)
        entries = steps = 0
        ended: list[tuple[str, int]] = []
        found = cursor.first()
        while found and steps < batch:
            index_key = cursor.key()
            expires, tag, record_key = split_expiry_key(index_key)
            if expires > now_us:
                return entries, steps, ended, True
            db_name = _TAG_DB.get(tag)
            if db_name is not None:
                db = self._dbs[db_name]
                raw = txn.get(record_key, db=db)
                # A stale index entry (the record was rewritten with a new expiry) is dropped
                # without touching the record.
                if raw is not None and expires_of(raw) == expires:
                    if tag == TAG_SESSION:
                        try:
                            record = self._open_session(record_key, raw)
                            ended.append((record.session_id, record.last_us))
                            user_hash: bytes | None = self._hasher.user(record.user_id)
                        except IntegrityError:
                            user_hash = None
                        txn.delete(record_key, db=db)
                        if user_hash is not None:
                            txn.delete(user_hash + record_key, db=self._db_u)
                        else:
                            self._drop_by_user_suffix(txn, record_key)
                    else:
                        txn.delete(record_key, db=db)
                        entries += 1
            steps += 1
            found = cursor.delete()  # moves to the next entry
            if found and not cursor.key():
                found = False
        return entries, steps, ended, not found

    def stats(self) -> dict[str, Any]:
        """Counts and sizes for ``status``; counts expired-pending from the index only."""
        env = self._env()
        now_us = self._now_us()

        def read(txn: Txn) -> dict[str, int]:
            pending = 0
            cursor = txn.cursor(db=self._db_x)
            for key in cursor.iternext(values=False):
                if split_expiry_key(key)[0] > now_us:
                    break
                pending += 1
            return {
                "messages": txn.stat(self._db_m)["entries"],
                "values": txn.stat(self._db_v)["entries"],
                "sessions": txn.stat(self._db_s)["entries"],
                "expired_pending": pending,
            }

        counts = env.read(read)
        info = env.info()
        data_file = Path(env.path) / "data.mdb"
        return {
            "path": env.path,
            "entries": counts["messages"] + counts["values"],
            **counts,
            "bytes": info["used_bytes"],
            "file_bytes": data_file.stat().st_size if data_file.exists() else 0,
            "map_size": info["map_size"],
            "max_map_size": env.max_map_size,
            "reader_slots": info["readers"],
            "ttl_seconds": self.ttl,
            "sync": env.sync or self._flush,
            "metasync": env.metasync or self._flush,
            "read_only": self._read_only,
        }
