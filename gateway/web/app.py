"""The web application: patient inbox (``gateway.web.patient``), admin console and API
(``gateway.web.admin``), client autoconfiguration (``gateway.web.autoconfig``), health check
and metrics. Served by uvicorn in the gateway's loop."""

from __future__ import annotations

from sqlalchemy import text
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from gateway.delivery.runtime import MailRuntime
from gateway.store.services import Services
from gateway.web import admin, autoconfig, patient
from gateway.web.admin.metrics_http import metrics_route
from gateway.web.forms import BodyLimit


def create_app(svc: Services, mail: MailRuntime) -> Starlette:
    """The whole web application of one process; ``mail`` is the process's delivery runtime
    (patient replies and read receipts go through its pipeline)."""

    async def health(_: Request) -> Response:
        try:
            with svc.db.read() as session:
                session.execute(text("SELECT 1"))
        except Exception:  # the database is unreachable: report, never the detail
            return JSONResponse({"status": "error", "database": "unreachable"}, status_code=503)
        return JSONResponse({"status": "ok", "database": "ok"})

    routes: list[BaseRoute] = [Route("/healthz", health)]
    routes.append(metrics_route(svc))
    routes.append(Route("/admin", admin.root_redirect))
    routes.append(Mount("/admin", routes=admin.routes(svc)))
    routes.extend(autoconfig.routes(svc, mail))  # before the patient inbox, mounted at "/"
    routes.extend(patient.routes(svc, mail))
    # Every body within its route's limit, checked before it is read (gateway.web.forms).
    return Starlette(routes=routes, middleware=[Middleware(BodyLimit, default=svc.settings.web.max_form_bytes)])
