"""Unexpected errors in the web app: a French page (or JSON for the API), the detail in the log.

:class:`UnexpectedErrors` wraps the patient inbox and the admin console inside their
security-headers middleware, so the error page carries the same headers as every other
page. Starlette's own fallback would answer a bare English "Internal Server Error"
(issue 14). The exception text never reaches the client (DESIGN rule 5); the log gets
the traceback, never the request's path or query (they may name a conversation or a
patient).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from gateway.web.asgi import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("gateway.web")

TITLE = "Erreur inattendue"
TEXT = ("Le service a rencontré une erreur inattendue et n'a pas pu traiter votre demande. "
        "Rien de ce qui était déjà enregistré n'est perdu. Réessayez dans quelques instants ; "
        "si le problème persiste, signalez-le à l'assistance.")
FALLBACK = ("<!doctype html><html lang=\"fr\"><head><meta charset=\"utf-8\"><title>" + TITLE + "</title></head>"
            "<body><main><h1>" + TITLE + "</h1><p>" + TEXT + "</p><p><a href=\"/\">Retour à l'accueil</a></p>"
            "</main></body></html>")

Page = Callable[[Request], Response]


class UnexpectedErrors:
    """ASGI middleware: an exception escaping ``app`` before it answered gets ``page(request)`` (status 500).

    An exception after the response started cannot change it: it is re-raised (the
    server closes the connection and logs it).
    """

    def __init__(self, app: ASGIApp, page: Page, *, area: str) -> None:
        self.app = app
        self.page = page
        self.area = area

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False
        before = dict(scope)  # routing below updates the scope in place (root_path of inner mounts)

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception:
            if started:
                raise
            log.error("unexpected error in the %s (%s request); answered 500", self.area, scope.get("method"),
                      exc_info=True)
            await self._answer(before, receive, send)

    async def _answer(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            response = self.page(Request(scope))
            response.status_code = 500
        except Exception:  # the page itself failed (a template, the database): the static one
            log.error("the %s error page failed too", self.area, exc_info=True)
            response = HTMLResponse(FALLBACK, status_code=500)
        await response(scope, receive, send)


def relative_path(scope: Scope) -> str:
    """The path below the app's mount point (Starlette keeps the full path in ``scope['path']``)."""
    path = str(scope.get("path", ""))
    root = str(scope.get("root_path", ""))
    return path[len(root):] if root and path.startswith(root) else path
