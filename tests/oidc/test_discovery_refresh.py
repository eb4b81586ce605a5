"""The discovery document is re-read (OpenID Connect Discovery 1.0 §4): after
``discovery_max_age_seconds``, and at once (within the JWKS refresh guard) when the cached
``jwks_uri`` answers 404/410 or a JWKS refresh finds no key for a token's ``kid``: an identity
provider that moves its JWKS (a migration) is followed without restarting the gateway. A flood of
bad tokens costs at most one discovery request per ``jwks_refresh_seconds``; a discovery outage
keeps the previous document.

The provider is a small HTTP server on 127.0.0.1 whose discovery document names a JWKS URL the
test changes (the npm provider cannot move its JWKS without a new issuer).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.accounts.oidc import Refused, TokenVerifier, Verified
from gateway.accounts.oidc_provider import ProviderClient
from gateway.settings import OidcSettings


class MovingProvider:
    """Discovery at ``/.well-known/openid-configuration`` naming ``self.jwks_path``; each JWKS
    path serves ``self.jwks[path]`` (absent: 404, or ``self.status[path]``)."""

    def __init__(self) -> None:
        self.jwks_path = "/jwks-a"
        self.jwks: dict[str, list[dict[str, Any]]] = {}
        self.status: dict[str, int] = {}
        self.hits: Counter[str] = Counter()
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                provider.hits[self.path] += 1
                if self.path in provider.status:
                    self._send(provider.status[self.path], {"error": "down"})
                elif self.path == "/.well-known/openid-configuration":
                    self._send(200, {"issuer": provider.issuer, "jwks_uri": provider.issuer + provider.jwks_path,
                                     "token_endpoint": provider.issuer + "/token"})
                elif self.path in provider.jwks:
                    self._send(200, {"keys": provider.jwks[self.path]})
                else:
                    self._send(404, {"error": "not found"})

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.issuer = f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def discoveries(self) -> int:
        return self.hits["/.well-known/openid-configuration"]


class Signer:
    def __init__(self, kid: str) -> None:
        self.kid = kid
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwk(self) -> dict[str, Any]:
        public: dict[str, Any] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        return {**public, "kid": self.kid, "use": "sig", "alg": "RS256"}

    def token(self, issuer: str, kid: str | None = None) -> str:
        claims = {"iss": issuer, "aud": "gateway", "sub": "899700000001", "scope": "openid mail",
                  "exp": int(time.time()) + 300}
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": kid or self.kid, "typ": "at+jwt"})


@pytest.fixture
def idp() -> Iterator[MovingProvider]:
    provider = MovingProvider()
    thread = threading.Thread(target=provider.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield provider
    finally:
        provider.server.shutdown()
        provider.server.server_close()


class Clock:
    def __init__(self) -> None:
        self.mono = 1000.0

    def monotonic(self) -> float:
        return self.mono


def checker(idp: MovingProvider, clock: Clock, **overrides: Any) -> TokenVerifier:
    config = OidcSettings(issuer=idp.issuer, audience="gateway", required_scope="mail", **overrides)
    client = ProviderClient(idp.issuer, jwks_refresh_seconds=config.jwks_refresh_seconds,
                            discovery_max_age_seconds=config.discovery_max_age_seconds, monotonic=clock.monotonic)
    return TokenVerifier(config, clock=lambda: datetime.now(UTC), provider=client)


def test_default_is_one_hour() -> None:
    assert OidcSettings(issuer="https://idp.test", audience="a", required_scope="m").discovery_max_age_seconds == 3600


async def test_jwks_gone_404_follows_the_new_jwks_uri(idp: MovingProvider) -> None:
    old, new = Signer("old"), Signer("new")
    idp.jwks["/jwks-a"] = [old.jwk()]
    clock = Clock()
    check = checker(idp, clock)
    assert isinstance(await check.verify(old.token(idp.issuer)), Verified)
    assert idp.discoveries == 1
    # The migration: the JWKS moves, its old URL answers 404, a new key signs.
    idp.jwks_path = "/jwks-b"
    del idp.jwks["/jwks-a"]
    idp.jwks["/jwks-b"] = [new.jwk()]
    clock.mono += 30
    result = await check.verify(new.token(idp.issuer))
    assert isinstance(result, Verified) and result.identity == "899700000001"
    assert idp.discoveries == 2 and idp.hits["/jwks-a"] == 2 and idp.hits["/jwks-b"] == 1


async def test_jwks_gone_410_too(idp: MovingProvider) -> None:
    signer = Signer("k")
    idp.jwks["/jwks-a"] = [signer.jwk()]
    clock = Clock()
    check = checker(idp, clock)
    assert isinstance(await check.verify(signer.token(idp.issuer)), Verified)
    idp.status["/jwks-a"] = 410
    idp.jwks_path = "/jwks-b"
    idp.jwks["/jwks-b"] = [Signer("k2").jwk(), signer.jwk()]
    clock.mono += 30
    # A kid the cache lacks makes the refresh that finds the old URL gone.
    assert await check.verify(signer.token(idp.issuer, kid="k2")) == Refused("signature")
    assert idp.discoveries == 2 and idp.hits["/jwks-b"] == 1
    assert isinstance(await check.verify(signer.token(idp.issuer)), Verified)


async def test_unknown_kid_after_refresh_rereads_discovery(idp: MovingProvider) -> None:
    """The old JWKS URL still answers, with the old keys only: the new kid is looked for at the
    URL the provider names now."""
    old, new = Signer("old"), Signer("new")
    idp.jwks["/jwks-a"] = [old.jwk()]
    clock = Clock()
    check = checker(idp, clock)
    assert isinstance(await check.verify(old.token(idp.issuer)), Verified)
    idp.jwks_path = "/jwks-b"
    idp.jwks["/jwks-b"] = [old.jwk(), new.jwk()]
    clock.mono += 30
    assert isinstance(await check.verify(new.token(idp.issuer)), Verified)
    assert idp.discoveries == 2 and idp.hits["/jwks-a"] == 2 and idp.hits["/jwks-b"] == 1
    assert isinstance(await check.verify(old.token(idp.issuer)), Verified)
    assert check.provider.jwks_fetches == 3  # the first, the old URL's, the new URL's


async def test_a_flood_of_bad_kids_costs_one_discovery_per_interval(idp: MovingProvider) -> None:
    signer = Signer("k")
    idp.jwks["/jwks-a"] = [signer.jwk()]
    clock = Clock()
    check = checker(idp, clock)
    assert isinstance(await check.verify(signer.token(idp.issuer)), Verified)
    for round_ in range(3):
        clock.mono += 30
        results = await asyncio.gather(*(check.verify(signer.token(idp.issuer, kid=f"bogus-{round_}-{n}"))
                                         for n in range(25)))
        assert all(r == Refused("unknown_key") for r in results)
        for n in range(25):
            assert await check.verify(signer.token(idp.issuer, kid=f"more-{round_}-{n}")) == Refused("unknown_key")
        assert idp.discoveries == 2 + round_  # one re-read per interval, whatever the flood
        assert idp.hits["/jwks-a"] == 2 + round_


async def test_discovery_reread_after_max_age(idp: MovingProvider) -> None:
    signer = Signer("k")
    idp.jwks["/jwks-a"] = [signer.jwk()]
    clock = Clock()
    check = checker(idp, clock, discovery_max_age_seconds=600)
    meta = await check.provider.metadata()
    assert meta["jwks_uri"].endswith("/jwks-a") and idp.discoveries == 1
    idp.jwks_path = "/jwks-b"
    clock.mono += 599
    assert (await check.provider.metadata())["jwks_uri"].endswith("/jwks-a") and idp.discoveries == 1
    clock.mono += 1
    assert (await check.provider.metadata())["jwks_uri"].endswith("/jwks-b") and idp.discoveries == 2
    assert await check.provider.metadata_if_available() is not None and idp.discoveries == 2


async def test_a_discovery_outage_keeps_the_previous_document(idp: MovingProvider) -> None:
    signer, rotated = Signer("k"), Signer("k2")
    idp.jwks["/jwks-a"] = [signer.jwk()]
    clock = Clock()
    check = checker(idp, clock, discovery_max_age_seconds=600)
    assert isinstance(await check.verify(signer.token(idp.issuer)), Verified)
    idp.status["/.well-known/openid-configuration"] = 503
    clock.mono += 600
    # Discovery is due again and fails: sign-ins go on with the document held.
    assert isinstance(await check.verify(signer.token(idp.issuer)), Verified)
    first = await check.provider.metadata()
    assert first["jwks_uri"].endswith("/jwks-a") and idp.discoveries == 2
    assert await check.provider.metadata_if_available() is first and idp.discoveries == 2  # not asked again yet
    # A key rotation during the outage is still followed at the JWKS held.
    idp.jwks["/jwks-a"] = [signer.jwk(), rotated.jwk()]
    clock.mono += 30
    assert isinstance(await check.verify(rotated.token(idp.issuer)), Verified)
    assert idp.discoveries == 3  # the due re-read, tried once more, failed, document kept
    del idp.status["/.well-known/openid-configuration"]
    clock.mono += 30
    assert (await check.provider.metadata())["jwks_uri"].endswith("/jwks-a") and idp.discoveries == 4
