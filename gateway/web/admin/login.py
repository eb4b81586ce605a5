"""Admin and mediator login (password + TOTP code, one form), logout.

The login form is protected against CSRF by a double-submit token (a random cookie
repeated in the form). Failures are throttled per admin name and per client address
(delay, then a temporary lockout), counted in the metrics and audited; the answer never
says which of name, password or code was wrong.
"""

from __future__ import annotations

import asyncio
import secrets
import time

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from gateway import metrics
from gateway.accounts import admins, mediators
from gateway.store import audit
from gateway.web.admin.context import AdminContext, Who
from gateway.web.admin.security import (
    LOGIN_CSRF_COOKIE,
    clear_cookie,
    session_cookie_name,
    session_token,
    set_cookie,
)
from gateway.web.security import client_ip, token_matches

FAILED = "Identifiant, mot de passe ou code incorrect."
LOCKED = "Trop d'échecs : réessayez dans quelques minutes."


def routes(ctx: AdminContext) -> list[BaseRoute]:
    def form(request: Request, *, error: str | None = None, status: int = 200) -> Response:
        token = secrets.token_urlsafe(24)
        response = ctx.render(request, "login.html", None, status=status, login_csrf=token, error=error)
        set_cookie(response, request, LOGIN_CSRF_COOKIE, token, max_age=3600)
        return response

    async def show(request: Request) -> Response:
        who = await ctx.who(request)
        if who is not None:
            home = "/mediation" if who.actor.role == "mediator" else "/"
            return RedirectResponse(f"{request.scope.get('root_path', '')}{home}", status_code=303)
        return form(request)

    def _check(name: str, password: str, code: str, peer: str) -> tuple[str | None, str]:
        """(session token or None, role): an administrator first, then a mediator (issue 14)."""
        now = ctx.now()
        key = name.strip().lower()[:60]
        with ctx.svc.db.write() as session:
            admin = admins.verify_login(session, ctx.svc.keys, name, password, code, now=now)
            if admin is not None:
                opened = admins.create_session(session, admin, peer=peer, now=now, lifetime=ctx.session_max)
                audit.record(session, actor=f"admin:{admin.name}", action="admin.login", subject_ref=f"admin:{key}",
                             peer=peer, now=now, details={"result": "ok"})
                return opened.token, "admin"
            helper = mediators.verify_login(session, ctx.svc.keys, name, password, code, now=now)
            if helper is not None:
                token, _ = mediators.create_session(session, helper, peer=peer, now=now, lifetime=ctx.session_max)
                audit.record(session, actor=f"mediator:{helper.name}", action="mediator.login",
                             subject_ref=f"mediator:{key}", peer=peer, now=now, details={"result": "ok"})
                return token, "mediator"
            kind = ("admin" if admins.by_name(session, key) is not None else
                    "mediator" if mediators.by_name(session, key) is not None else None)
            audit.record(session, actor="anonymous", action=f"{kind or 'admin'}.login",
                         subject_ref=f"{kind}:{key}" if kind else None, peer=peer, now=now,
                         details={"result": "failed"})
        return None, "failed"

    async def submit(request: Request) -> Response:
        data = await request.form()
        if not token_matches(request.cookies.get(LOGIN_CSRF_COOKIE), data.get("login_csrf")):
            return form(request, error="Formulaire expiré : recommencez.", status=403)
        name, password, code = (str(data.get(k) or "")[:200] for k in ("name", "password", "code"))
        peer = client_ip(request)
        throttle = ctx.throttle
        assert throttle is not None
        attempt = await throttle.admit("admin:" + name.lower(), peer, ctx.run)
        if not attempt.allowed:  # counted before checking: concurrent attempts cannot race the limit
            metrics.login_failure("admin", attempt.reason)
            return form(request, error=LOCKED, status=429)
        opened, role = await ctx.run(_check, name, password, code, peer)
        if opened is None:
            metrics.login_failure("admin", "auth.failed")
            await ctx.run(throttle.failed, attempt, time.time())
            if attempt.delay:
                await asyncio.sleep(attempt.delay)
            return form(request, error=FAILED, status=401)
        await ctx.run(throttle.succeeded, attempt, time.time())
        home = "/mediation" if role == "mediator" else "/"
        response = RedirectResponse(f"{request.scope.get('root_path', '')}{home}", status_code=303)
        set_cookie(response, request, session_cookie_name(request), opened,
                   max_age=int(ctx.session_max.total_seconds()))
        clear_cookie(response, request, LOGIN_CSRF_COOKIE)
        return response

    async def logout(request: Request, who: Who) -> Response:
        token = session_token(request)

        def end() -> None:
            with ctx.svc.db.write() as session:
                if token:
                    (mediators if who.actor.role == "mediator" else admins).end_session(session, token)
                audit.record(session, actor=who.actor.audit_actor, action=f"{who.actor.role}.logout",
                             peer=who.actor.peer)

        await ctx.run(end)
        response = RedirectResponse(f"{request.scope.get('root_path', '')}/login", status_code=303)
        clear_cookie(response, request, session_cookie_name(request))
        return response

    return [
        Route("/login", show, methods=["GET"]),
        Route("/login", submit, methods=["POST"]),
        Route("/logout", ctx.console(logout, mediator=True), methods=["POST"]),
    ]
