"""The patient web inbox (French), mounted at ``/``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

if TYPE_CHECKING:
    from gateway.server import Gateway


def routes(gw: Gateway) -> list[BaseRoute]:
    async def home(_: Request) -> Response:
        return HTMLResponse("<!doctype html><html lang=\"fr\"><head><meta charset=\"utf-8\"><title>Messagerie de santé"
                            "</title></head><body><h1>Messagerie de santé</h1></body></html>")

    return [Route("/", home)]
