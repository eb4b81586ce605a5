"""The web application (patient inbox and admin pages are added by their own modules)."""

from __future__ import annotations

from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from gateway.context import Services

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                               "script-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def create_app(svc: Services) -> Starlette:
    async def health(_: Request) -> Response:
        try:
            with svc.db.read() as session:
                session.execute(text("SELECT 1"))
        except Exception:  # the database is unreachable: report, never the detail
            return JSONResponse({"status": "error", "database": "unreachable"}, status_code=503)
        return JSONResponse({"status": "ok", "database": "ok"})

    async def home(_: Request) -> Response:
        body = (
            "<!doctype html><html lang=\"fr\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            "<title>Messagerie de santé</title></head><body><main>"
            "<h1>Messagerie de santé</h1>"
            "<p>Votre messagerie sécurisée pour échanger avec vos professionnels de santé.</p>"
            "</main></body></html>"
        )
        return HTMLResponse(body, headers=SECURITY_HEADERS)

    return Starlette(routes=[Route("/", home), Route("/healthz", health)])
