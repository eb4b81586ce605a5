"""Cookies, CSRF and the Content-Security-Policy of the patient inbox.

The headers themselves are :class:`gateway.web.security.SecurityHeaders`' (shared with the
admin console); the CSP below allows no inline script or style (the CSS is a static file)
and inline ``data:`` images only (a sanitised HTML message's own pictures).
"""

from __future__ import annotations

import hmac
import secrets

from starlette.requests import Request
from starlette.responses import Response

from gateway.web.security import is_https

CSP = ("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
SESSION_COOKIE = "hmg_session"
SESSION_COOKIE_TLS = "__Host-hmg_session"  # RFC 6265bis §4.1.3.2: Secure, Path=/, no Domain
ANON_CSRF_COOKIE = "hmg_csrf"
ANON_CSRF_COOKIE_TLS = "__Host-hmg_csrf"
CSRF_FIELD = "csrf"


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
