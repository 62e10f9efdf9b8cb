"""Where the master key comes from at start-up, tried in a fixed, documented order.

1. an explicit passphrase argument;
2. the OS keyring, when a real backend exists: it holds the *master key* (base64) under
   ``(service, key_id)``, never the passphrase, and is ignored when its key id does not
   match the key file (stale after a rotation);
3. ``AICO_PASSPHRASE``, then ``AICO_PASSPHRASE_FILE`` (a file only its owner may access);
4. a ``getpass`` prompt when running on a terminal;
5. otherwise ``Locked``, naming every option.

A wrong passphrase from sources 1, 3 or 4 raises ``WrongPassphrase`` rather than falling
through: silently trying the next source would hide the mistake.
"""

from __future__ import annotations

import base64
import getpass
import logging
import os
import stat
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Final

import keyring
import keyring.errors
from keyring.backend import KeyringBackend
from keyring.backends import chainer, fail, null

from aico.errors import ConfigError, Locked, SecurityError, WrongPassphrase
from aico.security.keyfile import KeyFile
from aico.security.master_key import MasterKey

__all__ = [
    "ENV_PASSPHRASE",
    "ENV_PASSPHRASE_FILE",
    "forget_from_keyring",
    "keyring_available",
    "remember_in_keyring",
    "unlock_master_key",
]

ENV_PASSPHRASE: Final = "AICO_PASSPHRASE"
ENV_PASSPHRASE_FILE: Final = "AICO_PASSPHRASE_FILE"
DEFAULT_SERVICE: Final = "aico"
_PROMPT_ATTEMPTS: Final = 3
_MAX_PASSPHRASE_FILE_BYTES: Final = 64 * 1024

log = logging.getLogger(__name__)


def unlock_master_key(
    key_path: str | os.PathLike[str],
    *,
    passphrase: str | None = None,
    use_keyring: bool = True,
    env: Mapping[str, str] | None = None,
    interactive: bool | None = None,
    service: str = DEFAULT_SERVICE,
) -> MasterKey:
    """Unlock the master key of ``key_path`` from the first available source (see module doc).

    ``env`` defaults to ``os.environ``; ``interactive`` defaults to ``sys.stdin.isatty()``.
    """
    key_path = Path(key_path)
    key_file = KeyFile.load(key_path)  # a missing/malformed key file fails before anything else
    if passphrase is not None:
        return KeyFile.unlock(key_path, passphrase)
    if use_keyring:
        master = _from_keyring(key_file, service)
        if master is not None:
            return master
    env = os.environ if env is None else env
    if env.get(ENV_PASSPHRASE):
        return KeyFile.unlock(key_path, env[ENV_PASSPHRASE])
    if env.get(ENV_PASSPHRASE_FILE):
        return KeyFile.unlock(key_path, _read_passphrase_file(Path(env[ENV_PASSPHRASE_FILE])))
    if interactive is None:
        interactive = sys.stdin is not None and sys.stdin.isatty()
    if interactive:
        master = _prompt(key_path)
        if master is not None:
            return master
    raise Locked(
        f"cannot unlock {key_path}: no unlock source is available. Either pass a passphrase, "
        f"set {ENV_PASSPHRASE}, set {ENV_PASSPHRASE_FILE} to a file only you can read, "
        "run interactively on a terminal, or install/configure an OS keyring backend "
        "and remember the key in it."
    )


def keyring_available() -> bool:
    """True when the active keyring backend can actually store something."""
    return _real_backend() is not None


def remember_in_keyring(master: MasterKey, service: str = DEFAULT_SERVICE) -> bool:
    """Store the master key in the OS keyring; False when there is no working backend."""
    backend = _real_backend()
    if backend is None:
        return False
    encoded = base64.b64encode(master.expose_bytes()).decode("ascii")
    try:
        backend.set_password(service, master.key_id, encoded)
    except Exception as exc:  # any backend failure means "not remembered", never a crash
        log.debug("keyring refused to store the master key: %s", type(exc).__name__)
        return False
    return True


def forget_from_keyring(key_id: str, service: str = DEFAULT_SERVICE) -> bool:
    """Delete a remembered master key; True when an entry was deleted."""
    backend = _real_backend()
    if backend is None:
        return False
    try:
        backend.delete_password(service, key_id)
    except keyring.errors.PasswordDeleteError:
        return False
    return True


# --------------------------------------------------------------------------- internals


def _is_real(backend: KeyringBackend) -> bool:
    if isinstance(backend, fail.Keyring | null.Keyring):
        return False
    if isinstance(backend, chainer.ChainerBackend):
        return any(_is_real(b) for b in backend.backends)
    return True


def _real_backend() -> KeyringBackend | None:
    try:
        backend = keyring.get_keyring()
        return backend if _is_real(backend) else None
    except Exception as exc:  # a misconfigured keyring is the same as no keyring
        log.debug("keyring backend unavailable: %s", type(exc).__name__)
        return None


def _from_keyring(key_file: KeyFile, service: str) -> MasterKey | None:
    backend = _real_backend()
    if backend is None:
        return None
    try:
        stored = backend.get_password(service, key_file.key_id)
    except Exception as exc:  # NoKeyringError, KeyringLocked, D-Bus errors, ...
        log.debug("keyring lookup failed: %s", type(exc).__name__)
        return None
    if stored is None:
        return None
    try:
        master = MasterKey.from_bytes(base64.b64decode(stored, validate=True))
    except ValueError:  # binascii.Error and InvalidInput are both ValueErrors
        log.warning("ignoring an unreadable keyring entry for key %s", key_file.key_id)
        return None
    if master.key_id != key_file.key_id:
        log.warning("ignoring a keyring entry that does not match key %s", key_file.key_id)
        return None
    return master


def _read_passphrase_file(path: Path) -> str:
    """Read a passphrase file, refusing one that group or others can access."""
    path = path.expanduser()
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise ConfigError(f"{ENV_PASSPHRASE_FILE}: cannot open {path}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)  # checked on the open file, so it cannot be swapped afterwards
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{ENV_PASSPHRASE_FILE}: {path} is not a regular file")
        if os.name != "nt" and info.st_mode & 0o077:
            raise SecurityError(
                f"{ENV_PASSPHRASE_FILE}: {path} is accessible by group or others "
                f"(mode {stat.S_IMODE(info.st_mode):04o}); run `chmod 600 {path}`"
            )
        raw = os.read(fd, _MAX_PASSPHRASE_FILE_BYTES + 1)
    finally:
        os.close(fd)
    if len(raw) > _MAX_PASSPHRASE_FILE_BYTES:
        raise ConfigError(f"{ENV_PASSPHRASE_FILE}: {path} is too large for a passphrase file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{ENV_PASSPHRASE_FILE}: {path} is not UTF-8 text") from None
    if text.endswith("\r\n"):
        text = text[:-2]
    elif text.endswith("\n"):
        text = text[:-1]
    if not text:
        raise ConfigError(f"{ENV_PASSPHRASE_FILE}: {path} is empty")
    return text


def _prompt(key_path: Path) -> MasterKey | None:
    """Ask on the terminal, a few times; None when the user sends EOF."""
    for attempt in range(1, _PROMPT_ATTEMPTS + 1):
        try:
            entered = getpass.getpass(f"Passphrase for {key_path}: ")
        except EOFError:
            return None
        try:
            return KeyFile.unlock(key_path, entered)
        except WrongPassphrase:
            if attempt == _PROMPT_ATTEMPTS:
                raise
            print("Wrong passphrase, try again.", file=sys.stderr)
    return None
