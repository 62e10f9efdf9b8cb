"""``/v1/users`` (the admin's) and ``/v1/me`` (any token)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status

from aico.errors import NotFound
from aico_backend.deps import Auth, Svc
from aico_backend.errors import Forbidden
from aico_backend.models import ForgetResponse, UserCreate, UserOut, UserUpdate
from aico_backend.routes._convert import fields, forget_response

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["users"])

_SELF_FIELDS = {"display_name", "nickname", "preferences"}


@router.get("/me", summary="Who this token is")
async def me(svc: Svc, who: Auth) -> dict[str, Any]:
    user = None
    if who.user_id is not None:
        user = UserOut(**fields(await svc.run(svc.users.get_profile, who.user_id)))
    return {"token_id": who.token_id, "admin": who.is_admin, "user": user}


@router.post("/users", status_code=status.HTTP_201_CREATED, summary="Create a user (admin)")
async def create_user(body: UserCreate, svc: Svc, who: Auth) -> UserOut:
    who.require_admin()
    profile = await svc.run(
        svc.users.create_user,
        body.display_name,
        user_id=body.user_id,
        nickname=body.nickname,
        user_type=body.user_type,
        preferences=body.preferences,
    )
    return UserOut(**fields(profile))


@router.get("/users", summary="List users (admin)")
async def list_users(svc: Svc, who: Auth, include_inactive: bool = False) -> dict[str, Any]:
    who.require_admin()
    users = await svc.run(svc.users.list_users, include_inactive=include_inactive)
    return {"users": [UserOut(**fields(u)) for u in users]}


@router.get("/users/{user_id}", summary="A user's profile (admin, or the user)")
async def get_user(user_id: str, svc: Svc, who: Auth) -> UserOut:
    return UserOut(**fields(await svc.run(svc.users.get_profile, who.user(user_id))))


@router.patch("/users/{user_id}", summary="Change a profile (the user: name and preferences)")
async def update_user(user_id: str, body: UserUpdate, svc: Svc, who: Auth) -> UserOut:
    target = who.user(user_id)
    changes = body.model_dump(exclude_unset=True)
    if not who.is_admin and set(changes) - _SELF_FIELDS:
        raise Forbidden("only the admin token changes user_type or is_active")
    if not await svc.run(svc.users.exists, target):
        raise NotFound("no user with this user_id")
    return UserOut(**fields(await svc.run(svc.users.update_user, target, **changes)))


@router.delete("/users/{user_id}", summary="Forget a user everywhere (admin)")
async def delete_user(user_id: str, svc: Svc, who: Auth) -> ForgetResponse:
    who.require_admin()
    target = who.user(user_id)
    if not await svc.run(svc.users.exists, target):
        raise NotFound("no user with this user_id")
    return forget_response(await svc.memory.forget(target))
