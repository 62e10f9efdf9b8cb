"""The key file: create, unlock, tamper, change passphrase, rotate (all on real files)."""

from __future__ import annotations

import base64
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from aico.errors import InvalidInput, KeyFileError, WrongPassphrase
from aico.security import KdfParams, KeyFile, MasterKey, Purpose

from .conftest import PASSPHRASE


def _edit(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


def _flip(b64: str) -> str:
    raw = bytearray(base64.b64decode(b64))
    raw[0] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


# ------------------------------------------------------------------------ create / unlock


def test_create_then_unlock(key_path: Path, master: MasterKey) -> None:
    assert KeyFile.unlock(key_path, PASSPHRASE) == master
    info = KeyFile.load(key_path)
    assert info.key_id == master.key_id
    assert not info.rotation_pending
    assert info.params == KdfParams.for_tests()


def test_key_file_is_owner_only_and_holds_no_secret(key_path: Path, master: MasterKey) -> None:
    if os.name != "nt":
        assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
        assert stat.S_IMODE(key_path.parent.stat().st_mode) == 0o700
    raw = key_path.read_bytes()
    assert PASSPHRASE.encode() not in raw
    assert master.expose_bytes() not in raw
    assert base64.b64encode(master.expose_bytes()) not in raw
    assert master.expose_bytes().hex().encode() not in raw
    doc = json.loads(raw)
    assert doc["format"] == 1
    assert doc["kdf"]["name"] == "argon2id"
    assert len(base64.b64decode(doc["kdf"]["salt"])) == 16
    assert doc["key"]["key_id"] == master.key_id
    assert doc["pending"] is None
    assert doc["created_at"] == doc["updated_at"]


def test_default_params_are_recorded(tmp_path: Path) -> None:
    """The one test that pays for real Argon2id (t=3, m=64 MiB, p=4)."""
    path = tmp_path / "master.key"
    KeyFile.create(path, PASSPHRASE)
    kdf = json.loads(path.read_text())["kdf"]
    assert (kdf["time_cost"], kdf["memory_cost_kib"], kdf["parallelism"]) == (3, 65536, 4)
    assert KeyFile.load(path).params == KdfParams()


def test_create_refuses_to_overwrite(key_path: Path, master: MasterKey, params: KdfParams) -> None:
    before = key_path.read_bytes()
    with pytest.raises(KeyFileError, match="already exists"):
        KeyFile.create(key_path, "another passphrase", params)
    assert key_path.read_bytes() == before
    assert KeyFile.unlock(key_path, PASSPHRASE) == master


def test_create_rejects_empty_passphrase(key_path: Path, params: KdfParams) -> None:
    with pytest.raises(InvalidInput):
        KeyFile.create(key_path, "", params)
    assert not key_path.exists()


def test_wrong_passphrase_is_opaque_and_changes_nothing(key_path: Path, master: MasterKey) -> None:
    before = key_path.read_bytes()
    with pytest.raises(WrongPassphrase) as info:
        KeyFile.unlock(key_path, "not it")
    assert str(info.value) == "wrong passphrase"
    assert info.value.__cause__ is None and info.value.__suppress_context__
    with pytest.raises(WrongPassphrase):
        KeyFile.change_passphrase(key_path, "not it", "new one")
    with pytest.raises(WrongPassphrase):
        KeyFile.begin_rotation(key_path, "not it")
    assert key_path.read_bytes() == before


def test_unicode_passphrase_is_normalised(tmp_path: Path, params: KdfParams) -> None:
    path = tmp_path / "master.key"
    master = KeyFile.create(path, "caf\u00e9", params)  # composed é
    assert KeyFile.unlock(path, "cafe\u0301") == master  # decomposed e + accent


# ------------------------------------------------------------------------ tampering


def _set_time_cost(doc: dict[str, Any]) -> None:
    doc["kdf"]["time_cost"] += 1


def _set_memory(doc: dict[str, Any]) -> None:
    doc["kdf"]["memory_cost_kib"] = 16


def _set_parallelism(doc: dict[str, Any]) -> None:
    doc["kdf"]["parallelism"] = 2
    doc["kdf"]["memory_cost_kib"] = 16


def _new_salt(doc: dict[str, Any]) -> None:
    doc["kdf"]["salt"] = base64.b64encode(os.urandom(16)).decode()


def _flip_wrapped(doc: dict[str, Any]) -> None:
    doc["key"]["wrapped"] = _flip(doc["key"]["wrapped"])


def _flip_nonce(doc: dict[str, Any]) -> None:
    doc["key"]["nonce"] = _flip(doc["key"]["nonce"])


def _other_key_id(doc: dict[str, Any]) -> None:
    doc["key"]["key_id"] = "0" * 16


@pytest.mark.parametrize(
    "tamper",
    [
        _set_time_cost,
        _set_memory,
        _set_parallelism,
        _new_salt,
        _flip_wrapped,
        _flip_nonce,
        _other_key_id,
    ],
)
def test_tampering_fails_like_a_wrong_passphrase(
    key_path: Path, master: MasterKey, tamper: Callable[[dict[str, Any]], None]
) -> None:
    _edit(key_path, tamper)
    with pytest.raises(WrongPassphrase, match=r"^wrong passphrase$"):
        KeyFile.unlock(key_path, PASSPHRASE)


def _not_json(path: Path) -> None:
    path.write_text("{not json")


def _no_kdf(path: Path) -> None:
    _edit(path, lambda d: d.pop("kdf"))


def _short_salt(path: Path) -> None:
    _edit(path, lambda d: d["kdf"].update(salt=base64.b64encode(b"short").decode()))


def _bad_base64(path: Path) -> None:
    _edit(path, lambda d: d["key"].update(wrapped="!!!"))


def _truncated_wrap(path: Path) -> None:
    _edit(path, lambda d: d["key"].update(wrapped=d["key"]["wrapped"][:-8]))


def _huge_memory(path: Path) -> None:
    _edit(path, lambda d: d["kdf"].update(memory_cost_kib=2**40))


def _other_kdf(path: Path) -> None:
    _edit(path, lambda d: d["kdf"].update(name="scrypt"))


def _binary(path: Path) -> None:
    path.write_bytes(b"\xff\xfe\x00")


@pytest.mark.parametrize(
    "damage",
    [
        _not_json,
        _no_kdf,
        _short_salt,
        _bad_base64,
        _truncated_wrap,
        _huge_memory,
        _other_kdf,
        _binary,
    ],
)
def test_malformed_key_file(key_path: Path, master: MasterKey, damage: Callable[[Path], None]):
    damage(key_path)
    with pytest.raises(KeyFileError) as info:
        KeyFile.unlock(key_path, PASSPHRASE)
    message = str(info.value)
    assert str(key_path) in message and "malformed" in message
    assert PASSPHRASE not in message


def test_missing_key_file(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "master.key"
    with pytest.raises(KeyFileError, match="does not exist") as info:
        KeyFile.unlock(path, PASSPHRASE)
    assert str(path) in str(info.value)
    with pytest.raises(KeyFileError, match="does not exist"):
        KeyFile.change_passphrase(path, PASSPHRASE, "new")


def test_future_format_is_refused(key_path: Path, master: MasterKey) -> None:
    _edit(key_path, lambda d: d.update(format=2))
    with pytest.raises(KeyFileError, match="format 2, newer"):
        KeyFile.unlock(key_path, PASSPHRASE)


# ------------------------------------------------------------------------ change passphrase


def test_change_passphrase_keeps_the_master_key(key_path: Path, master: MasterKey) -> None:
    before = json.loads(key_path.read_text())
    KeyFile.change_passphrase(key_path, PASSPHRASE, "a new passphrase")
    after = json.loads(key_path.read_text())

    unlocked = KeyFile.unlock(key_path, "a new passphrase")
    assert unlocked == master
    assert unlocked.subkey(Purpose.libsql("aico")) == master.subkey(Purpose.libsql("aico"))
    with pytest.raises(WrongPassphrase):
        KeyFile.unlock(key_path, PASSPHRASE)
    assert after["kdf"]["salt"] != before["kdf"]["salt"]
    assert after["key"]["key_id"] == before["key"]["key_id"]
    assert after["created_at"] == before["created_at"]
    assert not Path(str(key_path) + ".tmp").exists()


def test_change_passphrase_can_upgrade_params(key_path: Path, master: MasterKey) -> None:
    stronger = KdfParams(time_cost=2, memory_cost_kib=16, parallelism=2)
    KeyFile.change_passphrase(key_path, PASSPHRASE, "new", params=stronger)
    assert KeyFile.load(key_path).params == stronger
    assert KeyFile.unlock(key_path, "new") == master


def test_change_passphrase_rewraps_a_pending_key(key_path: Path, master: MasterKey) -> None:
    _, new = KeyFile.begin_rotation(key_path, PASSPHRASE)
    KeyFile.change_passphrase(key_path, PASSPHRASE, "changed")
    assert KeyFile.pending_rotation(key_path, "changed") == new
    assert KeyFile.finish_rotation(key_path, "changed") == new
    assert KeyFile.unlock(key_path, "changed") == new


def test_change_passphrase_rejects_empty_new(key_path: Path, master: MasterKey) -> None:
    before = key_path.read_bytes()
    with pytest.raises(InvalidInput):
        KeyFile.change_passphrase(key_path, PASSPHRASE, "")
    assert key_path.read_bytes() == before


# ------------------------------------------------------------------------ rotation


def test_rotation_begin_resume_finish(key_path: Path, master: MasterKey) -> None:
    assert KeyFile.pending_rotation(key_path, PASSPHRASE) is None
    old, new = KeyFile.begin_rotation(key_path, PASSPHRASE)
    assert old == master and new != master
    assert KeyFile.load(key_path).rotation_pending
    # Resume after an interruption: the very same new key comes back.
    assert KeyFile.begin_rotation(key_path, PASSPHRASE) == (old, new)
    assert KeyFile.pending_rotation(key_path, PASSPHRASE) == new
    assert KeyFile.unlock(key_path, PASSPHRASE) == old  # still the current key until finish

    assert KeyFile.finish_rotation(key_path, PASSPHRASE) == new
    assert KeyFile.unlock(key_path, PASSPHRASE) == new
    info = KeyFile.load(key_path)
    assert info.key_id == new.key_id and not info.rotation_pending
    with pytest.raises(KeyFileError, match="no pending"):
        KeyFile.finish_rotation(key_path, PASSPHRASE)


def test_rotation_abort(key_path: Path, master: MasterKey) -> None:
    KeyFile.begin_rotation(key_path, PASSPHRASE)
    KeyFile.abort_rotation(key_path, PASSPHRASE)
    assert KeyFile.pending_rotation(key_path, PASSPHRASE) is None
    assert KeyFile.unlock(key_path, PASSPHRASE) == master
    before = key_path.read_bytes()
    KeyFile.abort_rotation(key_path, PASSPHRASE)  # nothing pending: a no-op
    assert key_path.read_bytes() == before
    _, fresh = KeyFile.begin_rotation(key_path, PASSPHRASE)
    assert fresh != master


def test_rotation_checks_the_passphrase(key_path: Path, master: MasterKey) -> None:
    with pytest.raises(WrongPassphrase):
        KeyFile.pending_rotation(key_path, "nope")  # even with nothing pending
    KeyFile.begin_rotation(key_path, PASSPHRASE)
    before = key_path.read_bytes()
    for op in (KeyFile.finish_rotation, KeyFile.abort_rotation, KeyFile.pending_rotation):
        with pytest.raises(WrongPassphrase):
            op(key_path, "nope")
    assert key_path.read_bytes() == before


def test_pending_and_current_slots_cannot_be_swapped(key_path: Path, master: MasterKey) -> None:
    KeyFile.begin_rotation(key_path, PASSPHRASE)
    _edit(key_path, lambda d: d.update(key=d["pending"], pending=d["key"]))
    with pytest.raises(WrongPassphrase):
        KeyFile.unlock(key_path, PASSPHRASE)
