"""Console pages and API endpoints of "Aide à la connexion" (issue 14), open to mediators and admins.

``/mediation``: look a patient space up by INS (sent in a POST body, never in a URL), see its
state, issue a new activation code shown once on screen or sent to the address on file.
These are the only routes a mediator's session or token opens (``mediator=True``).

A mediator's lookups by INS and new codes are limited per account, on every node alike
(:mod:`gateway.accounts.mediation_limit`, ``[admin]`` of the config file); beyond the limit the
answer is ``429`` with ``Retry-After`` (RFC 9110 §10.2.3; RFC 6585 §4), and nothing is looked up.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from gateway.accounts.mediation_limit import Action, Admission
from gateway.operations import mediation as ops_mediation
from gateway.operations.common import Actor, OpError
from gateway.operations.patients import ins_value
from gateway.web.admin.api import body_json
from gateway.web.admin.context import AdminContext, Who


class Limited(OpError):
    """A mediator's limit is reached: ``429``, try again in ``retry_after`` seconds."""

    def __init__(self, verdict: Admission) -> None:
        rate, wait = verdict.rate, _wait_text(verdict.retry_after)
        assert rate is not None
        if verdict.limit == "code":
            text = (f"Trop de codes d'activation émis : un compte de médiateur peut en émettre {rate.per_hour} "
                    f"par heure ({rate.burst} d'affilée). Aucun code n'a été émis ; réessayez dans {wait}.")
        else:
            text = (f"Trop de recherches : un compte de médiateur peut rechercher {rate.per_hour} espaces "
                    f"par heure ({rate.burst} d'affilée). Aucune recherche n'a été faite ; réessayez dans {wait}.")
        super().__init__(429, "rate_limited", text, f"mediator {verdict.limit} limit reached: "
                         f"{rate.per_hour} per hour, {rate.burst} at once; retry in {verdict.retry_after} s")
        self.retry_after = verdict.retry_after


def _wait_text(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds} seconde{'s' if seconds > 1 else ''}"
    minutes = -(-seconds // 60)
    return f"{minutes} minute{'s' if minutes > 1 else ''}"


def _admit(ctx: AdminContext, actor: Actor, action: Action, ins: Any) -> None:
    """Count this lookup (or new code) of a mediator, in a transaction of its own committed before
    the lookup (a lookup that finds nothing counts too), or raise :class:`Limited`. A malformed
    INS is refused first (400): it looks nothing up and costs nothing."""
    ins_value(ins)
    assert ctx.limiter is not None
    verdict = ctx.limiter.admit(actor.role, actor.name, action, via=actor.via, peer=actor.peer)
    if not verdict.allowed:
        raise Limited(verdict)


def _lookup(ctx: AdminContext, actor: Actor, ins: Any) -> dict[str, Any]:
    _admit(ctx, actor, "lookup", ins)
    with ctx.svc.db.write() as session:
        return ops_mediation.lookup(session, ctx.svc.keys, actor, ins, now=ctx.now())


def _issue(ctx: AdminContext, actor: Actor, data: dict[str, Any]) -> dict[str, Any]:
    _admit(ctx, actor, "code", data.get("ins"))
    with ctx.svc.db.write() as session:
        return ops_mediation.new_code(session, ctx.svc.keys, actor, data, ctx.svc.settings, now=ctx.now())


def routes(ctx: AdminContext) -> list[BaseRoute]:
    lookup_in, issue_in = partial(_lookup, ctx), partial(_issue, ctx)

    def page(request: Request, who: Who, status: int = 200, **values: Any) -> Response:
        shown = {"patient": None, "issued": None, "error": None, **values}
        return ctx.render(request, "mediation.html", who, status=status, **shown)

    def refused(request: Request, who: Who, exc: OpError) -> Response:
        response = page(request, who, exc.status, error=exc.message)
        if isinstance(exc, Limited):
            response.headers["Retry-After"] = str(exc.retry_after)
        return response

    async def start(request: Request, who: Who) -> Response:
        return page(request, who)

    async def lookup(request: Request, who: Who) -> Response:
        form = await request.form()
        try:
            found = await ctx.run(lookup_in, who.actor, form.get("ins"))
        except OpError as exc:
            return refused(request, who, exc)
        return page(request, who, patient=found)

    async def issue(request: Request, who: Who) -> Response:
        form = await request.form()
        data = {"ins": form.get("ins"), "send": form.get("delivery") == "mail"}
        try:
            issued = await ctx.run(issue_in, who.actor, data)
        except OpError as exc:
            return refused(request, who, exc)
        return page(request, who, issued=issued)

    return [
        Route("/mediation", ctx.console(start, mediator=True), methods=["GET"]),
        Route("/mediation/lookup", ctx.console(lookup, mediator=True), methods=["POST"]),
        Route("/mediation/code", ctx.console(issue, mediator=True), methods=["POST"]),
    ]


def api_routes(ctx: AdminContext) -> list[BaseRoute]:
    """Mounted under ``/api`` with the rest of the JSON API."""

    lookup_in, issue_in = partial(_lookup, ctx), partial(_issue, ctx)

    def limited(exc: Limited) -> Response:
        return JSONResponse({"error": exc.code, "message": exc.message, "retry_after": exc.retry_after},
                            status_code=429, headers={"Retry-After": str(exc.retry_after)})

    async def lookup(request: Request, actor: Actor) -> Response:
        data = await body_json(request)
        try:
            return JSONResponse(await ctx.run(lookup_in, actor, data.get("ins")))
        except Limited as exc:
            return limited(exc)

    async def issue(request: Request, actor: Actor) -> Response:
        data = await body_json(request)
        try:
            return JSONResponse(await ctx.run(issue_in, actor, data), status_code=201)
        except Limited as exc:
            return limited(exc)

    return [
        Route("/mediation/lookup", ctx.api(lookup, mediator=True), methods=["POST"]),
        Route("/mediation/new-code", ctx.api(issue, mediator=True), methods=["POST"]),
    ]
