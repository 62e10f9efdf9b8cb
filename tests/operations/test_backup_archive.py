"""The encrypted container: every change to the file is detected, nothing is readable.

Real AES-GCM and zstandard on in-memory files: round trips, a flip of every single byte,
truncation at every chunk boundary, chunks dropped, repeated or swapped, a wrong key told
apart from a damaged header, and an entry that inflates beyond what it declared.
"""

from __future__ import annotations

import io
import itertools
import os
import struct

import pytest
import zstandard

from aico.errors import IntegrityError, InvalidInput, WrongPassphrase
from aico.operations.archive import (
    CODEC_RAW,
    CODEC_ZSTD,
    PayloadReader,
    PayloadWriter,
    SealedReader,
    SealedWriter,
    derive_archive_key,
    new_header,
    read_header,
)

SECRET = b"s" * 32
TEXT = b"the harbour at dawn, gulls over the quay; " * 400  # compressible, 16.8 kB
NOISE = os.urandom(9000)  # incompressible, like encrypted database pages


def build(files: list[tuple[str, bytes]], *, threshold: int = 1024, chunk: int = 4096) -> bytes:
    header, key = new_header("backup", {"note": "test"}, lambda salt: SECRET, chunk_size=chunk)
    out = io.BytesIO()
    payload = PayloadWriter(SealedWriter(out, key, header), compression_threshold=threshold)
    for name, data in files:
        payload.add_bytes(name, data)
    payload.end()
    return out.getvalue()


def read(raw: bytes, secret: bytes = SECRET) -> list[tuple[str, int, bytes]]:
    fh = io.BytesIO(raw)
    header = read_header(fh)
    reader = PayloadReader(SealedReader(fh, derive_archive_key(secret, header.salt), header))
    return [(e.name, e.codec, b"".join(e.blocks())) for e in reader.entries()]


def chunk_offsets(raw: bytes) -> list[int]:
    """Where each chunk's length prefix starts."""
    (header_len,) = struct.unpack(">I", raw[8:12])
    pos, offsets = 12 + header_len + 32, []
    while pos < len(raw):
        offsets.append(pos)
        (length,) = struct.unpack(">I", raw[pos : pos + 4])
        pos += 4 + length
    return offsets


def test_round_trip_compresses_only_what_shrinks():
    raw = build([("db/one", TEXT), ("db/two", NOISE), ("tiny", b"abc"), ("empty", b"")])
    assert read(raw) == [
        ("db/one", CODEC_ZSTD, TEXT),
        ("db/two", CODEC_RAW, NOISE),  # would not shrink: stored as it is
        ("tiny", CODEC_RAW, b"abc"),  # below the threshold
        ("empty", CODEC_RAW, b""),
    ]
    assert len(raw) < len(TEXT) // 4 + len(NOISE) + 2000


def test_the_file_shows_no_names_and_no_content():
    raw = build([("db/core/conversations.db", TEXT), ("keys/master.key", b"zqsecretvalue")])
    for needle in (b"conversations", b"master.key", b"harbour", b"zqsecretvalue", b"db/"):
        assert needle not in raw
    # Not even compressed content can be read: all after the header is ciphertext.
    assert zstandard.ZstdCompressor().compress(TEXT)[:64] not in raw


def test_every_flipped_byte_is_detected():
    raw = build([("a", TEXT[:3000]), ("b", NOISE[:6000])], chunk=4096)
    assert len(chunk_offsets(raw)) >= 2
    for offset in range(len(raw)):
        damaged = bytearray(raw)
        damaged[offset] ^= 0x40
        with pytest.raises((IntegrityError, InvalidInput)):
            read(bytes(damaged))


def test_truncation_anywhere_is_detected():
    raw = build([("a", NOISE)], chunk=4096)
    offsets = chunk_offsets(raw)
    assert len(offsets) >= 3
    cuts = {len(raw) - 1, 9, 20} | set(offsets) | {o + 5 for o in offsets}
    for cut in sorted(cuts):
        with pytest.raises(IntegrityError):
            read(raw[:cut])
    with pytest.raises(InvalidInput):  # not even the magic is left
        read(raw[:7])


def test_chunks_dropped_repeated_or_swapped_are_detected():
    raw = build([("a", NOISE)], chunk=4096)
    offsets = [*chunk_offsets(raw), len(raw)]
    head = raw[: offsets[0]]
    chunks = [raw[a:b] for a, b in itertools.pairwise(offsets)]
    assert len(chunks) >= 3
    for variant in (
        chunks[1:],  # first dropped
        chunks[:1] + chunks[2:],  # one in the middle dropped
        chunks[:-1],  # the last dropped: looks complete up to a chunk boundary
        [chunks[1], chunks[0], *chunks[2:]],  # swapped
        [chunks[0], chunks[0], *chunks[1:]],  # repeated
        [*chunks, chunks[-1]],  # the last one twice
    ):
        with pytest.raises(IntegrityError):
            read(head + b"".join(variant))


def test_a_wrong_key_is_refused_before_any_chunk_and_told_apart_from_damage():
    raw = build([("a", TEXT)])
    with pytest.raises(WrongPassphrase):
        read(raw, secret=b"x" * 32)
    damaged = bytearray(raw)
    damaged[30] ^= 1  # inside the header's JSON
    with pytest.raises(IntegrityError, match="header"):
        read(bytes(damaged), secret=b"x" * 32)


def test_header_of_another_archive_fails_every_chunk():
    one, two = build([("a", TEXT)]), build([("a", TEXT)])
    first = chunk_offsets(one)[0]
    spliced = two[: chunk_offsets(two)[0]] + one[first:]
    with pytest.raises((IntegrityError, WrongPassphrase)):
        read(spliced)


def test_not_an_archive_and_a_newer_format_are_input_errors():
    with pytest.raises(InvalidInput, match="not an aico archive"):
        read(b"SQLite format 3\x00" + bytes(100))
    raw = build([("a", b"x")])
    (length,) = struct.unpack(">I", raw[8:12])
    doc = raw[12 : 12 + length].replace(b'"format":1', b'"format":9')
    import hashlib

    newer = raw[:8] + struct.pack(">I", len(doc)) + doc + hashlib.sha256(doc).digest()
    with pytest.raises(InvalidInput, match="newer"):
        read(newer + raw[12 + length + 32 :])


def test_an_entry_cannot_inflate_beyond_its_declared_size():
    """Written by hand: a zstd record of 64 MiB of zeros that declares 10 bytes."""
    header, key = new_header("backup", {}, lambda salt: SECRET)
    out = io.BytesIO()
    sealed = SealedWriter(out, key, header)
    bomb = zstandard.ZstdCompressor().compress(bytes(64 << 20))
    sealed.write(bytes([1]) + struct.pack(">H", 1) + b"a" + struct.pack(">QB", 10, CODEC_ZSTD))
    sealed.write(struct.pack(">I", len(bomb)) + bomb + struct.pack(">I", 0) + bytes([0]))
    sealed.finish()
    with pytest.raises(IntegrityError, match="longer than declared"):
        read(out.getvalue())
