"""Analytics for the admin: ``/v1/analytics/*`` (bearer token) and ``/page/analytics`` (cookie).

Thin over ``MemoryManager.analytics`` (``aico.analytics``), run on the service's worker
threads. Every route needs the admin token: the copy spans all users. The page serves the
report built in memory (nothing written to disk), with its stylesheet at
``/page/analytics.css`` and its charts as inline SVG with presentation attributes only, so
it renders under the page's CSP (no script, no inline style). Reading never exports;
the page's "Export now" button and ``POST /v1/analytics/export`` do.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from aico.analytics import VIEWS
from aico.analytics.report import REPORT_CSS
from aico.errors import NotFound
from aico_backend.deps import Auth, Svc, service_of
from aico_backend.errors import Unauthorized
from aico_backend.page.routes import _form, _principal, _same_origin

__all__ = ["router"]

router = APIRouter(tags=["analytics"])

_STYLESHEET = "/page/analytics.css"
_EXPORT_FORM = (
    '<form method="post" action="/page/analytics/export">'
    '<button type="submit" id="analytics-export">Export now</button> '
    '<a href="/" id="analytics-back">Back to the memory page</a></form>'
)


@router.get("/v1/analytics/views", summary="The documented analytics views")
async def list_views(who: Auth) -> list[dict[str, str]]:
    who.require_admin()
    return [{"name": v.name, "description": v.description} for v in VIEWS]


@router.get("/v1/analytics/views/{name}", summary="The rows of one analytics view")
async def view_rows(
    svc: Svc,
    who: Auth,
    name: str,
    user_id: Annotated[str | None, Query(max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
) -> dict[str, Any]:
    who.require_admin()
    analytics = svc.memory.sync.analytics
    rows = await svc.run(analytics.view, name, user_id=user_id, limit=limit)
    return {"view": name, "rows": rows.dicts(), "truncated": rows.truncated}


@router.post("/v1/analytics/export", summary="Bring the analytics copy up to date")
async def export(svc: Svc, who: Auth) -> dict[str, Any]:
    who.require_admin()
    report = await svc.run(svc.memory.sync.analytics.export)
    return {
        "added": dict(report.added),
        "removed": dict(report.removed),
        "seconds": round(report.seconds, 3),
    }


@router.get("/v1/analytics/report", response_class=HTMLResponse, summary="The HTML report")
async def report(
    svc: Svc, who: Auth, user_id: Annotated[str | None, Query(max_length=128)] = None
) -> HTMLResponse:
    who.require_admin()
    page = await svc.run(
        svc.memory.sync.analytics.report_html, user_id=user_id, stylesheet=_STYLESHEET
    )
    return HTMLResponse(page)


# ---- the page (cookie) -------------------------------------------------------------------


async def _admin(request: Request) -> None:
    who = await _principal(request)
    if who is None:
        raise Unauthorized("log in first")
    who.require_admin()


@router.get("/page/analytics.css", include_in_schema=False)
async def stylesheet() -> Response:
    return Response(REPORT_CSS, media_type="text/css")


@router.get("/page/analytics", include_in_schema=False)
async def page(request: Request, user: str | None = None) -> Response:
    await _admin(request)
    svc = service_of(request)
    try:
        html = await svc.run(
            svc.memory.sync.analytics.report_html, user_id=user, stylesheet=_STYLESHEET
        )
    except NotFound:
        html = (
            f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>aico analytics</title><link rel='stylesheet' href='{_STYLESHEET}'>"
            "</head><body><h1>aico analytics</h1><p>No export yet.</p></body></html>"
        )
    return HTMLResponse(html.replace("<body>", f"<body>{_EXPORT_FORM}", 1))


@router.post("/page/analytics/export", include_in_schema=False)
async def page_export(request: Request) -> Response:
    _same_origin(request)
    await _admin(request)
    await _form(request)
    svc = service_of(request)
    await svc.run(svc.memory.sync.analytics.export)
    return RedirectResponse("/page/analytics", status_code=303)
