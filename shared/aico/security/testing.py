"""Test and demo helpers: a real keyring backend that lives in memory.

Use ``keyring.set_keyring(InMemoryKeyring())``. Its priority is negative, so keyring's
automatic backend detection never picks it just because this module was imported.
"""

from __future__ import annotations

from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError

__all__ = ["InMemoryKeyring"]


class InMemoryKeyring(KeyringBackend):
    """A process-local ``KeyringBackend``: the full keyring contract, no OS service needed."""

    priority = -1  # below keyring's fail backend (0): only ever used when set explicitly

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._entries: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self._entries.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self._entries[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        try:
            del self._entries[(service, username)]
        except KeyError:
            raise PasswordDeleteError("no such entry") from None

    def __len__(self) -> int:
        return len(self._entries)
