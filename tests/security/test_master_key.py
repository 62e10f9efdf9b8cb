"""MasterKey, Purpose and KdfParams: pure logic, no files."""

from __future__ import annotations

import base64
import copy
import pickle

import pytest

from aico.errors import InvalidInput
from aico.security import KdfParams, MasterKey, Purpose

KNOWN = bytes(range(32))


def test_subkeys_are_deterministic_and_distinct_per_purpose() -> None:
    master = MasterKey.generate()
    purposes = [
        Purpose.libsql("aico"),
        Purpose.libsql("conversations"),
        Purpose.seal("aico"),
        Purpose.LMDB_VALUES,
        Purpose.LMDB_KEY_HASH,
        Purpose.VECTOR_ROTATION,
        Purpose.user("u-1"),
    ]
    keys = [master.subkey(p) for p in purposes]
    assert len(set(keys)) == len(purposes)
    assert all(len(k) == 32 for k in keys)
    assert keys == [MasterKey.from_bytes(master.expose_bytes()).subkey(p) for p in purposes]
    assert MasterKey.generate().subkey(purposes[0]) != keys[0]


def test_subkey_derivation_is_pinned() -> None:
    """Changing the HKDF info layout would orphan every existing database."""
    master = MasterKey.from_bytes(KNOWN)
    expected = "b7f98ccf8a0d30b4f0ef4a56ec170ace39069c6ba0468a317b5b24b2775b503d"
    assert master.subkey("libsql/aico").hex() == expected
    assert master.key_id == "42c74128f281eeff"


def test_subkey_length() -> None:
    master = MasterKey.from_bytes(KNOWN)
    long = master.subkey(Purpose.VECTOR_ROTATION, length=64)
    assert len(long) == 64
    assert len(master.subkey(Purpose.VECTOR_ROTATION, length=16)) == 16
    for bad in (0, -1, 255 * 32 + 1):
        with pytest.raises(InvalidInput):
            master.subkey(Purpose.VECTOR_ROTATION, length=bad)


@pytest.mark.parametrize("bad", ["", "a/b", "../x", ".hidden", "sp ace", "é", "x" * 129, "a\n"])
def test_purpose_names_are_validated(bad: str) -> None:
    for build in (Purpose.libsql, Purpose.seal, Purpose.user):
        with pytest.raises(InvalidInput):
            build(bad)


@pytest.mark.parametrize("bad", ["", "/", "a//b", "a/", "/a", "libsql/a b"])
def test_subkey_rejects_malformed_purposes(bad: str) -> None:
    with pytest.raises(InvalidInput):
        MasterKey.generate().subkey(bad)


def test_purpose_builders() -> None:
    assert Purpose.libsql("aico") == "libsql/aico"
    assert Purpose.seal("file_index") == "seal/file_index"
    assert Purpose.user("3f2a-01:x@y") == "user/3f2a-01:x@y"


def test_master_key_never_shows_its_bytes() -> None:
    master = MasterKey.from_bytes(KNOWN)
    for text in (repr(master), str(master), f"{master}", repr([master])):
        assert KNOWN.hex() not in text
        assert base64.b64encode(KNOWN).decode() not in text
        assert repr(KNOWN) not in text
        assert master.key_id in text
    with pytest.raises(TypeError):
        pickle.dumps(master)
    assert copy.deepcopy(master) is master


def test_master_key_equality_and_validation() -> None:
    assert MasterKey.from_bytes(KNOWN) == MasterKey.from_bytes(bytearray(KNOWN))
    assert MasterKey.from_bytes(KNOWN) != MasterKey.generate()
    assert len({MasterKey.from_bytes(KNOWN), MasterKey.from_bytes(KNOWN)}) == 1
    for bad in (b"", KNOWN[:31], KNOWN + b"x"):
        with pytest.raises(InvalidInput) as info:
            MasterKey.from_bytes(bad)
        assert "32 bytes" in str(info.value)
    with pytest.raises(InvalidInput):
        MasterKey.from_bytes("not bytes")  # type: ignore[arg-type]
    with pytest.raises(AttributeError):
        MasterKey.from_bytes(KNOWN)._key = b"x"


def test_kdf_params() -> None:
    assert KdfParams() == KdfParams(time_cost=3, memory_cost_kib=65536, parallelism=4)
    cheap = KdfParams.for_tests()
    assert (cheap.time_cost, cheap.memory_cost_kib, cheap.parallelism) == (1, 8, 1)
    for bad in (
        {"time_cost": 0},
        {"parallelism": 0},
        {"memory_cost_kib": 4 * 4},  # below 8 KiB per lane
        {"memory_cost_kib": 2**40},
        {"time_cost": 1.5},
    ):
        with pytest.raises(InvalidInput):
            KdfParams(**bad)
