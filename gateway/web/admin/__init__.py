"""Admin console (``/admin``) and JSON API (``/admin/api``).

One inner Starlette app, wrapped in the security-headers middleware, mounted by
``gateway.web.app`` at ``/admin``: login (password + TOTP), dashboard, trust list,
professional accounts, patient lookup, outbound queue, audit trail, "Aide à la connexion"
(the only pages a mediator may open); and the API with bearer tokens and its OpenAPI
description.

Part of ``gateway.web``: may import what it may (``gateway.operations`` for every action).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from gateway.web.admin import api, login, mediation, pages, pages_access, pages_ops, pages_quota
from gateway.web.admin.context import AdminContext
from gateway.web.admin.security import CSP
from gateway.web.errors import TEXT, TITLE, UnexpectedErrors, relative_path
from gateway.web.security import SecurityHeaders

if TYPE_CHECKING:
    from gateway.store.services import Services

STATIC = Path(__file__).parent / "static"


def build(ctx: AdminContext) -> Starlette:
    inner: list[BaseRoute] = [
        Mount("/api", routes=[*api.routes(ctx), *mediation.api_routes(ctx)]),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
        *login.routes(ctx),
        *pages.routes(ctx),
        *pages_ops.routes(ctx),
        *pages_quota.routes(ctx),
        *pages_access.routes(ctx),
        *mediation.routes(ctx),
    ]
    return Starlette(routes=inner, middleware=[Middleware(UnexpectedErrors, page=partial(unexpected, ctx),
                                                          area="admin console")])


def unexpected(ctx: AdminContext, request: Request) -> Response:
    """The API keeps JSON; the console gets a French page (without the admin's menu: no session lookup)."""
    if relative_path(request.scope).startswith("/api/"):
        return JSONResponse({"error": "internal", "message": "erreur inattendue : le détail est dans le "
                             "journal du serveur"}, status_code=500)
    return ctx.render(request, "error.html", None, status=500, message=f"{TITLE}. {TEXT}")


def routes(svc: Services) -> list[BaseRoute]:
    app = build(AdminContext(svc))
    return [Mount("", app=SecurityHeaders(app, csp=CSP, hsts_max_age=svc.settings.web.hsts_max_age_seconds))]


async def root_redirect(_: Request) -> Response:
    """``/admin`` -> ``/admin/`` (mounted apps only see paths below their prefix)."""
    return RedirectResponse("/admin/", status_code=307)
