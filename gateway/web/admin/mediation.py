"""Console pages and API endpoints of "Aide à la connexion" (issue 14), open to mediators and admins.

``/mediation``: look a patient space up by INS (sent in a POST body, never in a URL), see its
state, issue a new activation code shown once on screen or sent to the address on file.
These are the only routes a mediator's session or token opens (``mediator=True``).
"""

from __future__ import annotations

from functools import partial
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from gateway.operations import mediation as ops_mediation
from gateway.operations.common import Actor, OpError
from gateway.web.admin.api import body_json
from gateway.web.admin.context import AdminContext, Who


def _lookup(ctx: AdminContext, actor: Actor, ins: Any) -> dict[str, Any]:
    with ctx.svc.db.write() as session:
        return ops_mediation.lookup(session, ctx.svc.keys, actor, ins, now=ctx.now())


def _issue(ctx: AdminContext, actor: Actor, data: dict[str, Any]) -> dict[str, Any]:
    with ctx.svc.db.write() as session:
        return ops_mediation.new_code(session, ctx.svc.keys, actor, data, ctx.svc.settings, now=ctx.now())


def routes(ctx: AdminContext) -> list[BaseRoute]:
    lookup_in, issue_in = partial(_lookup, ctx), partial(_issue, ctx)

    def page(request: Request, who: Who, status: int = 200, **values: Any) -> Response:
        shown = {"patient": None, "issued": None, "error": None, **values}
        return ctx.render(request, "mediation.html", who, status=status, **shown)

    async def start(request: Request, who: Who) -> Response:
        return page(request, who)

    async def lookup(request: Request, who: Who) -> Response:
        form = await request.form()
        try:
            found = await ctx.run(lookup_in, who.actor, form.get("ins"))
        except OpError as exc:
            return page(request, who, exc.status, error=exc.message)
        return page(request, who, patient=found)

    async def issue(request: Request, who: Who) -> Response:
        form = await request.form()
        data = {"ins": form.get("ins"), "send": form.get("delivery") == "mail"}
        try:
            issued = await ctx.run(issue_in, who.actor, data)
        except OpError as exc:
            return page(request, who, exc.status, error=exc.message)
        return page(request, who, issued=issued)

    return [
        Route("/mediation", ctx.console(start, mediator=True), methods=["GET"]),
        Route("/mediation/lookup", ctx.console(lookup, mediator=True), methods=["POST"]),
        Route("/mediation/code", ctx.console(issue, mediator=True), methods=["POST"]),
    ]


def api_routes(ctx: AdminContext) -> list[BaseRoute]:
    """Mounted under ``/api`` with the rest of the JSON API."""

    lookup_in, issue_in = partial(_lookup, ctx), partial(_issue, ctx)

    async def lookup(request: Request, actor: Actor) -> Response:
        data = await body_json(request)
        return JSONResponse(await ctx.run(lookup_in, actor, data.get("ins")))

    async def issue(request: Request, actor: Actor) -> Response:
        data = await body_json(request)
        return JSONResponse(await ctx.run(issue_in, actor, data), status_code=201)

    return [
        Route("/mediation/lookup", ctx.api(lookup, mediator=True), methods=["POST"]),
        Route("/mediation/new-code", ctx.api(issue, mediator=True), methods=["POST"]),
    ]
