"""The memory page at ``/``: log in, see and search memories, edit facts, forget.

Authentication is the API's token, kept after the login form in the ``aico_token``
cookie: ``HttpOnly`` (no script can read it), ``SameSite=Strict`` (no other site's page
can make the browser send it) and scoped to this origin. Every action is a form ``POST``
that also must not come from another origin (``Origin`` header), and answers with a
redirect. A search is a ``POST`` too, so the words searched never land in a URL, the
browser's history or an access log. Forgetting asks for a confirmation page first.

The admin token sees a list of users and acts for the one chosen (``user`` parameter).
"""

from __future__ import annotations

import urllib.parse
from importlib import resources
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from aico.errors import InvalidInput, NotFound
from aico_backend.auth import Principal
from aico_backend.deps import client_of, service_of
from aico_backend.errors import Forbidden, Unauthorized
from aico_backend.page import render
from aico_backend.routes.conversations import owned_conversation
from aico_backend.routes.facts import owned_fact
from aico_backend.service import Service

__all__ = ["COOKIE", "router"]

router = APIRouter(include_in_schema=False)

COOKIE = "aico_token"
_CSS = resources.files("aico_backend").joinpath("static/page.css").read_bytes()
_MAX_FIELDS = 20
_NOTICES = {
    "saved": "Saved.",
    "added": "Added.",
    "deleted": "Deleted.",
    "forgotten": "The conversation is forgotten, everywhere.",
    "invalid": "That was not accepted (empty, or too long).",
}


# ---- helpers ---------------------------------------------------------------------------


async def _form(request: Request) -> dict[str, str]:
    """The urlencoded form of a POST (read here: no multipart parser is needed)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise InvalidInput("the page posts urlencoded forms only")
    try:
        text = (await request.body()).decode("utf-8")
        pairs = urllib.parse.parse_qsl(
            text, keep_blank_values=True, strict_parsing=False, max_num_fields=_MAX_FIELDS
        )
    except (UnicodeDecodeError, ValueError):
        raise InvalidInput("the form is not valid urlencoded UTF-8") from None
    return dict(pairs)


def _same_origin(request: Request) -> None:
    origin = request.headers.get("origin")
    if origin is None:
        return  # older browsers; the SameSite=Strict cookie still is not sent cross-site
    if origin == "null" or (
        urllib.parse.urlsplit(origin).netloc.lower() != request.headers.get("host", "").lower()
    ):
        raise Forbidden("this form was not sent from this page")


async def _principal(request: Request) -> Principal | None:
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    try:
        return await service_of(request).authenticate(token, client_of(request))
    except Unauthorized:
        return None


def _login(request: Request, error: str | None = None, status: int = 200) -> HTMLResponse:
    response = HTMLResponse(render.login_page(error), status_code=status)
    if COOKIE in request.cookies:
        response.delete_cookie(COOKIE, path="/")  # stale (revoked, or its user forgotten)
    return response


def _redirect(user_param: str | None, notice: str | None = None) -> RedirectResponse:
    query = {k: v for k, v in (("user", user_param), ("notice", notice)) if v is not None}
    suffix = f"?{urllib.parse.urlencode(query)}" if query else ""
    return RedirectResponse(f"/{suffix}", status_code=303)


def _target(who: Principal, user_param: str | None) -> tuple[str, str | None]:
    """The user the page acts for, and the ``user`` parameter its links must carry."""
    if who.is_admin:
        return who.user(user_param), user_param
    return who.user(None), None


async def _label(svc: Service, who: Principal) -> str:
    if who.is_admin:
        return "admin"
    profile = await svc.run(svc.users.get_profile, who.user())
    return str(profile.nickname or profile.display_name)


async def _page(
    svc: Service,
    who: Principal,
    user_param: str | None,
    *,
    query: str | None = None,
    notice: str | None = None,
) -> HTMLResponse:
    user_id, user_param = _target(who, user_param)
    profile = await svc.run(svc.users.get_profile, user_id)
    facts = await svc.run(svc.facts.list, user_id, limit=200)
    conversations = await svc.run(svc.conversations.for_user, user_id, limit=20)
    hits = await svc.memory.search(user_id, query, 10) if query else []
    view = render.PageView(
        user=profile,
        facts=facts,
        conversations=conversations,
        query=query,
        hits=hits,
        notice=_NOTICES.get(notice or ""),
        user_param=user_param,
        label=await _label(svc, who),
    )
    return HTMLResponse(render.memory_page(view))


async def _require(request: Request) -> tuple[Service, Principal]:
    who = await _principal(request)
    if who is None:
        raise Unauthorized("log in first")
    return service_of(request), who


# ---- routes ----------------------------------------------------------------------------


@router.get("/static/page.css")
async def stylesheet() -> Response:
    return Response(_CSS, media_type="text/css")


@router.get("/")
async def index(request: Request, user: str | None = None, notice: str | None = None) -> Response:
    who = await _principal(request)
    if who is None:
        return _login(request)
    svc = service_of(request)
    if who.is_admin and user is None:
        users = await svc.run(svc.users.list_users)
        return HTMLResponse(render.users_page(users, "admin"))
    return await _page(svc, who, user, notice=notice)


@router.post("/login")
async def login(request: Request) -> Response:
    _same_origin(request)
    form = await _form(request)
    svc = service_of(request)
    try:
        await svc.authenticate(form.get("token", "").strip(), client_of(request))
    except Unauthorized:
        return _login(request, "That token is not valid.", status=401)
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(
        COOKIE,
        form["token"].strip(),
        httponly=True,
        samesite="strict",
        path="/",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    _same_origin(request)
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


@router.post("/page/search")
async def search(request: Request) -> Response:
    _same_origin(request)
    svc, who = await _require(request)
    form = await _form(request)
    query = form.get("q", "").strip()
    if not query:
        return _redirect(form.get("user"))
    return await _page(svc, who, form.get("user"), query=query)


@router.post("/page/facts")
async def add_fact(request: Request) -> Response:
    _same_origin(request)
    svc, who = await _require(request)
    form = await _form(request)
    user_id, user_param = _target(who, form.get("user"))
    try:
        await svc.run(
            svc.facts.remember,
            user_id,
            form.get("content", "").strip(),
            category=form.get("category", "").strip() or "general",
        )
    except InvalidInput:
        return _redirect(user_param, "invalid")
    return _redirect(user_param, "added")


@router.post("/page/facts/{fact_id}")
async def edit_fact(fact_id: str, request: Request) -> Response:
    _same_origin(request)
    svc, who = await _require(request)
    form = await _form(request)
    _, user_param = _target(who, form.get("user"))
    await owned_fact(svc, who, fact_id)
    changes: dict[str, Any] = {"content": form.get("content", "").strip()}
    if form.get("category", "").strip():
        changes["category"] = form["category"].strip()
    try:
        await svc.run(svc.facts.update, fact_id, **changes)
    except InvalidInput:
        return _redirect(user_param, "invalid")
    return _redirect(user_param, "saved")


@router.post("/page/facts/{fact_id}/delete")
async def delete_fact(fact_id: str, request: Request) -> Response:
    _same_origin(request)
    svc, who = await _require(request)
    form = await _form(request)
    _, user_param = _target(who, form.get("user"))
    await owned_fact(svc, who, fact_id)
    await svc.run(svc.facts.delete, fact_id)
    return _redirect(user_param, "deleted")


@router.get("/page/conversations/{conversation_id}")
async def conversation(conversation_id: str, request: Request, user: str | None = None) -> Response:
    svc, who = await _require(request)
    _, user_param = _target(who, user)
    await owned_conversation(svc, who, conversation_id)
    found = await svc.run(svc.conversations.get, conversation_id)
    messages, _ = await svc.run(svc.conversations.messages, conversation_id, limit=200)
    return HTMLResponse(
        render.conversation_page(
            found, messages, user_param=user_param, label=await _label(svc, who)
        )
    )


@router.get("/page/forget/conversation/{conversation_id}")
async def confirm_forget_conversation(
    conversation_id: str, request: Request, user: str | None = None
) -> Response:
    svc, who = await _require(request)
    _, user_param = _target(who, user)
    await owned_conversation(svc, who, conversation_id)
    found = await svc.run(svc.conversations.get, conversation_id)
    return HTMLResponse(
        render.confirm_page(
            what=f"the conversation “{found.title or '(untitled)'}”",
            action=f"/page/forget/conversation/{urllib.parse.quote(conversation_id, safe='')}",
            user_param=user_param,
            label=await _label(svc, who),
            detail=f"Its {found.message_count} messages and every memory made from them "
            "are deleted from every store.",
        )
    )


@router.post("/page/forget/conversation/{conversation_id}")
async def forget_conversation(conversation_id: str, request: Request) -> Response:
    _same_origin(request)
    svc, who = await _require(request)
    form = await _form(request)
    _, user_param = _target(who, form.get("user"))
    owner = await owned_conversation(svc, who, conversation_id)
    if form.get("confirm") != "yes":
        raise InvalidInput("confirm on the confirmation page first")
    await svc.memory.forget(owner, conversation_id=conversation_id)
    return _redirect(user_param, "forgotten")


@router.get("/page/forget/me")
async def confirm_forget_me(request: Request, user: str | None = None) -> Response:
    svc, who = await _require(request)
    user_id, user_param = _target(who, user)
    if not await svc.run(svc.users.exists, user_id):
        raise NotFound("no user with this user_id")
    return HTMLResponse(
        render.confirm_page(
            what="everything about this user" if who.is_admin else "everything about you",
            action="/page/forget/me",
            user_param=user_param,
            label=await _label(svc, who),
            detail="Every conversation, memory, fact and piece of feedback is deleted from "
            "every store, and this device's token with them.",
        )
    )


@router.post("/page/forget/me")
async def forget_me(request: Request) -> Response:
    _same_origin(request)
    svc, who = await _require(request)
    form = await _form(request)
    user_id, _ = _target(who, form.get("user"))
    if form.get("confirm") != "yes":
        raise InvalidInput("confirm on the confirmation page first")
    if not await svc.run(svc.users.exists, user_id):
        raise NotFound("no user with this user_id")
    await svc.memory.forget(user_id)
    response = HTMLResponse(render.done_page("Everything is forgotten, from every store."))
    if not who.is_admin:
        response.delete_cookie(COOKIE, path="/")
    return response
