"""The encrypted, chunked container of backups and exports.

One file, encrypted as a whole, that says nothing about what it holds::

    "AICOARC" 0x01 (8 bytes) | u32 header length | header (JSON) | SHA-256 of the header
    then chunks, each:        u32 length | AES-256-GCM ciphertext of the chunk (+ 16-byte tag)

The header holds only what opening needs: the format, the kind (``backup`` or ``export``),
a random 32-byte salt, the chunk size, a key check, and the key's source (a backup carries
the data dir's key file, wrapped under the passphrase as on disk, so it restores elsewhere
with the passphrase alone; an export carries its Argon2id parameters). File and table names,
sizes and checksums are all inside the encrypted stream.

Why it detects every change: the key is unique per archive (HKDF over the archive's salt),
chunk ``i`` is sealed with the nonce ``i`` (11 bytes, big-endian) followed by a byte that is 1
on the last chunk only, and every chunk authenticates the header's SHA-256 as associated
data. A flipped byte fails a tag; a chunk dropped, repeated or moved fails its nonce; a
truncated archive has no last chunk; a header from another archive fails every tag. The
header's own SHA-256 tells an accidentally damaged header apart from a wrong passphrase.

Inside the stream, records (``PayloadWriter``/``PayloadReader``): ``FILE`` (name, size,
codec, then the data as length-prefixed blocks, zstandard-compressed when the file is at
least the compression threshold) and one ``END``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import struct
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import zstandard
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from aico.errors import IntegrityError, InvalidInput, WrongPassphrase

__all__ = [
    "ARCHIVE_FORMAT",
    "CODEC_RAW",
    "CODEC_ZSTD",
    "MAGIC",
    "ArchiveHeader",
    "Entry",
    "PayloadReader",
    "PayloadWriter",
    "SealedReader",
    "SealedWriter",
    "derive_archive_key",
    "new_header",
    "read_header",
]

MAGIC = b"AICOARC\x01"
ARCHIVE_FORMAT = 1
CODEC_RAW = 0
CODEC_ZSTD = 1
DEFAULT_CHUNK = 1 << 20
_MAX_CHUNK = 16 << 20
_MAX_HEADER = 1 << 16
_TAG = 16
_U32 = struct.Struct(">I")
_FILE_HEAD = struct.Struct(">QB")  # size, codec (after the name)
_REC_FILE = 1
_REC_END = 0
_BLOCK = 1 << 20
_ZSTD_LEVEL = 3
_CHECK_INFO = b"aico/archive/v1/key-check"
_KEY_INFO = b"aico/archive/v1/payload"

Progress = Callable[[int], None]
"""Called with the number of bytes just processed."""


def derive_archive_key(secret: bytes, salt: bytes) -> bytes:
    """The archive's own AES-256 key: HKDF-SHA256 of ``secret`` over the archive's salt."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=_KEY_INFO).derive(secret)


def _key_check(key: bytes) -> str:
    return hmac.new(key, _CHECK_INFO, hashlib.sha256).hexdigest()[:32]


@dataclass(frozen=True)
class ArchiveHeader:
    """The plaintext header: only what is needed to find the key and read the chunks."""

    kind: str
    salt: bytes = field(repr=False)
    chunk_size: int
    key_check: str = field(repr=False)
    source: Mapping[str, Any] = field(repr=False)
    raw: bytes = field(repr=False)

    @property
    def digest(self) -> bytes:
        return hashlib.sha256(self.raw).digest()

    def check_key(self, key: bytes) -> None:
        """``WrongPassphrase`` unless ``key`` is this archive's key (checked before any chunk)."""
        if not hmac.compare_digest(_key_check(key), self.key_check):
            raise WrongPassphrase("wrong passphrase")


def new_header(
    kind: str,
    source: Mapping[str, Any],
    secret: Callable[[bytes], bytes],
    *,
    chunk_size: int = DEFAULT_CHUNK,
) -> tuple[ArchiveHeader, bytes]:
    """A fresh header and its key: ``secret(salt)`` gives the key material for this salt."""
    if not 4096 <= chunk_size <= _MAX_CHUNK:
        raise InvalidInput(f"chunk_size must be between 4096 and {_MAX_CHUNK}")
    salt = secrets.token_bytes(32)
    key = derive_archive_key(secret(salt), salt)
    check = _key_check(key)
    doc = {
        "format": ARCHIVE_FORMAT,
        "kind": kind,
        "salt": base64.b64encode(salt).decode("ascii"),
        "chunk_size": chunk_size,
        "key_check": check,
        "source": dict(source),
    }
    raw = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return ArchiveHeader(kind, salt, chunk_size, check, dict(source), raw), key


def write_header(fh: BinaryIO, header: ArchiveHeader) -> None:
    fh.write(MAGIC + _U32.pack(len(header.raw)) + header.raw + header.digest)


def read_header(fh: BinaryIO, *, name: str = "the file") -> ArchiveHeader:
    """Parse and check the header; ``InvalidInput`` if this is not an aico archive at all."""
    if fh.read(len(MAGIC)) != MAGIC:
        raise InvalidInput(f"{name} is not an aico archive")
    raw_len = fh.read(4)
    if len(raw_len) != 4:
        raise IntegrityError(f"{name}: the archive is truncated")
    (length,) = _U32.unpack(raw_len)
    if length > _MAX_HEADER:
        raise IntegrityError(f"{name}: the archive's header is damaged")
    raw = fh.read(length)
    digest = fh.read(32)
    if len(raw) != length or len(digest) != 32:
        raise IntegrityError(f"{name}: the archive is truncated")
    if not hmac.compare_digest(hashlib.sha256(raw).digest(), digest):
        raise IntegrityError(f"{name}: the archive's header is damaged")
    try:
        doc = json.loads(raw)
        version = doc["format"]
        if type(version) is not int:
            raise TypeError
        if version > ARCHIVE_FORMAT:
            raise InvalidInput(
                f"{name} has archive format {version}, newer than this aico understands "
                f"({ARCHIVE_FORMAT}); upgrade aico"
            )
        salt = base64.b64decode(doc["salt"], validate=True)
        chunk = doc["chunk_size"]
        if len(salt) != 32 or type(chunk) is not int or not 0 < chunk <= _MAX_CHUNK:
            raise ValueError
        return ArchiveHeader(
            str(doc["kind"]), salt, chunk, str(doc["key_check"]), dict(doc["source"]), raw
        )
    except InvalidInput:
        raise
    except (ValueError, KeyError, TypeError):
        raise IntegrityError(f"{name}: the archive's header is malformed") from None


def _nonce(index: int, last: bool) -> bytes:
    return index.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


class SealedWriter:
    """Encrypts a byte stream into chunks after the header; ``finish`` seals the last one."""

    def __init__(self, fh: BinaryIO, key: bytes, header: ArchiveHeader) -> None:
        self._fh = fh
        self._aead = AESGCM(key)
        self._aad = header.digest
        self._size = header.chunk_size
        self._buf = bytearray()
        self._index = 0
        self._done = False
        self.written = 0  # plaintext bytes taken
        write_header(fh, header)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._done:
            raise InvalidInput("the archive is already finished")
        self._buf += data
        self.written += len(data)
        while len(self._buf) > self._size:  # keep at least one byte back for the last chunk
            self._emit(bytes(self._buf[: self._size]), last=False)
            del self._buf[: self._size]

    def finish(self) -> None:
        if not self._done:
            self._emit(bytes(self._buf), last=True)
            self._buf.clear()
            self._done = True

    def _emit(self, plain: bytes, *, last: bool) -> None:
        sealed = self._aead.encrypt(_nonce(self._index, last), plain, self._aad)
        self._fh.write(_U32.pack(len(sealed)) + sealed)
        self._index += 1


class SealedReader:
    """Decrypts the chunks of an archive; ``read(n)`` returns exactly ``n`` bytes."""

    def __init__(
        self, fh: BinaryIO, key: bytes, header: ArchiveHeader, *, name: str = "the archive"
    ) -> None:
        header.check_key(key)
        self._fh = fh
        self._aead = AESGCM(key)
        self._aad = header.digest
        self._max = header.chunk_size + _TAG
        self._name = name
        self._buf = b""
        self._pos = 0
        self._index = 0
        self._last_seen = False
        self.sealed_read = 0  # archive bytes consumed after the header

    def _damaged(self, what: str) -> IntegrityError:
        return IntegrityError(f"{self._name} is damaged or was altered ({what})")

    def _next_chunk(self) -> bool:
        if self._last_seen:
            return False
        head = self._fh.read(4)
        if len(head) != 4:
            raise IntegrityError(f"{self._name} is truncated")
        (length,) = _U32.unpack(head)
        if not _TAG <= length <= self._max:
            raise self._damaged(f"chunk {self._index}")
        sealed = self._fh.read(length)
        if len(sealed) != length:
            raise IntegrityError(f"{self._name} is truncated")
        self.sealed_read += 4 + length
        for last in (False, True):
            try:
                plain = self._aead.decrypt(_nonce(self._index, last), sealed, self._aad)
            except InvalidTag:
                continue
            self._last_seen = last
            self._index += 1
            self._buf, self._pos = plain, 0
            return True
        raise self._damaged(f"chunk {self._index}")

    def read(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            if self._pos >= len(self._buf) and not self._next_chunk():
                raise IntegrityError(f"{self._name} is truncated")
            take = self._buf[self._pos : self._pos + n - len(out)]
            self._pos += len(take)
            out += take
        return bytes(out)

    def finish(self) -> None:
        """The stream must end exactly here: last chunk reached, nothing after it."""
        if self._pos < len(self._buf):
            raise self._damaged("data after the end")
        while not self._last_seen:
            if self._next_chunk() and self._buf:
                raise self._damaged("data after the end")
        if self._fh.read(1):
            raise self._damaged("bytes after the last chunk")


class PayloadWriter:
    """Writes ``FILE`` records, then ``END``, into a ``SealedWriter``."""

    def __init__(self, sealed: SealedWriter, *, compression_threshold: int) -> None:
        self._sealed = sealed
        self._threshold = compression_threshold

    def add_bytes(self, name: str, data: bytes, *, progress: Progress | None = None) -> None:
        import io

        self.add_file(name, io.BytesIO(data), len(data), progress=progress)

    def add_file(
        self, name: str, src: BinaryIO, size: int, *, progress: Progress | None = None
    ) -> None:
        """Copy exactly ``size`` bytes of ``src`` into one ``FILE`` record.

        Compressed when ``size`` is at least the threshold and its first block shrinks by
        at least 5 % (encrypted database pages never do: compressing them would only cost
        time, about 340 MB/s of it here).
        """
        encoded = name.encode("utf-8")
        first = src.read(min(_BLOCK, size))
        codec = CODEC_RAW
        if size >= self._threshold > 0 and first:
            probe = zstandard.ZstdCompressor(level=_ZSTD_LEVEL).compress(first)
            if len(probe) <= 0.95 * len(first):
                codec = CODEC_ZSTD
        out = self._sealed
        out.write(bytes([_REC_FILE]) + struct.pack(">H", len(encoded)) + encoded)
        out.write(_FILE_HEAD.pack(size, codec))
        compressor = zstandard.ZstdCompressor(level=_ZSTD_LEVEL).compressobj() if codec else None
        remaining = size
        block = first
        while remaining:
            if not block:
                raise InvalidInput(f"{name} shrank while it was being archived")
            remaining -= len(block)
            self._block(compressor.compress(block) if compressor else block)
            if progress is not None:
                progress(len(block))
            block = src.read(min(_BLOCK, remaining)) if remaining else b""
        if compressor is not None:
            self._block(compressor.flush())
        out.write(_U32.pack(0))

    def _block(self, data: bytes) -> None:
        if data:
            self._sealed.write(_U32.pack(len(data)) + data)

    def end(self) -> None:
        self._sealed.write(bytes([_REC_END]))
        self._sealed.finish()


@dataclass
class Entry:
    """One ``FILE`` record being read: read its ``blocks()`` to the end before the next."""

    name: str
    size: int
    codec: int
    _reader: PayloadReader = field(repr=False)

    def blocks(self) -> Iterator[bytes]:
        """The file's bytes, decompressed, in blocks; exactly ``size`` bytes or an error."""
        return self._reader._blocks(self)

    def read_all(self, limit: int = 64 << 20) -> bytes:
        if self.size > limit:
            raise IntegrityError(f"archive entry {self.name} is larger than expected")
        return b"".join(self.blocks())


class PayloadReader:
    """Reads the records of a ``SealedReader`` in order."""

    def __init__(self, sealed: SealedReader) -> None:
        self._sealed = sealed
        self._open: Entry | None = None
        self._ended = False
        self._broken = False

    def _damaged(self, what: str) -> IntegrityError:
        return self._sealed._damaged(what)

    def next_entry(self) -> Entry | None:
        """The next file, or None at ``END`` (after checking the stream ends there)."""
        if self._open is not None or self._broken:
            raise InvalidInput("read the previous entry to its end first")
        if self._ended:
            return None
        kind = self._sealed.read(1)[0]
        if kind == _REC_END:
            self._sealed.finish()
            self._ended = True
            return None
        if kind != _REC_FILE:
            raise self._damaged("unknown record")
        (name_len,) = struct.unpack(">H", self._sealed.read(2))
        try:
            name = self._sealed.read(name_len).decode("utf-8")
        except UnicodeDecodeError:
            raise self._damaged("entry name") from None
        size, codec = _FILE_HEAD.unpack(self._sealed.read(_FILE_HEAD.size))
        if codec not in (CODEC_RAW, CODEC_ZSTD):
            raise self._damaged("unknown codec")
        self._open = Entry(name, size, codec, self)
        return self._open

    def entries(self) -> Iterator[Entry]:
        while (entry := self.next_entry()) is not None:
            yield entry

    def _raw_blocks(self, entry: Entry) -> Iterator[bytes]:
        while True:
            (length,) = _U32.unpack(self._sealed.read(4))
            if length == 0:
                return
            if length > 2 * _BLOCK + 4096:
                raise self._damaged(f"entry {entry.name}")
            yield self._sealed.read(length)

    def _blocks(self, entry: Entry) -> Iterator[bytes]:
        if self._open is not entry:
            raise InvalidInput("this entry was already read")
        self._broken = True  # until the entry was read to its end
        raw = self._raw_blocks(entry)
        data_iter: Iterator[bytes] = raw
        if entry.codec == CODEC_ZSTD:
            # Bounded output per step: an archive cannot inflate past what it declared.
            dctx = zstandard.ZstdDecompressor()
            source: Any = _BlockSource(raw)
            data_iter = dctx.read_to_iter(source, read_size=_BLOCK, write_size=_BLOCK)
        produced = 0
        try:
            for data in data_iter:
                produced += len(data)
                if produced > entry.size:
                    raise self._damaged(f"entry {entry.name} is longer than declared")
                if data:
                    yield data
            for _ in raw:  # a zstd frame that ended early leaves blocks behind
                raise self._damaged(f"entry {entry.name} has data after its end")
        except zstandard.ZstdError:
            raise self._damaged(f"entry {entry.name}") from None
        if produced != entry.size:
            raise self._damaged(f"entry {entry.name} is shorter than declared")
        self._open = None
        self._broken = False


class _BlockSource:
    """A ``read(n)`` face over the compressed blocks, for zstandard's streaming reader."""

    def __init__(self, blocks: Iterator[bytes]) -> None:
        self._blocks = blocks
        self._buf = b""

    def read(self, n: int = -1) -> bytes:
        while not self._buf:
            block = next(self._blocks, None)
            if block is None:
                return b""
            self._buf = block
        if n < 0 or n >= len(self._buf):
            out, self._buf = self._buf, b""
        else:
            out, self._buf = self._buf[:n], self._buf[n:]
        return out
