"""HTTP hardening shared by the patient inbox and the admin console: headers, peer, tokens.

Every response gets the OWASP Secure Headers set: a strict Content-Security-Policy (each
console gives its own: no script anywhere, styles from a static file), ``X-Frame-Options:
DENY``, ``nosniff``, ``Referrer-Policy: no-referrer``, ``no-store`` unless a route chose
its own caching, and HSTS on HTTPS only (RFC 6797 §7.2: never over plain HTTP) with the
``web.hsts_max_age_seconds`` setting (0: no HSTS header).

Cookies stay with each console (names, paths and prefixes differ: ``/`` and ``__Host-``
for the patient, ``/admin`` and ``__Secure-`` for the admin).
"""

from __future__ import annotations

import hmac

from starlette.requests import Request

from gateway.web.asgi import ASGIApp, Message, Receive, Scope, Send

COMMON_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), interest-cohort=()"),
)


def is_https(scope: Scope) -> bool:
    return scope.get("scheme") in ("https", "wss")


class SecurityHeaders:
    """ASGI middleware adding the headers above, and the console's CSP, to every response."""

    def __init__(self, app: ASGIApp, *, csp: str, hsts_max_age: int) -> None:
        self.app = app
        self.headers = ((b"content-security-policy", csp.encode("ascii")), *COMMON_HEADERS)
        self.hsts = f"max-age={hsts_max_age}; includeSubDomains".encode() if hsts_max_age > 0 else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        tls = is_https(scope)

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: list[tuple[bytes, bytes]] = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                extra = list(self.headers)
                if b"cache-control" not in present:
                    extra += [(b"cache-control", b"no-store"), (b"pragma", b"no-cache")]
                if tls and self.hsts is not None:
                    extra.append((b"strict-transport-security", self.hsts))
                message["headers"] = headers + [(k, v) for k, v in extra if k not in present]
            await send(message)

        await self.app(scope, receive, wrapped)


def client_ip(request: Request) -> str:
    """The peer address as the socket sees it (no forwarding header is trusted)."""
    return request.client.host if request.client else "unknown"


def token_matches(expected: str | None, given: object) -> bool:
    """Constant-time comparison of a CSRF token; anything but a non-empty string is a mismatch
    (bytes are compared: :func:`hmac.compare_digest` refuses non-ASCII text)."""
    if not expected or not isinstance(given, str) or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())
