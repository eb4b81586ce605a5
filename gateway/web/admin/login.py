"""Admin login (password + TOTP code, one form), logout.

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
from gateway.store import admins, audit
from gateway.web.admin.context import AdminContext, Who
from gateway.web.admin.security import (
    LOGIN_CSRF_COOKIE,
    clear_cookie,
    client_ip,
    same_token,
    session_cookie_name,
    session_token,
    set_cookie,
)

FAILED = "Identifiant, mot de passe ou code incorrect."
LOCKED = "Trop d'échecs : réessayez dans quelques minutes."


def routes(ctx: AdminContext) -> list[BaseRoute]:
    def form(request: Request, *, error: str | None = None, status: int = 200) -> Response:
        token = secrets.token_urlsafe(24)
        response = ctx.render(request, "login.html", None, status=status, login_csrf=token, error=error)
        set_cookie(response, request, LOGIN_CSRF_COOKIE, token, max_age=3600)
        return response

    async def show(request: Request) -> Response:
        if await ctx.who(request) is not None:
            return RedirectResponse(f"{request.scope.get('root_path', '')}/", status_code=303)
        return form(request)

    def _check(name: str, password: str, code: str, peer: str) -> tuple[admins.OpenSession | None, str]:
        now = ctx.now()
        with ctx.svc.db.write() as session:
            admin = admins.verify_login(session, ctx.svc.keys, name, password, code, now=now)
            opened = None if admin is None else admins.create_session(session, admin, peer=peer, now=now,
                                                                      lifetime=ctx.session_max)
            known = admin is not None or admins.by_name(session, name.strip().lower()) is not None
            audit.record(session, actor=f"admin:{admin.name}" if admin else "anonymous", action="admin.login",
                         subject_ref=f"admin:{name.strip().lower()[:60]}" if known else None, peer=peer, now=now,
                         details={"result": "ok" if admin else "failed"})
        return opened, "ok" if opened else "failed"

    async def submit(request: Request) -> Response:
        data = await request.form()
        if not same_token(request.cookies.get(LOGIN_CSRF_COOKIE), data.get("login_csrf")):
            return form(request, error="Formulaire expiré : recommencez.", status=403)
        name, password, code = (str(data.get(k) or "")[:200] for k in ("name", "password", "code"))
        peer = client_ip(request)
        throttle = ctx.throttle
        assert throttle is not None
        attempt = await ctx.run(throttle.reserve, "admin:" + name.lower(), peer, time.time())
        if not attempt.allowed:  # counted before checking: concurrent attempts cannot race the limit
            metrics.login_failure("admin", attempt.reason)
            return form(request, error=LOCKED, status=429)
        opened, _ = await ctx.run(_check, name, password, code, peer)
        if opened is None:
            metrics.login_failure("admin", "auth.failed")
            if attempt.delay:
                await asyncio.sleep(attempt.delay)
            return form(request, error=FAILED, status=401)
        await ctx.run(throttle.succeeded, attempt, time.time())
        response = RedirectResponse(f"{request.scope.get('root_path', '')}/", status_code=303)
        set_cookie(response, request, session_cookie_name(request), opened.token,
                   max_age=int(ctx.session_max.total_seconds()))
        clear_cookie(response, request, LOGIN_CSRF_COOKIE)
        return response

    async def logout(request: Request, who: Who) -> Response:
        token = session_token(request)

        def end() -> None:
            with ctx.svc.db.write() as session:
                if token:
                    admins.end_session(session, token)
                audit.record(session, actor=who.actor.audit_actor, action="admin.logout", peer=who.actor.peer)

        await ctx.run(end)
        response = RedirectResponse(f"{request.scope.get('root_path', '')}/login", status_code=303)
        clear_cookie(response, request, session_cookie_name(request))
        return response

    return [
        Route("/login", show, methods=["GET"]),
        Route("/login", submit, methods=["POST"]),
        Route("/logout", ctx.console(logout), methods=["POST"]),
    ]
