"""An identity provider that cannot be asked judged nothing (issue 19): the attempt is refused as
a temporary failure and the login throttle's reservation is given back, so an outage never
leaves professionals locked out once it is over. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import socket
import time

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.accounts.oidc import TokenVerifier
from gateway.accounts.oidc_provider import ProviderClient
from gateway.accounts.throttle import LoginThrottle, ThrottleConfig
from gateway.accounts.token_login import TokenLogin
from gateway.settings import OidcSettings
from gateway.store.models import LoginCounter
from gateway.testing.store import Store

CONFIG = ThrottleConfig(lockout_after=3, ip_lockout_after=5, account_slow_after=4)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_provider_locks_nobody_out(store: Store) -> None:
    issuer = f"http://127.0.0.1:{_closed_port()}"
    settings = OidcSettings(issuer=issuer, audience="gateway", required_scope="mail")
    verifier = TokenVerifier(settings, provider=ProviderClient(issuer, jwks_refresh_seconds=0.0))
    login = TokenLogin(store.db, LoginThrottle(store.db, store.keys, CONFIG), verifier)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode({"iss": issuer, "aud": "gateway", "exp": time.time() + 60}, key, algorithm="RS256",
                       headers={"kid": "k1", "typ": "at+jwt"})

    async def attempts() -> list[tuple[bool, str, bool]]:
        outcomes = []
        for _ in range(8):  # beyond the pair's lockout (3) and the network's (5)
            outcome = await login.authenticate("XOAUTH2", "dr@clinic.test", token, "192.0.2.7", "imap")
            outcomes.append((outcome.ok, outcome.reason, outcome.temporary))
        return outcomes

    assert asyncio.run(attempts()) == [(False, "token.unavailable", True)] * 8
    with store.db.read() as session:
        rows = session.query(LoginCounter).all()
    assert rows and all((row.failures, row.locked_until, row.succeeded_at) == (0, None, None) for row in rows)
