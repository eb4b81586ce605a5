"""Cookies and the Content-Security-Policy of the admin console and API.

The headers themselves are :class:`gateway.web.security.SecurityHeaders`' (shared with the
patient inbox): the CSP below allows no script at all and styles from our static file only
(charts are inline SVG drawn with presentation attributes); admin pages show personal state
and are never cached (``no-store``) nor framed.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from gateway.web.security import is_https

CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
SESSION_COOKIE = "hmg_admin"
SESSION_COOKIE_TLS = "__Secure-hmg_admin"
LOGIN_CSRF_COOKIE = "hmg_admin_login"
CSRF_FIELD = "csrf"
COOKIE_PATH = "/admin"


def session_cookie_name(request: Request) -> str:
    return SESSION_COOKIE_TLS if is_https(request.scope) else SESSION_COOKIE


def session_token(request: Request) -> str | None:
    value = request.cookies.get(session_cookie_name(request))
    return value if value and len(value) < 200 else None


def set_cookie(response: Response, request: Request, name: str, value: str, max_age: int | None) -> None:
    response.set_cookie(name, value, max_age=max_age, path=COOKIE_PATH, secure=is_https(request.scope),
                        httponly=True, samesite="strict")


def clear_cookie(response: Response, request: Request, name: str) -> None:
    response.delete_cookie(name, path=COOKIE_PATH, secure=is_https(request.scope), httponly=True, samesite="strict")
