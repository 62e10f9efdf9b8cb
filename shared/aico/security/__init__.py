"""aico's key hierarchy: passphrase → Argon2id KEK → master key → HKDF subkeys.

``unlock_master_key`` finds the master key (argument, OS keyring, environment, prompt);
``KeyFile`` keeps it wrapped on disk and handles passphrase changes and crash-safe
master-key rotation; ``MasterKey.subkey(Purpose.…)`` gives each store its own key.
"""

from __future__ import annotations

from aico.security.kdf import KdfParams
from aico.security.keyfile import KeyFile
from aico.security.master_key import MasterKey, Purpose
from aico.security.unlock import (
    ENV_PASSPHRASE,
    ENV_PASSPHRASE_FILE,
    forget_from_keyring,
    keyring_available,
    remember_in_keyring,
    unlock_master_key,
)

__all__ = [
    "ENV_PASSPHRASE",
    "ENV_PASSPHRASE_FILE",
    "KdfParams",
    "KeyFile",
    "MasterKey",
    "Purpose",
    "forget_from_keyring",
    "keyring_available",
    "remember_in_keyring",
    "unlock_master_key",
]
