"""Console page: what opens a professional mailbox (issue 19): its type, its professional
identity (personal), the professionals granted it (organisational), its client certificates
(application), and whether passwords open it. The operations are
:mod:`gateway.operations.identities`, as for the CLI and the JSON API; each change is audited.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gateway.operations import identities as ops
from gateway.operations import pros as ops_pros
from gateway.operations.common import OpError, flag, not_found
from gateway.web.admin.context import AdminContext, Who

CHANGES: dict[tuple[str, str], tuple[Callable[..., dict[str, Any]], str, str]] = {
    ("identity", "add"): (ops.add_identity, "subject", "Identité liée."),
    ("identity", "remove"): (ops.remove_identity, "subject", "Identité retirée."),
    ("grants", "add"): (ops.grant, "pro", "Accès accordé."),
    ("grants", "remove"): (ops.revoke, "pro", "Accès retiré."),
    ("certificates", "add"): (ops.add_certificate, "certificate", "Certificat lié."),
    ("certificates", "remove"): (ops.remove_certificate, "fingerprint", "Certificat retiré."),
}


def routes(ctx: AdminContext) -> list[BaseRoute]:
    def page(request: Request, who: Who, *, status: int = 200, info: dict[str, Any] | None = None,
             error: str | None = None, saved: str | None = None) -> Response:
        return ctx.render(request, "pro_access.html", who, status=status, info=info, error=error, saved=saved,
                          address=request.path_params["address"])

    def read(address: str) -> dict[str, Any]:
        with ctx.svc.db.read() as session:
            return ops.bindings(session, address)

    async def show(request: Request, who: Who) -> Response:
        try:
            return page(request, who, info=await ctx.run(read, request.path_params["address"]))
        except OpError as exc:
            return page(request, who, status=exc.status, error=exc.message)

    async def change(request: Request, who: Who) -> Response:
        address = request.path_params["address"]
        form = await request.form()
        found = CHANGES.get((request.path_params["what"], request.path_params["change"]))

        def go() -> dict[str, Any]:
            if found is None:
                raise not_found("action inconnue", "unknown action")
            with ctx.svc.db.write() as session:
                return found[0](session, who.actor, address, form.get(found[1]), now=ctx.now())

        try:
            return page(request, who, info=await ctx.run(go), saved=found[2] if found else None)
        except OpError as exc:
            return await _failed(request, who, exc)

    async def password_login(request: Request, who: Who) -> Response:
        form = await request.form()

        def go() -> dict[str, Any]:
            allowed = flag(form.get("allowed"), "allowed")
            with ctx.svc.db.write() as session:
                ops_pros.set_password_login(session, who.actor, request.path_params["address"], allowed,
                                            now=ctx.now())
                return ops.bindings(session, request.path_params["address"])

        try:
            return page(request, who, info=await ctx.run(go), saved="Connexion par mot de passe enregistrée.")
        except OpError as exc:
            return await _failed(request, who, exc)

    async def _failed(request: Request, who: Who, exc: OpError) -> Response:
        try:
            info = await ctx.run(read, request.path_params["address"])
        except OpError:
            info = None
        return page(request, who, status=exc.status, info=info, error=exc.message)

    return [
        Route("/pros/{address}/access", ctx.console(show), methods=["GET"]),
        Route("/pros/{address}/access/password-login", ctx.console(password_login), methods=["POST"]),
        Route("/pros/{address}/access/{what}/{change}", ctx.console(change), methods=["POST"]),
    ]
