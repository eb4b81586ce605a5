"""Console page: a mailbox's quota (RFC 9208 STORAGE and MESSAGE; issue 18).

The mailbox (a professional's address or a patient's INS) is always sent in a POST body,
never in a URL. The operations are :mod:`gateway.operations.quota`, as for the CLI and the
JSON API; a change is audited (``quota.set``).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gateway.operations import quota as ops_quota
from gateway.operations.common import OpError
from gateway.web.admin.context import AdminContext, Who


def routes(ctx: AdminContext) -> list[BaseRoute]:
    def page(request: Request, who: Who, *, status: int = 200, found: dict[str, Any] | None = None,
             error: str | None = None, saved: bool = False, asked: Any = None) -> Response:
        # ``asked``: the mailbox as typed (a patient's INS is shown masked), for the change form
        return ctx.render(request, "quota.html", who, status=status, quota=found, error=error, saved=saved,
                          defaults=ctx.quota_defaults, asked=asked if isinstance(asked, str) else "")

    async def quota(request: Request, who: Who) -> Response:
        return page(request, who)

    async def quota_lookup(request: Request, who: Who) -> Response:
        form = await request.form()

        def go() -> dict[str, Any]:
            with ctx.svc.db.read() as session:
                return ops_quota.show(session, ctx.svc.keys, ctx.quota_defaults, form.get("mailbox"))

        try:
            return page(request, who, found=await ctx.run(go), asked=form.get("mailbox"))
        except OpError as exc:
            return page(request, who, status=exc.status, error=exc.message)

    async def quota_set(request: Request, who: Who) -> Response:
        form = await request.form()

        def go() -> dict[str, Any]:
            with ctx.svc.db.write() as session:
                return ops_quota.set_limits(session, ctx.svc.keys, who.actor, ctx.quota_defaults, form.get("mailbox"),
                                            storage_kib=form.get("storage_kib"), messages=form.get("messages"),
                                            now=ctx.now())

        try:
            return page(request, who, found=await ctx.run(go), saved=True, asked=form.get("mailbox"))
        except OpError as exc:
            return page(request, who, status=exc.status, error=exc.message)

    return [
        Route("/quota", ctx.console(quota), methods=["GET"]),
        Route("/quota/lookup", ctx.console(quota_lookup), methods=["POST"]),
        Route("/quota/set", ctx.console(quota_set), methods=["POST"]),
    ]
