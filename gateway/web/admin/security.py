"""HTTP hardening of the admin console and API: security headers, cookies, CSRF, peer.

Every response gets a strict Content-Security-Policy (no script at all, styles from our
static file only; charts are inline SVG drawn with presentation attributes),
``X-Frame-Options: DENY``, ``nosniff``, ``no-referrer`` and ``no-store``: admin pages
show personal state and must not be cached or framed (OWASP Secure Headers).
"""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.responses import Response

from gateway.web.asgi import ASGIApp, Message, Receive, Scope, Send

CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
SESSION_COOKIE = "hmg_admin"
SESSION_COOKIE_TLS = "__Secure-hmg_admin"
LOGIN_CSRF_COOKIE = "hmg_admin_login"
CSRF_FIELD = "csrf"
COOKIE_PATH = "/admin"

HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
)


class SecurityHeaders:
    """ASGI middleware: the headers above on every response (``no-store`` unless set)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        tls = scope.get("scheme") == "https"

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: list[tuple[bytes, bytes]] = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                extra = list(HEADERS)
                if b"cache-control" not in present:
                    extra += [(b"cache-control", b"no-store"), (b"pragma", b"no-cache")]
                if tls:
                    extra.append((b"strict-transport-security", b"max-age=31536000; includeSubDomains"))
                message["headers"] = headers + [(k, v) for k, v in extra if k not in present]
            await send(message)

        await self.app(scope, receive, wrapped)


def is_https(request: Request) -> bool:
    return request.url.scheme == "https"


def session_cookie_name(request: Request) -> str:
    return SESSION_COOKIE_TLS if is_https(request) else SESSION_COOKIE


def session_token(request: Request) -> str | None:
    value = request.cookies.get(session_cookie_name(request))
    return value if value and len(value) < 200 else None


def set_cookie(response: Response, request: Request, name: str, value: str, max_age: int | None) -> None:
    response.set_cookie(name, value, max_age=max_age, path=COOKIE_PATH, secure=is_https(request),
                        httponly=True, samesite="strict")


def clear_cookie(response: Response, request: Request, name: str) -> None:
    response.delete_cookie(name, path=COOKIE_PATH, secure=is_https(request), httponly=True, samesite="strict")


def same_token(expected: str | None, given: object) -> bool:
    return bool(expected) and isinstance(given, str) and hmac.compare_digest(str(expected), given)


def client_ip(request: Request) -> str:
    """The socket's peer (no forwarding header is trusted)."""
    return request.client.host if request.client else "unknown"
