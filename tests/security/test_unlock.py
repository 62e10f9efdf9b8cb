"""Unlock sources, in order: argument, OS keyring, environment, prompt, else Locked."""

from __future__ import annotations

import base64
import getpass
import os
from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest
from keyring.backend import KeyringBackend
from keyring.backends import chainer, fail, null
from keyring.errors import KeyringLocked

from aico.errors import ConfigError, KeyFileError, Locked, SecurityError, WrongPassphrase
from aico.security import (
    KeyFile,
    MasterKey,
    forget_from_keyring,
    keyring_available,
    remember_in_keyring,
    unlock_master_key,
)
from aico.security.testing import InMemoryKeyring

from .conftest import PASSPHRASE

NO_ENV: dict[str, str] = {}


class _LockedKeyring(KeyringBackend):
    """A real backend that is there but refuses every request (a locked OS keychain)."""

    priority = -1

    def get_password(self, service: str, username: str) -> str | None:
        raise KeyringLocked("locked")

    def set_password(self, service: str, username: str, password: str) -> None:
        raise KeyringLocked("locked")

    def delete_password(self, service: str, username: str) -> None:
        raise KeyringLocked("locked")


def _unlock(path: Path, **kwargs: object) -> MasterKey:
    kwargs.setdefault("env", NO_ENV)
    kwargs.setdefault("interactive", False)
    return unlock_master_key(path, **kwargs)  # type: ignore[arg-type]


# ------------------------------------------------------------------------ explicit + keyring


def test_explicit_passphrase(key_path: Path, master: MasterKey) -> None:
    assert _unlock(key_path, passphrase=PASSPHRASE) == master
    with pytest.raises(WrongPassphrase):
        _unlock(key_path, passphrase="wrong", env={"AICO_PASSPHRASE": PASSPHRASE})


def test_missing_key_file_fails_first(tmp_path: Path, memory_keyring: InMemoryKeyring) -> None:
    with pytest.raises(KeyFileError, match="does not exist"):
        _unlock(tmp_path / "keys" / "master.key", passphrase=PASSPHRASE)


def test_keyring_unlocks_without_passphrase(
    key_path: Path, master: MasterKey, memory_keyring: InMemoryKeyring
) -> None:
    assert keyring_available()
    assert remember_in_keyring(master) is True
    stored = memory_keyring.get_password("aico", master.key_id)
    assert stored == base64.b64encode(master.expose_bytes()).decode()  # the key, not the passphrase
    assert PASSPHRASE not in stored
    assert _unlock(key_path) == master
    # The explicit argument still comes first, and is still checked.
    with pytest.raises(WrongPassphrase):
        _unlock(key_path, passphrase="wrong")
    with pytest.raises(Locked):
        _unlock(key_path, use_keyring=False)
    with pytest.raises(Locked):
        _unlock(key_path, service="another-service")


def test_forget_from_keyring(
    key_path: Path, master: MasterKey, memory_keyring: InMemoryKeyring
) -> None:
    remember_in_keyring(master)
    assert forget_from_keyring(master.key_id) is True
    assert forget_from_keyring(master.key_id) is False
    assert len(memory_keyring) == 0
    with pytest.raises(Locked):
        _unlock(key_path)


def test_stale_keyring_entry_is_ignored(
    key_path: Path, master: MasterKey, memory_keyring: InMemoryKeyring
) -> None:
    other = MasterKey.generate()
    memory_keyring.set_password(
        "aico", master.key_id, base64.b64encode(other.expose_bytes()).decode()
    )
    assert _unlock(key_path, env={"AICO_PASSPHRASE": PASSPHRASE}) == master
    memory_keyring.set_password("aico", master.key_id, "not base64 !")
    with pytest.raises(Locked):
        _unlock(key_path)


def test_keyring_entry_goes_stale_after_rotation(
    key_path: Path, master: MasterKey, memory_keyring: InMemoryKeyring
) -> None:
    remember_in_keyring(master)
    KeyFile.begin_rotation(key_path, PASSPHRASE)
    assert _unlock(key_path) == master  # a pending rotation does not change the current key
    new = KeyFile.finish_rotation(key_path, PASSPHRASE)
    with pytest.raises(Locked):
        _unlock(key_path)
    assert remember_in_keyring(new)
    assert _unlock(key_path) == new


def test_broken_keyring_falls_through(key_path: Path, master: MasterKey) -> None:
    keyring.set_keyring(_LockedKeyring())
    assert remember_in_keyring(master) is False
    assert _unlock(key_path, env={"AICO_PASSPHRASE": PASSPHRASE}) == master


# ------------------------------------------------------------------------ headless


@pytest.fixture(
    params=["fail", "null", "empty-chainer"],
)
def no_real_keyring(request: pytest.FixtureRequest) -> Iterator[None]:
    backend: KeyringBackend
    if request.param == "fail":
        backend = fail.Keyring()
    elif request.param == "null":
        backend = null.Keyring()
    else:
        backend = chainer.ChainerBackend()
        if chainer.ChainerBackend.backends:
            pytest.skip("this machine has a real keyring backend to chain")
    keyring.set_keyring(backend)
    yield


@pytest.mark.usefixtures("no_real_keyring")
def test_headless_without_sources_is_locked(key_path: Path, master: MasterKey) -> None:
    assert not keyring_available()
    assert remember_in_keyring(master) is False
    assert forget_from_keyring(master.key_id) is False
    with pytest.raises(Locked) as info:
        unlock_master_key(key_path, env={}, interactive=False)
    message = str(info.value)
    for option in (
        "pass a passphrase",
        "AICO_PASSPHRASE",
        "AICO_PASSPHRASE_FILE",
        "interactively",
        "keyring",
    ):
        assert option in message
    assert str(key_path) in message


def test_env_passphrase(key_path: Path, master: MasterKey) -> None:
    assert _unlock(key_path, env={"AICO_PASSPHRASE": PASSPHRASE}) == master
    with pytest.raises(WrongPassphrase):
        _unlock(key_path, env={"AICO_PASSPHRASE": "wrong"})
    with pytest.raises(Locked):  # empty means unset
        _unlock(key_path, env={"AICO_PASSPHRASE": ""})


def test_default_env_is_os_environ(
    key_path: Path, master: MasterKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AICO_PASSPHRASE", PASSPHRASE)
    assert unlock_master_key(key_path, interactive=False) == master


# ------------------------------------------------------------------------ passphrase file


def _secret_file(tmp_path: Path, content: str, mode: int) -> Path:
    path = tmp_path / "passphrase.txt"
    path.write_text(content, newline="")
    path.chmod(mode)
    return path


@pytest.mark.parametrize("ending", ["", "\n", "\r\n"])
def test_passphrase_file(tmp_path: Path, key_path: Path, master: MasterKey, ending: str) -> None:
    secret = _secret_file(tmp_path, PASSPHRASE + ending, 0o600)
    assert _unlock(key_path, env={"AICO_PASSPHRASE_FILE": str(secret)}) == master


def test_passphrase_file_strips_only_one_newline(
    tmp_path: Path, key_path: Path, master: MasterKey
) -> None:
    secret = _secret_file(tmp_path, PASSPHRASE + "\n\n", 0o600)
    with pytest.raises(WrongPassphrase):
        _unlock(key_path, env={"AICO_PASSPHRASE_FILE": str(secret)})


@pytest.mark.skipif(os.name == "nt", reason="POSIX permission bits")
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_passphrase_file_readable_by_others_is_refused(
    tmp_path: Path, key_path: Path, master: MasterKey, mode: int
) -> None:
    secret = _secret_file(tmp_path, PASSPHRASE, mode)
    with pytest.raises(SecurityError) as info:
        _unlock(key_path, env={"AICO_PASSPHRASE_FILE": str(secret)})
    message = str(info.value)
    assert str(secret) in message and "chmod 600" in message
    assert PASSPHRASE not in message


def test_passphrase_file_problems_are_config_errors(
    tmp_path: Path, key_path: Path, master: MasterKey
) -> None:
    with pytest.raises(ConfigError, match="AICO_PASSPHRASE_FILE"):
        _unlock(key_path, env={"AICO_PASSPHRASE_FILE": str(tmp_path / "absent")})
    empty = _secret_file(tmp_path, "\n", 0o600)
    with pytest.raises(ConfigError, match="empty"):
        _unlock(key_path, env={"AICO_PASSPHRASE_FILE": str(empty)})


def test_env_passphrase_comes_before_the_file(
    tmp_path: Path, key_path: Path, master: MasterKey
) -> None:
    secret = _secret_file(tmp_path, "wrong", 0o600)
    env = {"AICO_PASSPHRASE": PASSPHRASE, "AICO_PASSPHRASE_FILE": str(secret)}
    assert _unlock(key_path, env=env) == master


# ------------------------------------------------------------------------ prompt


def _answers(monkeypatch: pytest.MonkeyPatch, *answers: str) -> list[str]:
    prompts: list[str] = []
    pending = list(answers)

    def fake_getpass(prompt: str = "") -> str:
        prompts.append(prompt)
        if not pending:
            raise EOFError
        return pending.pop(0)

    monkeypatch.setattr(getpass, "getpass", fake_getpass)
    return prompts


def test_prompt_on_a_terminal(
    key_path: Path, master: MasterKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    prompts = _answers(monkeypatch, "typo", PASSPHRASE)
    assert _unlock(key_path, interactive=True) == master
    assert len(prompts) == 2 and str(key_path) in prompts[0]


def test_prompt_gives_up_after_three_wrong_answers(
    key_path: Path, master: MasterKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    _answers(monkeypatch, "a", "b", "c", PASSPHRASE)
    with pytest.raises(WrongPassphrase):
        _unlock(key_path, interactive=True)


def test_prompt_eof_is_locked(
    key_path: Path, master: MasterKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    _answers(monkeypatch)
    with pytest.raises(Locked):
        _unlock(key_path, interactive=True)


def test_no_prompt_when_not_interactive(
    key_path: Path, master: MasterKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    prompts = _answers(monkeypatch, PASSPHRASE)
    with pytest.raises(Locked):
        _unlock(key_path, interactive=False)
    assert prompts == []
