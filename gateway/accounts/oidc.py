"""Access tokens from the OpenID Connect issuer (``[auth.oidc]``): who presents them, until when.

What SASL OAUTHBEARER (RFC 7628) and XOAUTH2 hand over is checked here, once, the same way for
IMAP and SMTP submission:

- A JWT access token (RFC 9068 profile, RFC 7519): the signature with a key of the issuer's JWKS
  (``gateway.accounts.oidc_provider``), an algorithm from :data:`ALGORITHMS` only (``none`` and
  the HMAC family are refused: a public key must never serve as an HMAC secret); then the claims
  (:func:`check_claims`): ``iss``, ``aud`` (or ``azp``), ``exp`` / ``nbf`` with
  ``leeway_seconds``, the identity claim and the required scope (``scope``, RFC 8693 §4.2, or
  an ``scp`` list).
- Any other (opaque) token, when ``introspection_url`` is configured: RFC 7662 introspection,
  ``active`` true, then the same claims checks on the response.

The answer is :class:`Verified` (identity, expiry, scopes) or :class:`Refused` (a reason code for
logs and metrics, the RFC 7628 §3.2.2 ``status``, and whether the provider was unreachable);
:func:`challenge` builds the JSON error the SASL layer sends. The token itself is never logged,
never put in an exception: logs carry the reason code.

The JOSE work (signature, JWK parsing) is PyJWT over ``cryptography``; the time checks are made
here, against the injected clock.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt

from gateway.accounts.oidc_provider import ProviderClient, ProviderUnavailable
from gateway.settings import ConfigError, OidcSettings, Settings

log = logging.getLogger("gateway.oidc")

ALGORITHMS = ("RS256", "PS256", "ES256")
"""Signature algorithms accepted (asymmetric only)."""

INVALID_TOKEN = "invalid_token"  # noqa: S105 (a status name)
INSUFFICIENT_SCOPE = "insufficient_scope"
INVALID_REQUEST = "invalid_request"
"""RFC 7628 §3.2.2 ``status`` values (the RFC 6750 §3.1 error codes)."""


@dataclass(frozen=True, slots=True)
class Verified:
    identity: str
    """The identity claim's value (Pro Santé Connect: the ``SubjectNameID``)."""
    expires_at: datetime | None
    """The token's ``exp`` (``None`` only from an introspection answer without one)."""
    scopes: frozenset[str]
    client_id: str | None = None
    """The OAuth client the token was issued to (``client_id`` or ``azp``), when stated."""


@dataclass(frozen=True, slots=True)
class Refused:
    reason: str
    """Why, for logs and metrics: ``malformed``, ``algorithm``, ``unknown_key``, ``signature``,
    ``issuer``, ``audience``, ``expired``, ``not_yet_valid``, ``identity``, ``scope``,
    ``inactive``, ``bound`` (a sender-constrained token: SASL cannot prove the key),
    ``unsupported`` (opaque token, no introspection), ``unavailable`` (provider)."""
    status: str = INVALID_TOKEN
    """The RFC 7628 §3.2.2 status (``invalid_token``, ``insufficient_scope``)."""
    temporary: bool = False
    """The provider could not be asked: a temporary failure, the token was not judged."""


def challenge(refused: Refused, *, scope: str | None = None, openid_configuration: str | None = None) -> str:
    """The RFC 7628 §3.2.2 error challenge: ``{"status": …, "scope": …, "openid-configuration": …}``
    (the optional members when given), compact JSON, ASCII only."""
    body: dict[str, str] = {"status": refused.status}
    if scope:
        body["scope"] = scope
    if openid_configuration:
        body["openid-configuration"] = openid_configuration
    return json.dumps(body, separators=(",", ":"))


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _scopes(claims: dict[str, Any]) -> frozenset[str]:
    scope = claims.get("scope")
    if isinstance(scope, str):
        return frozenset(scope.split())
    scp = claims.get("scp")
    if isinstance(scp, str):
        return frozenset(scp.split())
    if isinstance(scp, list):
        return frozenset(item for item in scp if isinstance(item, str))
    return frozenset()


def _number(claims: dict[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None  # JSON parsing in Python accepts Infinity and NaN: never a lifetime
    return float(value)


def check_claims(claims: dict[str, Any], settings: OidcSettings, now: datetime, *,
                 introspected: bool = False) -> Verified | Refused:
    """The claims checks shared by JWT access tokens and introspection answers (where RFC 7662
    §2.2 makes ``iss`` and ``exp`` optional: checked when present)."""
    iss = claims.get("iss")
    if iss != settings.issuer and (not introspected or iss is not None):
        return Refused("issuer")
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if settings.audience not in audiences and claims.get("azp") != settings.audience:
        return Refused("audience")
    if "cnf" in claims:  # RFC 7800: bound to a key (DPoP, RFC 9449; mTLS, RFC 8705); SASL proves none
        return Refused("bound")
    leeway = settings.leeway_seconds
    at = now.timestamp()
    exp = _number(claims, "exp")
    if exp is None:
        if not introspected or "exp" in claims:
            return Refused("malformed")
    elif at > exp + leeway:
        return Refused("expired")
    nbf = _number(claims, "nbf")
    if "nbf" in claims and nbf is None:
        return Refused("malformed")
    if nbf is not None and at + leeway < nbf:
        return Refused("not_yet_valid")
    identity = claims.get(settings.identity_claim)
    if isinstance(identity, int) and not isinstance(identity, bool):
        identity = str(identity)
    if not isinstance(identity, str) or not identity.strip():
        return Refused("identity")
    scopes = _scopes(claims)
    if settings.required_scope not in scopes:
        return Refused("scope", INSUFFICIENT_SCOPE)
    client = claims.get("client_id", claims.get("azp"))
    return Verified(identity=identity, expires_at=None if exp is None else datetime.fromtimestamp(exp, UTC),
                    scopes=scopes, client_id=client if isinstance(client, str) else None)


def _jwt_header(token: str) -> dict[str, Any] | None:
    """The JOSE header when ``token`` has the JWS compact form, else ``None`` (opaque)."""
    if token.count(".") != 2:
        return None
    try:
        return jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        return None


class TokenVerifier:
    """Checks access tokens against the one configured issuer (see the module docstring)."""

    def __init__(self, settings: OidcSettings, *, client_secret: str | None = None,
                 clock: Callable[[], datetime] = _utc_now, provider: ProviderClient | None = None) -> None:
        self.settings = settings
        self._clock = clock
        self.provider = provider or ProviderClient(settings.issuer, timeout=settings.http_timeout_seconds,
                                                   jwks_refresh_seconds=settings.jwks_refresh_seconds,
                                                   discovery_max_age_seconds=settings.discovery_max_age_seconds)
        self._introspection_client: tuple[str, str] | None = None
        if settings.introspection_url:
            if client_secret is None:
                client_secret = read_client_secret(settings.client_secret_file)
            self._introspection_client = (settings.client_id, client_secret)

    @property
    def openid_configuration(self) -> str:
        return self.provider.discovery_url

    def challenge(self, refused: Refused) -> str:
        """The RFC 7628 error challenge for ``refused``, naming this issuer's discovery document
        and the scope to ask for."""
        return challenge(refused, scope=self.settings.required_scope, openid_configuration=self.openid_configuration)

    async def verify(self, token: str) -> Verified | Refused:
        result = await self._verify(token)
        if isinstance(result, Refused):
            log.info("access token refused: %s%s", result.reason, " (provider unavailable)" if result.temporary else "")
        return result

    async def _verify(self, token: str) -> Verified | Refused:
        if not token or not token.isascii() or any(c.isspace() for c in token):
            return Refused("malformed")
        try:
            header = _jwt_header(token)
            if header is not None:
                return await self._verify_jwt(token, header)
            if self._introspection_client is not None:
                return await self._introspect(token)
        except ProviderUnavailable as exc:
            log.warning("identity provider unavailable: %s", exc)
            return Refused("unavailable", temporary=True)
        return Refused("unsupported")

    async def _verify_jwt(self, token: str, header: dict[str, Any]) -> Verified | Refused:
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            return Refused("algorithm")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            return Refused("malformed")
        candidates = await self.provider.signing_keys(kid)
        if not candidates:
            return Refused("unknown_key")
        for jwk in candidates:
            if jwk.get("alg", alg) != alg:
                continue
            try:
                key = jwt.PyJWK(jwk, algorithm=alg)
                claims: dict[str, Any] = jwt.decode(
                    token, key, algorithms=[alg],
                    # The signature only: the claims are checked below against the injected clock.
                    options={"verify_signature": True, "verify_exp": False, "verify_nbf": False, "verify_iat": False,
                             "verify_aud": False, "verify_iss": False, "verify_jti": False, "verify_sub": False},
                )
            except (jwt.PyJWKError, jwt.InvalidKeyError):
                continue  # a key of another type than alg needs
            except jwt.InvalidSignatureError:
                return Refused("signature")
            except jwt.PyJWTError:
                return Refused("malformed")
            return check_claims(claims, self.settings, self._clock())
        return Refused("algorithm")

    async def _introspect(self, token: str) -> Verified | Refused:
        assert self._introspection_client is not None
        answer = await self.provider.introspect(self.settings.introspection_url, token, self._introspection_client)
        if answer.get("active") is not True:
            return Refused("inactive")
        return check_claims(answer, self.settings, self._clock(), introspected=True)


def read_client_secret(path: Path | None) -> str:
    """The introspection client's secret (``auth.oidc.client_secret_file``), or a ConfigError."""
    if path is None:
        raise ConfigError("auth.oidc.client_secret_file: needed with introspection_url")
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"auth.oidc.client_secret_file: cannot read {path}: {exc.strerror}") from None
    if not secret:
        raise ConfigError(f"auth.oidc.client_secret_file: {path} is empty")
    return secret


def verifier_from_settings(settings: Settings, *, clock: Callable[[], datetime] = _utc_now) -> TokenVerifier | None:
    """The gateway's verifier (``[auth.oidc]``, paths relative to the configuration file), or
    ``None`` when no issuer is configured. Reads the client secret now: a missing file is a
    ConfigError at start-up, not a refused login later."""
    oidc = settings.auth.oidc
    if oidc is None:
        return None
    secret = None
    if oidc.introspection_url:
        secret = read_client_secret(None if oidc.client_secret_file is None else settings.path(oidc.client_secret_file))
    return TokenVerifier(oidc, client_secret=secret, clock=clock)
