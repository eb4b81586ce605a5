"""The admin JSON API's routes for mailbox types' bindings (issue 19): a mailbox's bindings,
its professional identity, organisational grants, application certificates, and whether
passwords open it. Same operations as the command line and the console
(:mod:`gateway.operations.identities`), audited as ``admin:<name>``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from gateway.operations import identities as ops
from gateway.operations import pros as ops_pros
from gateway.operations.common import Actor, bad_request, flag, not_found

Runner = Callable[..., Awaitable[Any]]
Body = Callable[[Request], Awaitable[dict[str, Any]]]

CHANGES: dict[tuple[str, str], Callable[..., dict[str, Any]]] = {
    ("identity", "add"): ops.add_identity, ("identity", "remove"): ops.remove_identity,
    ("grants", "add"): ops.grant, ("grants", "remove"): ops.revoke,
    ("certificates", "add"): ops.add_certificate, ("certificates", "remove"): ops.remove_certificate,
}
FIELD = {"identity": "subject", "grants": "pro", "certificates": "certificate"}


def routes(api: Callable[..., Any], run_read: Runner, run_write: Runner, body_json: Body,
           now: Callable[[], Any]) -> list[BaseRoute]:
    """To be listed before ``/pros/{address}/{action}``."""

    async def bindings(request: Request, _: Actor) -> Response:
        return JSONResponse(await run_read(ops.bindings, request.path_params["address"]))

    async def change(request: Request, actor: Actor) -> Response:
        what, verb = request.path_params["what"], request.path_params["change"]
        operation = CHANGES.get((what, verb))
        if operation is None:
            raise not_found("action inconnue", "unknown action")
        data = await body_json(request)
        value = data.get(FIELD[what])
        if what == "certificates" and verb == "remove" and data.get("fingerprint") is not None:
            value = data.get("fingerprint")
        return JSONResponse(await run_write(operation, actor, request.path_params["address"], value, now=now()))

    async def password_login(request: Request, actor: Actor) -> Response:
        data = await body_json(request)
        if data.get("allowed") is None:
            raise bad_request("allowed : booléen requis", "missing", "allowed: true or false is required")
        allowed = flag(data.get("allowed"), "allowed")
        return JSONResponse(await run_write(ops_pros.set_password_login, actor, request.path_params["address"],
                                            allowed, now=now()))

    return [
        Route("/pros/{address}/bindings", api(bindings), methods=["GET"]),
        Route("/pros/{address}/password-login", api(password_login), methods=["POST"]),
        Route("/pros/{address}/{what}/{change}", api(change), methods=["POST"]),
    ]
