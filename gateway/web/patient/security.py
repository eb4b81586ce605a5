"""HTTP hardening of the patient inbox: security headers, CSRF, client address, cookies.

Headers on every response (OWASP Secure Headers): a strict Content-Security-Policy with
no inline script or style (the CSS is a static file), ``X-Frame-Options: DENY``,
``nosniff``, ``Referrer-Policy: no-referrer``, ``no-store`` unless a route chose its own
caching, and HSTS on HTTPS only (RFC 6797 §7.2: never over plain HTTP).
"""

from __future__ import annotations

import hmac
import secrets

from starlette.requests import Request
from starlette.responses import Response

from gateway.web.asgi import ASGIApp, Message, Receive, Scope, Send

CSP = ("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
SESSION_COOKIE = "hmg_session"
SESSION_COOKIE_TLS = "__Host-hmg_session"  # RFC 6265bis §4.1.3.2: Secure, Path=/, no Domain
ANON_CSRF_COOKIE = "hmg_csrf"
ANON_CSRF_COOKIE_TLS = "__Host-hmg_csrf"
CSRF_FIELD = "csrf"


def is_https(scope: Scope) -> bool:
    return scope.get("scheme") in ("https", "wss")


class SecurityHeaders:
    """ASGI middleware adding the headers above to every response of the wrapped app."""

    def __init__(self, app: ASGIApp, *, hsts_max_age: int) -> None:
        self.app = app
        self.hsts_max_age = hsts_max_age

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        tls = is_https(scope)

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: list[tuple[bytes, bytes]] = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                extra = [
                    (b"content-security-policy", CSP.encode()),
                    (b"x-frame-options", b"DENY"),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"cross-origin-opener-policy", b"same-origin"),
                    (b"cross-origin-resource-policy", b"same-origin"),
                    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), interest-cohort=()"),
                ]
                if b"cache-control" not in present:
                    extra.append((b"cache-control", b"no-store"))
                    extra.append((b"pragma", b"no-cache"))
                if tls and self.hsts_max_age:
                    extra.append((b"strict-transport-security",
                                  f"max-age={self.hsts_max_age}; includeSubDomains".encode()))
                message["headers"] = headers + [(k, v) for k, v in extra if k not in present]
            await send(message)

        await self.app(scope, receive, wrapped)


def client_ip(request: Request) -> str:
    """The peer address as the socket sees it (no proxy header is trusted)."""
    return request.client.host if request.client else "unknown"


def same_origin(request: Request) -> bool:
    """Refuse requests a browser marks as cross-site (Fetch Metadata, else the Origin header).

    With ``Referrer-Policy: no-referrer`` browsers send ``Origin: null`` on form posts, so when
    ``Sec-Fetch-Site`` is present it decides; the CSRF token is checked in every case anyway.
    """
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None:
        return True
    expected = f"{request.url.scheme}://{request.headers.get('host', '')}"
    return hmac.compare_digest(origin.encode(), expected.encode())


def token_matches(expected: str | None, given: object) -> bool:
    if not expected or not isinstance(given, str) or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


def session_cookie_name(request: Request) -> str:
    return SESSION_COOKIE_TLS if is_https(request.scope) else SESSION_COOKIE


def anon_cookie_name(request: Request) -> str:
    return ANON_CSRF_COOKIE_TLS if is_https(request.scope) else ANON_CSRF_COOKIE


def set_cookie(request: Request, response: Response, name: str, value: str, *, max_age: int | None = None) -> None:
    """HttpOnly, SameSite=Strict, Path=/, Secure on HTTPS."""
    response.set_cookie(name, value, max_age=max_age, path="/", secure=is_https(request.scope), httponly=True,
                        samesite="strict")


def clear_cookie(request: Request, response: Response, name: str) -> None:
    response.delete_cookie(name, path="/", secure=is_https(request.scope), httponly=True, samesite="strict")


def anon_csrf(request: Request) -> tuple[str, bool]:
    """The anonymous forms' double-submit token: (token, whether the cookie must be set)."""
    current = request.cookies.get(anon_cookie_name(request))
    if current and 20 <= len(current) <= 64:
        return current, False
    return secrets.token_urlsafe(24), True
