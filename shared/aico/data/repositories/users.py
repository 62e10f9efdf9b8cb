"""``UserService``: user profiles. Deleting a user cascades to their facts and feedback."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aico.data.repositories._base import (
    Clock,
    Connection,
    dump_json,
    load_json,
    new_id,
    now,
    require_text,
)
from aico.errors import ConstraintViolation, InvalidInput, NotFound
from aico.validation import check_id

__all__ = ["USER_TYPES", "UserProfile", "UserService"]

USER_TYPES = ("person", "admin", "guest")
_UPDATABLE = ("display_name", "nickname", "user_type", "preferences", "is_active")


@dataclass(frozen=True)
class UserProfile:
    user_id: str
    display_name: str
    nickname: str | None
    user_type: str
    preferences: dict[str, Any]
    is_active: bool
    created_at: float
    updated_at: float

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> UserProfile:
        return cls(
            user_id=row["user_id"],
            display_name=row["display_name"],
            nickname=row["nickname"],
            user_type=row["user_type"],
            preferences=load_json(row["preferences"]),
            is_active=bool(row["is_active"]),
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )


def _check_user_id(user_id: object) -> str:
    return check_id(user_id, "user_id")


class UserService:
    """Create, read, update and delete users; takes an open core-database connection."""

    def __init__(self, conn: Connection, *, clock: Clock | None = None) -> None:
        self.conn = conn
        self.clock = clock

    def create_user(
        self,
        display_name: str,
        *,
        user_id: str | None = None,
        nickname: str | None = None,
        user_type: str = "person",
        preferences: dict[str, Any] | None = None,
    ) -> UserProfile:
        user_id = _check_user_id(user_id) if user_id is not None else new_id()
        require_text("display_name", display_name, max_len=200)
        if nickname is not None:
            require_text("nickname", nickname, max_len=100)
        if user_type not in USER_TYPES:
            raise InvalidInput(f"user_type must be one of {', '.join(USER_TYPES)}")
        ts = now(self.clock)
        try:
            self.conn.execute(
                "INSERT INTO users (user_id, display_name, nickname, user_type, preferences, "
                "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    user_id,
                    display_name,
                    nickname,
                    user_type,
                    dump_json("preferences", preferences),
                    ts,
                    ts,
                ),
            )
        except ConstraintViolation:
            raise InvalidInput("a user with this user_id already exists") from None
        return self.get_profile(user_id)

    def get_profile(self, user_id: str) -> UserProfile:
        """The user's profile; ``NotFound`` if there is no such user."""
        row = self.conn.fetch_one(
            "SELECT * FROM users WHERE user_id = ?", (_check_user_id(user_id),)
        )
        if row is None:
            raise NotFound("no user with this user_id")
        return UserProfile.from_row(row)

    def exists(self, user_id: str) -> bool:
        return (
            self.conn.fetch_value(
                "SELECT 1 FROM users WHERE user_id = ?", (_check_user_id(user_id),)
            )
            is not None
        )

    def list_users(self, *, include_inactive: bool = False) -> list[UserProfile]:
        sql = "SELECT * FROM users"
        if not include_inactive:
            sql += " WHERE is_active = 1"
        return [UserProfile.from_row(r) for r in self.conn.fetch_all(sql + " ORDER BY created_at")]

    def update_user(self, user_id: str, /, **changes: Any) -> UserProfile:
        """Change any of display_name, nickname, user_type, preferences, is_active."""
        _check_user_id(user_id)
        unknown = sorted(set(changes) - set(_UPDATABLE))
        if unknown:
            raise InvalidInput(f"cannot update field(s) {unknown}; allowed: {list(_UPDATABLE)}")
        if not changes:
            return self.get_profile(user_id)
        values: dict[str, Any] = {}
        for field, value in changes.items():
            if field == "display_name":
                values[field] = require_text(field, value, max_len=200)
            elif field == "nickname":
                values[field] = None if value is None else require_text(field, value, max_len=100)
            elif field == "user_type":
                if value not in USER_TYPES:
                    raise InvalidInput(f"user_type must be one of {', '.join(USER_TYPES)}")
                values[field] = value
            elif field == "preferences":
                values[field] = dump_json(field, value)
            else:
                if not isinstance(value, bool):
                    raise InvalidInput("is_active must be a boolean")
                values[field] = int(value)
        assignments = ", ".join(f"{field} = ?" for field in values)
        result = self.conn.execute(
            f"UPDATE users SET {assignments}, updated_at = ? WHERE user_id = ?",
            (*values.values(), now(self.clock), _check_user_id(user_id)),
        )
        if result.rowcount == 0:
            raise NotFound("no user with this user_id")
        return self.get_profile(user_id)

    def delete_user(self, user_id: str) -> None:
        """Delete the user; facts and feedback go with them (ON DELETE CASCADE)."""
        result = self.conn.execute(
            "DELETE FROM users WHERE user_id = ?", (_check_user_id(user_id),)
        )
        if result.rowcount == 0:
            raise NotFound("no user with this user_id")
