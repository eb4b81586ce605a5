"""Access tokens checked against a real OpenID Connect provider (npm ``oidc-provider``, issue 19).

JWT access tokens (RFC 9068) from the client_credentials grant, for the gateway's audience as
resource indicator (RFC 8707), with the professional's ``SubjectNameID`` claim; a second provider
issuing opaque tokens checked by RFC 7662 introspection; key rotation followed without restart.
In CI (``CI=true``) a missing Node or npm package fails these tests instead of skipping them.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.accounts.oidc import (
    ALGORITHMS,
    INSUFFICIENT_SCOPE,
    INVALID_TOKEN,
    Refused,
    TokenVerifier,
    Verified,
    challenge,
    check_claims,
    verifier_from_settings,
)
from gateway.accounts.oidc_provider import ProviderClient
from gateway.app.config import load_settings
from gateway.settings import ConfigError, OidcSettings
from tests.conftest import IN_CI
from tests.oidc.provider import AUDIENCE, INTROSPECTOR, PrivateProvider, missing, private_provider

IDENTITY = "899700000001"


def _require_provider() -> None:
    why = missing()
    if why is not None:
        if IN_CI:
            pytest.fail(f"the test identity provider is required in CI: {why}")
        pytest.skip(why)


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateProvider]:
    _require_provider()
    with private_provider(tmp_path_factory.mktemp("oidc-jwt")) as running:
        yield running


@pytest.fixture(scope="module")
def opaque_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateProvider]:
    _require_provider()
    with private_provider(tmp_path_factory.mktemp("oidc-opaque"), opaque=True) as running:
        yield running


def settings(issuer: str, **overrides: Any) -> OidcSettings:
    values: dict[str, Any] = {"issuer": issuer, "audience": AUDIENCE, "identity_claim": "SubjectNameID",
                              "required_scope": "mail"}
    values.update(overrides)
    return OidcSettings(**values)


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)
        self.mono = 1000.0

    def __call__(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        return self.mono


def verifier(issuer: str, clock: Clock | None = None, **overrides: Any) -> TokenVerifier:
    clock = clock or Clock()
    config = settings(issuer, **overrides)
    client = ProviderClient(issuer, jwks_refresh_seconds=config.jwks_refresh_seconds, monotonic=clock.monotonic)
    return TokenVerifier(config, client_secret=INTROSPECTOR[1] if config.introspection_url else None,
                         clock=clock, provider=client)


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def claims_of(token: str) -> dict[str, Any]:
    payload: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return payload


async def test_valid_token_gives_the_identity_claim(provider: PrivateProvider) -> None:
    check = verifier(provider.issuer)
    token = provider.token()
    result = await check.verify(token)
    assert isinstance(result, Verified), result
    assert result.identity == IDENTITY and result.client_id == "lps-dr-alpha"
    assert {"mail", "openid"} <= result.scopes
    assert result.expires_at is not None
    assert result.expires_at == datetime.fromtimestamp(claims_of(token)["exp"], UTC)
    assert timedelta(minutes=4) < result.expires_at - datetime.now(UTC) <= timedelta(minutes=5, seconds=5)
    # Another professional's token names that professional; `sub` (the client) is not the identity.
    other = await check.verify(provider.token("lps-dr-beta"))
    assert isinstance(other, Verified) and other.identity == "899700000002"
    by_sub = await verifier(provider.issuer, identity_claim="sub").verify(token)
    assert isinstance(by_sub, Verified) and by_sub.identity == "lps-dr-alpha"
    assert check.provider.jwks_fetches == 1  # cached


async def test_expired_token_with_leeway(provider: PrivateProvider) -> None:
    clock = Clock()
    check = verifier(provider.issuer, clock)
    token = provider.token()
    exp = datetime.fromtimestamp(claims_of(token)["exp"], UTC)
    clock.now = exp + timedelta(seconds=29)  # within the 30 s leeway
    assert isinstance(await check.verify(token), Verified)
    clock.now = exp + timedelta(seconds=31)
    assert await check.verify(token) == Refused("expired", INVALID_TOKEN)
    strict = verifier(provider.issuer, clock, leeway_seconds=0)
    clock.now = exp + timedelta(seconds=1)
    assert await strict.verify(token) == Refused("expired")


async def test_not_yet_valid_token(provider: PrivateProvider) -> None:
    clock = Clock()
    token = provider.token()
    clock.now = datetime.fromtimestamp(claims_of(token)["iat"], UTC) - timedelta(minutes=10)
    # oidc-provider sets no nbf; iat alone does not make a token early.
    assert isinstance(await verifier(provider.issuer, clock).verify(token), Verified)


async def test_other_audience_refused(provider: PrivateProvider) -> None:
    token = provider.token(resource="https://other-service.example/")
    assert claims_of(token)["aud"] == "https://other-service.example/"
    assert await verifier(provider.issuer).verify(token) == Refused("audience")


async def test_other_issuer_refused(provider: PrivateProvider) -> None:
    # The discovery document names the issuer: a configured issuer that differs is unusable.
    check = verifier(provider.issuer + "/")
    result = await check.verify(provider.token())
    assert result == Refused("unavailable", temporary=True)


async def test_missing_scope_gives_insufficient_scope(provider: PrivateProvider) -> None:
    check = verifier(provider.issuer)
    token = provider.token(scope="openid other")
    result = await check.verify(token)
    assert result == Refused("scope", INSUFFICIENT_SCOPE)
    assert isinstance(result, Refused)
    challenge = json.loads(check.challenge(result))
    assert challenge == {"status": "insufficient_scope", "scope": "mail",
                         "openid-configuration": provider.issuer + "/.well-known/openid-configuration"}
    # The discovery URL in the challenge is the real one.
    client = ProviderClient(provider.issuer)
    assert (await client.get_json(challenge["openid-configuration"]))["issuer"] == provider.issuer


def _forge(claims: dict[str, Any], kid: str) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid, "typ": "at+jwt"})


async def test_unknown_signing_key_refused_and_refresh_rate_limited(provider: PrivateProvider) -> None:
    clock = Clock()
    check = verifier(provider.issuer, clock)
    claims = claims_of(provider.token())
    assert isinstance(await check.verify(provider.token()), Verified)
    assert check.provider.jwks_fetches == 1
    forged = _forge(claims, kid="made-up-1")
    clock.mono += 31
    assert await check.verify(forged) == Refused("unknown_key")
    assert check.provider.jwks_fetches == 2  # one refresh for the unknown kid
    for n in range(20):  # a flood of bogus kids: no further request within the interval
        assert await check.verify(_forge(claims, kid=f"bogus-{n}")) == Refused("unknown_key")
    assert check.provider.jwks_fetches == 2
    clock.mono += 31
    assert await check.verify(_forge(claims, kid="made-up-2")) == Refused("unknown_key")
    assert check.provider.jwks_fetches == 3
    # The provider's own kid on a signature by another key.
    assert await check.verify(_forge(claims, kid="k1")) == Refused("signature")


async def test_none_and_hmac_algorithms_refused(provider: PrivateProvider) -> None:
    check = verifier(provider.issuer)
    claims = claims_of(provider.token())
    unsigned = f"{b64({'alg': 'none', 'typ': 'at+jwt', 'kid': 'k1'})}.{b64(claims)}."
    assert await check.verify(unsigned) == Refused("algorithm")
    no_kid = f"{b64({'alg': 'none'})}.{b64(claims)}."
    assert await check.verify(no_kid) == Refused("algorithm")
    # HS256 keyed with the provider's public key (the classic key-confusion forgery).
    public = jwt.PyJWK(provider.keys[-1]).key.public_key()
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    header = b64({"alg": "HS256", "kid": "k1"})
    signing_input = f"{header}.{b64(claims)}".encode()
    mac = base64.urlsafe_b64encode(hmac.new(pem, signing_input, hashlib.sha256).digest()).rstrip(b"=").decode()
    assert await check.verify(f"{signing_input.decode()}.{mac}") == Refused("algorithm")
    assert set(ALGORITHMS) == {"RS256", "PS256", "ES256"}


async def test_malformed_tokens(provider: PrivateProvider) -> None:
    check = verifier(provider.issuer)
    for token in ("", "a.b.c", "not a token", "x" * 40, provider.token() + "\n"):
        result = await check.verify(token)
        assert isinstance(result, Refused) and result.status == INVALID_TOKEN and not result.temporary, token
    good = provider.token()
    head, _body, sig = good.split(".")
    tampered = dict(claims_of(good), SubjectNameID="899700000002")
    assert await check.verify(f"{head}.{b64(tampered)}.{sig}") == Refused("signature")


async def test_sender_constrained_tokens_refused(provider: PrivateProvider, opaque_provider: PrivateProvider) -> None:
    """A DPoP-bound token (RFC 9449) is no bearer token: a thief must not use it over SASL."""
    bound = provider.token(dpop=True)
    assert "jkt" in claims_of(bound)["cnf"]
    assert await verifier(provider.issuer).verify(bound) == Refused("bound")
    url = opaque_provider.issuer + "/token/introspection"
    check = verifier(opaque_provider.issuer, introspection_url=url, client_id=INTROSPECTOR[0],
                     client_secret_file=Path("/nonexistent"))
    assert await check.verify(opaque_provider.token(dpop=True)) == Refused("bound")


async def test_key_rotation_followed_without_restart(tmp_path: Path) -> None:
    _require_provider()
    with private_provider(tmp_path) as rotating:
        clock = Clock()
        check = verifier(rotating.issuer, clock)
        before = rotating.token()
        assert isinstance(await check.verify(before), Verified)
        new_kid = rotating.rotate("ES256")
        after = rotating.token()
        assert jwt.get_unverified_header(after) == {"alg": "ES256", "typ": "at+jwt", "kid": new_kid}
        # A refresh happened less than jwks_refresh_seconds ago: the new kid waits.
        assert await check.verify(after) == Refused("unknown_key")
        clock.mono += 30
        result = await check.verify(after)
        assert isinstance(result, Verified) and result.identity == IDENTITY
        assert isinstance(await check.verify(before), Verified)  # the old key is still published
        assert check.provider.jwks_fetches == 2
        # Again, to an RSA-PSS key; many sessions at once share one JWKS request.
        ps_kid = rotating.rotate("PS256")
        third = rotating.token()
        assert jwt.get_unverified_header(third)["alg"] == "PS256"
        clock.mono += 30
        results = await asyncio.gather(*(check.verify(third) for _ in range(10)))
        assert all(isinstance(r, Verified) and r.identity == IDENTITY for r in results), results
        assert check.provider.jwks_fetches == 3
        assert ps_kid in {key["kid"] for key in rotating.keys}


async def test_opaque_token_by_introspection(opaque_provider: PrivateProvider) -> None:
    url = opaque_provider.issuer + "/token/introspection"
    check = verifier(opaque_provider.issuer, introspection_url=url, client_id=INTROSPECTOR[0],
                     client_secret_file=Path("/nonexistent"))
    token = opaque_provider.token()
    assert token.count(".") == 0
    result = await check.verify(token)
    assert isinstance(result, Verified), result
    assert result.identity == IDENTITY and "mail" in result.scopes and result.expires_at is not None
    assert await check.verify(opaque_provider.token(scope="openid")) == Refused("scope", INSUFFICIENT_SCOPE)
    other = opaque_provider.token(resource="https://other-service.example/")
    assert await check.verify(other) == Refused("audience")
    assert await check.verify("unknown-opaque-token-0123456789") == Refused("inactive")
    # Without introspection configured, an opaque token cannot be judged.
    assert await verifier(opaque_provider.issuer).verify(token) == Refused("unsupported")


async def test_revoked_opaque_token_is_inactive(opaque_provider: PrivateProvider) -> None:
    url = opaque_provider.issuer + "/token/introspection"
    check = verifier(opaque_provider.issuer, introspection_url=url, client_id=INTROSPECTOR[0],
                     client_secret_file=Path("/nonexistent"))
    token = opaque_provider.token()
    assert isinstance(await check.verify(token), Verified)
    opaque_provider.revoke(token)
    assert await check.verify(token) == Refused("inactive")
    # Wrong introspection credentials: the provider refuses us, a temporary failure.
    wrong = TokenVerifier(settings(opaque_provider.issuer, introspection_url=url, client_id=INTROSPECTOR[0],
                                   client_secret_file=Path("/nonexistent")), client_secret="wrong-secret")
    assert await wrong.verify(opaque_provider.token()) == Refused("unavailable", temporary=True)


async def test_provider_unreachable_is_temporary() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    clock = Clock()
    check = verifier(f"http://127.0.0.1:{port}", clock)
    token = _forge({"iss": "x", "aud": AUDIENCE, "exp": time.time() + 60}, kid="k1")
    assert await check.verify(token) == Refused("unavailable", temporary=True)
    assert check.provider.requests == 1
    for n in range(5):  # not asked again within jwks_refresh_seconds
        assert await check.verify(_forge({}, kid=f"k{n}")) == Refused("unavailable", temporary=True)
    assert check.provider.requests == 1
    clock.mono += 30
    assert await check.verify(token) == Refused("unavailable", temporary=True)
    assert check.provider.requests == 2


async def test_the_token_is_never_logged(provider: PrivateProvider, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    check = verifier(provider.issuer)
    tokens = [provider.token(scope="openid"), provider.token(resource="https://other-service.example/"),
              _forge(claims_of(provider.token()), kid="zz")]
    for token in tokens:
        assert isinstance(await check.verify(token), Refused)
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "access token refused: scope" in text
    for token in tokens:
        assert token not in text and token.split(".")[2] not in text


async def test_verifier_from_the_configuration_file(opaque_provider: PrivateProvider, tmp_path: Path) -> None:
    """The secret file is relative to the configuration file and read at start-up."""
    conf = tmp_path / "gateway.toml"
    conf.write_text(f'[auth.oidc]\nissuer = "{opaque_provider.issuer}"\naudience = "{AUDIENCE}"\n'
                    f'identity_claim = "SubjectNameID"\nrequired_scope = "mail"\n'
                    f'introspection_url = "{opaque_provider.issuer}/token/introspection"\n'
                    f'client_id = "{INTROSPECTOR[0]}"\nclient_secret_file = "secrets/oidc"\n')
    settings_ = load_settings(conf, environ={})
    with pytest.raises(ConfigError, match=r"auth.oidc.client_secret_file: cannot read .*secrets/oidc"):
        verifier_from_settings(settings_)
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "oidc").write_text("")
    with pytest.raises(ConfigError, match="is empty"):
        verifier_from_settings(settings_)
    (tmp_path / "secrets" / "oidc").write_text(INTROSPECTOR[1] + "\n")
    check = verifier_from_settings(settings_)
    assert check is not None
    result = await check.verify(opaque_provider.token())
    assert isinstance(result, Verified) and result.identity == IDENTITY
    assert verifier_from_settings(load_settings(None, environ={})) is None


def test_challenge_json() -> None:
    """RFC 7628 §3.2.2: status required, scope and openid-configuration optional."""
    assert challenge(Refused("expired")) == '{"status":"invalid_token"}'
    assert json.loads(challenge(Refused("scope", INSUFFICIENT_SCOPE), scope="mail",
                                openid_configuration="https://idp.example/.well-known/openid-configuration")) == {
        "status": "insufficient_scope", "scope": "mail",
        "openid-configuration": "https://idp.example/.well-known/openid-configuration"}


def test_claims_rules() -> None:
    """The claim rules on their own: ``scp`` lists, ``azp``, numeric ids, the introspection case."""
    config = settings("https://idp.example")
    now = datetime.now(UTC)
    base = {"iss": "https://idp.example", "aud": ["x", AUDIENCE], "exp": now.timestamp() + 60,
            "SubjectNameID": 899700000001, "scp": ["mail", "other"]}
    ok = check_claims(base, config, now)
    assert isinstance(ok, Verified) and ok.identity == "899700000001" and ok.scopes == {"mail", "other"}
    assert isinstance(check_claims({**base, "aud": "x", "azp": AUDIENCE}, config, now), Verified)
    assert check_claims({**base, "aud": "x"}, config, now) == Refused("audience")
    assert check_claims({**base, "exp": float("inf")}, config, now) == Refused("malformed")
    assert check_claims({**base, "exp": True}, config, now) == Refused("malformed")
    assert check_claims({**base, "nbf": now.timestamp() + 31}, config, now) == Refused("not_yet_valid")
    assert isinstance(check_claims({**base, "nbf": now.timestamp() + 29}, config, now), Verified)
    assert check_claims({**base, "SubjectNameID": " "}, config, now) == Refused("identity")
    assert isinstance(check_claims({**base, "scp": "other mail"}, config, now), Verified)
    no_scope = Refused("scope", INSUFFICIENT_SCOPE)
    assert check_claims({**base, "scope": "other", "scp": ["mail"]}, config, now) == no_scope  # scope wins
    bare = {k: v for k, v in base.items() if k not in ("iss", "exp")}
    assert check_claims(bare, config, now) == Refused("issuer")
    answer = check_claims(bare, config, now, introspected=True)  # RFC 7662: iss, exp optional
    assert isinstance(answer, Verified) and answer.expires_at is None
    assert check_claims({**bare, "iss": "https://evil.example"}, config, now, introspected=True) == Refused("issuer")


async def test_discovery_for_autoconfiguration(provider: PrivateProvider) -> None:
    """``metadata_if_available``: the discovery document, fetched once; ``None`` while the
    provider is unreachable, asked again only after ``jwks_refresh_seconds``."""
    client = ProviderClient(provider.issuer)
    first = await client.metadata_if_available()
    assert first is not None and first["issuer"] == provider.issuer
    assert first["token_endpoint"].startswith(provider.issuer)
    assert await client.metadata_if_available() is first and client.requests == 1
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    clock = Clock()
    down = ProviderClient(f"http://127.0.0.1:{port}", jwks_refresh_seconds=30, monotonic=clock.monotonic)
    assert await down.metadata_if_available() is None and down.requests == 1
    assert await down.metadata_if_available() is None and down.requests == 1  # not asked again yet
    clock.mono += 30
    assert await down.metadata_if_available() is None and down.requests == 2
