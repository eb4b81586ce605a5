"""The patient web inbox (French), mounted at ``/``: activation, login, conversations,
replies, attachments, read receipts and "Mon espace" (issue 5); health documents and
"Mes documents" (issue 21).

The routes live in small modules (``activation``, ``login``, ``forgot``, ``inbox``,
``actions``, ``myspace``); :class:`~gateway.web.security.SecurityHeaders` wraps them all.

Part of ``gateway.web``: may import what it may (``gateway.delivery`` for replies and read
receipts, through the :class:`~gateway.delivery.runtime.MailRuntime` handed in).
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Router
from starlette.staticfiles import StaticFiles

from gateway.delivery.runtime import MailRuntime
from gateway.store.services import Services
from gateway.web import errors
from gateway.web.patient import actions, activation, documents, forgot, inbox, login, myspace
from gateway.web.patient.security import CSP
from gateway.web.patient.state import PatientWeb
from gateway.web.security import SecurityHeaders

STATIC = Path(__file__).parent / "static"


class _CachedStatic(StaticFiles):
    """Static files may be cached (they hold no health data)."""

    def file_response(self, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        response = super().file_response(*args, **kwargs)  # type: ignore[arg-type]
        response.headers["Cache-Control"] = "public, max-age=3600"
        return response


def routes(svc: Services, mail: MailRuntime) -> list[BaseRoute]:
    web = PatientWeb(svc, mail)
    inner: list[BaseRoute] = [Mount("/static", app=_CachedStatic(directory=STATIC), name="static")]
    for module in (login, activation, forgot, inbox, documents, actions, myspace):
        inner.extend(module.routes(web))
    router = Router(routes=inner)

    async def not_found(scope: object, receive: object, send: object) -> None:
        request = Request(scope)  # type: ignore[arg-type]
        response = web.not_found(request)
        await response(scope, receive, send)  # type: ignore[arg-type]

    router.default = not_found

    def unexpected(request: Request) -> Response:
        return web.problem(request, 500, errors.TITLE, errors.TEXT, back="/")

    app = errors.UnexpectedErrors(router, unexpected, area="patient inbox")
    return [Mount("", app=SecurityHeaders(app, csp=CSP, hsts_max_age=svc.settings.web.hsts_max_age_seconds))]
