"""``TokenRepository``: the companion backend's bearer tokens, kept only as keyed hashes.

A token is ``aico_<token_id>_<secret>``: ``token_id`` (public, 16 hex digits) names the row,
the whole string is hashed with HMAC-SHA256 under a key the caller derives from the master
key (``TOKEN_HASH_PURPOSE``). The plaintext exists once, in ``create``'s return value: the
database holds the hash, so a copy of the decrypted file does not yield a usable token.
``verify`` looks the row up by its id and compares hashes with ``hmac.compare_digest``.

Rotating the master key changes the hash key, so every token stops verifying: rotation is
what one does after a suspected compromise, and the devices must then be enrolled again
(``key_id`` records the key a token was made under, so ``aico tokens list`` can say so).
A user's tokens are deleted with the user (``ON DELETE CASCADE``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Any

from aico.data.repositories._base import Clock, Connection, now, require_text
from aico.errors import ConstraintViolation, InvalidInput, NotFound
from aico.validation import check_id

__all__ = ["TOKEN_HASH_PURPOSE", "TOKEN_SCOPES", "ApiToken", "TokenRepository"]

TOKEN_HASH_PURPOSE = "backend/tokens"
"""The ``MasterKey.subkey`` purpose of the HMAC key that hashes tokens."""

TOKEN_SCOPES = ("user", "admin")
_PREFIX = "aico_"
_TOKEN = re.compile(r"aico_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")
_MAX_TOKEN_CHARS = 200


@dataclass(frozen=True)
class ApiToken:
    """A token's row: everything but the secret (which is never stored)."""

    token_id: str
    scope: str
    user_id: str | None
    label: str | None
    key_id: str
    created_at: float
    last_used_at: float | None
    revoked_at: float | None

    @property
    def is_admin(self) -> bool:
        return self.scope == "admin"

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ApiToken:
        return cls(
            token_id=str(row["token_id"]),
            scope=str(row["scope"]),
            user_id=row["user_id"],
            label=row["label"],
            key_id=str(row["key_id"]),
            created_at=float(row["created_at"]),
            last_used_at=row["last_used_at"],
            revoked_at=row["revoked_at"],
        )


def _check_key(hash_key: object) -> bytes:
    if not isinstance(hash_key, bytes) or len(hash_key) < 32:
        raise InvalidInput("hash_key must be at least 32 bytes")
    return hash_key


class TokenRepository:
    """Create, verify, revoke and list tokens; takes an open core-database connection.

    ``hash_key``: ``store.master_key.subkey(TOKEN_HASH_PURPOSE)``; ``key_id``: the master
    key's fingerprint, recorded with each new token.
    """

    def __init__(
        self, conn: Connection, hash_key: bytes, *, key_id: str = "", clock: Clock | None = None
    ) -> None:
        self.conn = conn
        self._key = _check_key(hash_key)
        self.key_id = key_id
        self.clock = clock

    def _hash(self, token: str) -> bytes:
        return hmac.new(self._key, token.encode("ascii"), hashlib.sha256).digest()

    def create(
        self,
        user_id: str | None = None,
        *,
        admin: bool = False,
        label: str | None = None,
        replace: bool = False,
    ) -> tuple[ApiToken, str]:
        """A new token for ``user_id`` (or the admin token); returns the row and the secret.

        There is one live admin token: ``replace=True`` revokes the current one in the same
        transaction, otherwise creating a second one raises ``InvalidInput``.
        """
        if admin == (user_id is not None):
            raise InvalidInput("a token is either for one user_id or the admin token")
        if user_id is not None:
            check_id(user_id, "user_id")
        if label is not None:
            require_text("label", label, max_len=200)
        token_id = secrets.token_hex(8)
        token = f"{_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
        ts = now(self.clock)
        scope = "admin" if admin else "user"
        with self.conn.transaction():
            if admin and replace:
                self.conn.execute(
                    "UPDATE api_tokens SET revoked_at = ? "
                    "WHERE scope = 'admin' AND revoked_at IS NULL",
                    (ts,),
                )
            try:
                self.conn.execute(
                    "INSERT INTO api_tokens (token_id, token_hash, scope, user_id, label, key_id,"
                    " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (token_id, self._hash(token), scope, user_id, label, self.key_id, ts),
                )
            except ConstraintViolation:
                if admin:
                    raise InvalidInput(
                        "an admin token exists already; revoke it or replace it"
                    ) from None
                raise NotFound("no user with this user_id") from None
        return self.get(token_id), token

    def verify(self, token: object) -> ApiToken | None:
        """The live token this string is, or None (malformed, unknown, wrong or revoked)."""
        if not isinstance(token, str) or len(token) > _MAX_TOKEN_CHARS:
            return None
        match = _TOKEN.fullmatch(token)
        if match is None:
            return None
        row = self.conn.fetch_one("SELECT * FROM api_tokens WHERE token_id = ?", (match.group(1),))
        if row is None:
            self._hash(token)  # the same work as a known id: no timing difference
            return None
        if not hmac.compare_digest(bytes(row["token_hash"]), self._hash(token)):
            return None
        found = ApiToken.from_row(row)
        return found if found.active else None

    def touch(self, token_id: str, when: float | None = None) -> None:
        """Record a use (the backend calls this at most once a minute per token)."""
        self.conn.execute(
            "UPDATE api_tokens SET last_used_at = ? WHERE token_id = ?",
            (now(self.clock) if when is None else when, check_id(token_id, "token_id")),
        )

    def get(self, token_id: str) -> ApiToken:
        row = self.conn.fetch_one(
            "SELECT * FROM api_tokens WHERE token_id = ?", (check_id(token_id, "token_id"),)
        )
        if row is None:
            raise NotFound("no token with this token_id")
        return ApiToken.from_row(row)

    def revoke(self, token_id: str) -> ApiToken:
        """Revoke a token (idempotent); ``NotFound`` for an unknown id."""
        self.conn.execute(
            "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, ?) WHERE token_id = ?",
            (now(self.clock), check_id(token_id, "token_id")),
        )
        return self.get(token_id)

    def list(self, *, user_id: str | None = None, include_revoked: bool = False) -> list[ApiToken]:
        """Tokens, oldest first (the admin token's ``user_id`` is None)."""
        clauses: list[str] = []
        params: list[Any] = []
        if user_id is not None:
            clauses.append("user_id = ?")
            params.append(check_id(user_id, "user_id"))
        if not include_revoked:
            clauses.append("revoked_at IS NULL")
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self.conn.fetch_all(
            f"SELECT * FROM api_tokens{where} ORDER BY created_at, token_id", tuple(params)
        )
        return [ApiToken.from_row(r) for r in rows]
