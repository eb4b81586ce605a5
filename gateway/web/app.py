"""The web application: patient inbox (``gateway.web.patient``), admin console and API
(``gateway.web.admin``), health check and metrics. Served by uvicorn in the gateway's loop."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import text
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from gateway.web.forms import BodyLimit

if TYPE_CHECKING:
    from gateway.app.server import Gateway


def create_app(gw: Gateway) -> Starlette:
    from gateway.web.admin import root_redirect as admin_root_redirect
    from gateway.web.admin import routes as admin_routes
    from gateway.web.admin.metrics_http import metrics_route
    from gateway.web.patient import routes as patient_routes

    svc = gw.services

    async def health(_: Request) -> Response:
        try:
            with svc.db.read() as session:
                session.execute(text("SELECT 1"))
        except Exception:  # the database is unreachable: report, never the detail
            return JSONResponse({"status": "error", "database": "unreachable"}, status_code=503)
        return JSONResponse({"status": "ok", "database": "ok"})

    routes: list[BaseRoute] = [Route("/healthz", health)]
    routes.append(metrics_route(gw))
    routes.append(Route("/admin", admin_root_redirect))
    routes.append(Mount("/admin", routes=admin_routes(gw)))
    routes.extend(patient_routes(gw))
    # Every body within its route's limit, checked before it is read (gateway.web.forms).
    return Starlette(routes=routes, middleware=[Middleware(BodyLimit, default=svc.settings.web.max_form_bytes)])
