"""Shared state of the admin web layer: services, templates, login throttle, guards.

``console`` wraps a page handler: no live admin session means a redirect to the login
page (whatever other cookie, e.g. a patient's, the browser holds); every POST must
carry the session's CSRF token. ``api`` wraps a JSON handler: a valid admin API
bearer token or ``401``. Operations run in a worker thread, off the event loop.

Mediators (issue 14) log in on the same form and hold the same kind of session and token,
from tables of their own. Both guards refuse them (``403``) unless the route was declared
with ``mediator=True``: a route is for administrators only unless it says otherwise.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from gateway.accounts import admins, mediators
from gateway.accounts.mediation_limit import MediationLimiter, MediationLimits, Rate
from gateway.accounts.throttle import LoginThrottle, ThrottleConfig
from gateway.mailstore.quota import QuotaDefaults
from gateway.operations.common import Actor, OpError
from gateway.web import forms
from gateway.web.admin.security import session_token
from gateway.web.security import client_ip, token_matches

if TYPE_CHECKING:
    from gateway.store.services import Services

T = TypeVar("T")
FORBIDDEN = ("Cette page est réservée aux administrateurs. Un compte de médiateur permet seulement "
             "l'aide à la connexion.")
TEMPLATES = Path(__file__).parent / "templates"


@dataclass(frozen=True)
class Who:
    actor: Actor
    csrf: str


Page = Callable[[Request, Who], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]


def _french_number(value: object) -> str:
    return f"{value:,}".replace(",", "\u202f") if isinstance(value, int) else str(value)


@dataclass
class AdminContext:
    svc: Services
    throttle: LoginThrottle | None = None
    limiter: MediationLimiter | None = None  # mediators' lookups by INS and new codes ([admin])
    env: jinja2.Environment = field(default_factory=lambda: jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined))

    def __post_init__(self) -> None:
        if self.throttle is None:  # shared by every node through the database
            self.throttle = LoginThrottle(self.svc.db, self.svc.keys, ThrottleConfig(
                delay_after=3, lockout_after=10, ip_delay_after=5, ip_lockout_after=30, max_delay=5.0),
                scope="admin")
        if self.limiter is None:  # shared by every node through the database
            a = self.svc.settings.admin
            self.limiter = MediationLimiter(self.svc.db, MediationLimits(
                Rate(a.mediator_lookups_per_hour, a.mediator_lookup_burst),
                Rate(a.mediator_codes_per_hour, a.mediator_code_burst)))
        self.session_idle = timedelta(minutes=self.svc.settings.admin.session_idle_minutes)
        self.session_max = timedelta(hours=self.svc.settings.admin.session_max_hours)
        q = self.svc.settings.quota
        self.quota_defaults = QuotaDefaults(q.storage_kib, q.messages)  # RFC 9208 limits ([quota])
        self.env.filters["num"] = _french_number
        self.env.filters["pct"] = lambda v: f"{v * 100:.1f}\u202f%".replace(".", ",")

    @staticmethod
    def now() -> datetime:
        return datetime.now(UTC)

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.to_thread(fn, *args, **kwargs)

    def render(self, request: Request, name: str, who: Who | None, status: int = 200, **values: Any) -> HTMLResponse:
        base = request.scope.get("root_path", "")
        html = self.env.get_template(name).render(base=base, who=who, csrf=who.csrf if who else "",
                                                 path=request.url.path, **values)
        return HTMLResponse(html, status_code=status)

    def error_page(self, request: Request, who: Who | None, exc: OpError) -> HTMLResponse:
        return self.render(request, "error.html", who, status=exc.status, message=exc.message)

    # --- identification ---------------------------------------------------------------
    def _session(self, token: str) -> tuple[str, str, str] | None:
        """(name, role, CSRF token) of the live session."""
        now = self.now()
        with self.svc.db.write() as session:
            found = admins.session_admin(session, token, now=now, idle=self.session_idle)
            if found is not None:
                return found[1].name, "admin", found[0].csrf_token
            helper = mediators.session_mediator(session, token, now=now, idle=self.session_idle)
            if helper is not None:
                return helper[1].name, "mediator", helper[0].csrf_token
            return None

    async def who(self, request: Request) -> Who | None:
        token = session_token(request)
        if token is None:
            return None
        found = await self.run(self._session, token)
        if found is None:
            return None
        name, role, csrf = found
        return Who(Actor(name, "console", client_ip(request), role), csrf)

    def _token(self, token: str) -> tuple[str, str] | None:
        with self.svc.db.write() as session:
            if token.startswith(mediators.TOKEN_PREFIX):
                helper = mediators.token_mediator(session, token, now=self.now())
                return (helper.name, "mediator") if helper else None
            admin = admins.token_admin(session, token, now=self.now())
            return (admin.name, "admin") if admin else None

    async def api_actor(self, request: Request) -> Actor | None:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or len(token) > 200 or not token.isascii():
            return None
        found = await self.run(self._token, token)
        return Actor(found[0], "api", client_ip(request), found[1]) if found else None

    # --- guards -----------------------------------------------------------------------
    def console(self, handler: Page, *, mediator: bool = False, max_body: int | None = None) -> Endpoint:
        """A POST is checked before its body is read: its declared length against ``max_body``
        (default ``web.max_form_bytes``), the session (and the role: only pages marked
        ``mediator`` are open to mediators), then only the start of the form up to its CSRF
        token (``gateway.web.forms.leading_field``); the handler reads the form afterwards."""
        limit = max_body or self.svc.settings.web.max_form_bytes

        async def endpoint(request: Request) -> Response:
            post = request.method == "POST"
            if post:
                forms.allow_body(request, limit)
                if forms.declared_too_large(request, limit):
                    return self.render(request, "error.html", None, status=413,
                                       message="Envoi trop volumineux.")
            who = await self.who(request)
            if who is None:
                base = request.scope.get("root_path", "")
                return RedirectResponse(f"{base}/login", status_code=303)
            if who.actor.role != "admin" and not mediator:
                return self.render(request, "error.html", who, status=403, message=FORBIDDEN)
            if post:
                given, request = await forms.leading_field(request, "csrf")
                if not token_matches(who.csrf, given):
                    return self.render(request, "error.html", who, status=403,
                                       message="Jeton de formulaire invalide : rechargez la page.")
            try:
                return await handler(request, who)
            except OpError as exc:
                return self.error_page(request, who, exc)
        return endpoint

    def api(self, handler: Callable[[Request, Actor], Awaitable[Response]], *, mediator: bool = False) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            actor = await self.api_actor(request)
            if actor is None:
                return JSONResponse({"error": "unauthorized", "message": "admin API token required"},
                                    status_code=401, headers={"WWW-Authenticate": 'Bearer realm="admin"'})
            if actor.role != "admin" and not mediator:
                return JSONResponse({"error": "forbidden", "message": "reserved to administrators"},
                                    status_code=403)
            try:
                return await handler(request, actor)
            except OpError as exc:
                return JSONResponse({"error": exc.code, "message": exc.message}, status_code=exc.status)
        return endpoint
