"""Alias of ``aico.data.repositories.users``: the data layer's documented import path."""

from aico.data.repositories.users import USER_TYPES, UserProfile, UserService

__all__ = ["USER_TYPES", "UserProfile", "UserService"]
