"""The identity provider as the gateway sees it: discovery, the signing keys, introspection.

- Discovery (OpenID Connect Discovery 1.0 §4): ``{issuer}/.well-known/openid-configuration``,
  whose ``issuer`` must be the configured one exactly (§4.3) and whose ``jwks_uri`` is
  ``https://`` (or loopback, as the issuer: ``gateway.settings.check_provider_url``).
- The JWKS (RFC 7517) is cached; a token naming a key (``kid``) the cache lacks fetches it again,
  at most once per ``jwks_refresh_seconds`` (a flood of tokens with made-up ``kid`` values
  costs the provider one request per interval), concurrent refreshes sharing one request.
- Introspection (RFC 7662 §2): ``POST token=…`` with the gateway's client credentials (HTTP Basic,
  RFC 6749 §2.3.1).

HTTP is ``urllib`` run in a worker thread (``asyncio.to_thread``): the gateway's event loop never
blocks on the provider. Nothing here logs a token; errors carry the URL and the HTTP status only.

Layer: ``gateway.accounts``; imports ``gateway.settings`` only.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

from gateway.settings import check_provider_url

log = logging.getLogger("gateway.oidc")

MAX_RESPONSE_BYTES = 1_048_576
"""Largest provider response read (discovery, JWKS, introspection)."""


class ProviderUnavailable(Exception):
    """The provider could not be reached or answered something unusable (a temporary failure
    for the client: the token itself was not judged)."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects are not followed (a redirect could leave https:// or the provider)."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect())


def _fetch_json(url: str, *, form: dict[str, str] | None, basic: tuple[str, str] | None,
                timeout: float) -> dict[str, Any]:
    headers = {"Accept": "application/json", "User-Agent": "health-mail-gateway"}
    data = None
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    if basic is not None:
        # RFC 6749 §2.3.1: client id and secret form-encoded, then Base64 of "id:secret".
        pair = f"{urllib.parse.quote(basic[0], safe='')}:{urllib.parse.quote(basic[1], safe='')}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    method = "POST" if data is not None else "GET"
    request = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310 (checked scheme)
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            body = response.read(MAX_RESPONSE_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise ProviderUnavailable(f"{url}: HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise ProviderUnavailable(f"{url}: {type(exc).__name__}") from None
    if len(body) > MAX_RESPONSE_BYTES:
        raise ProviderUnavailable(f"{url}: response larger than {MAX_RESPONSE_BYTES} bytes")
    try:
        value = json.loads(body)
    except ValueError:
        raise ProviderUnavailable(f"{url}: not JSON") from None
    if not isinstance(value, dict):
        raise ProviderUnavailable(f"{url}: not a JSON object")
    return value


class ProviderClient:
    """Discovery, the cached JWKS and introspection for one issuer."""

    def __init__(self, issuer: str, *, timeout: float = 10.0, jwks_refresh_seconds: float = 30.0,
                 discovery_max_age_seconds: float = 3600.0, monotonic: Callable[[], float] = time.monotonic) -> None:
        check_provider_url(issuer)
        self.issuer = issuer
        self.timeout = timeout
        self.jwks_refresh_seconds = jwks_refresh_seconds
        self.discovery_max_age_seconds = discovery_max_age_seconds
        self._monotonic = monotonic
        self._metadata: dict[str, Any] | None = None
        self._keys: dict[str, dict[str, Any]] = {}
        self._keyless: list[dict[str, Any]] = []  # keys without a kid
        self._attempted_at: float | None = None
        self._failure: str | None = None
        self._lock = asyncio.Lock()
        self._discovery_lock = asyncio.Lock()
        self._discovery_attempted_at: float | None = None
        self.jwks_fetches = 0
        """How many times the JWKS was fetched (tests and metrics: the rate limit at work)."""
        self.requests = 0
        """HTTP requests made to the provider, successful or not."""

    @property
    def discovery_url(self) -> str:
        return self.issuer.rstrip("/") + "/.well-known/openid-configuration"

    async def get_json(self, url: str, *, form: dict[str, str] | None = None,
                       basic: tuple[str, str] | None = None) -> dict[str, Any]:
        check_provider_url(url)
        self.requests += 1
        return await asyncio.to_thread(_fetch_json, url, form=form, basic=basic, timeout=self.timeout)

    async def metadata(self) -> dict[str, Any]:
        if self._metadata is None:
            meta = await self.get_json(self.discovery_url)
            if meta.get("issuer") != self.issuer:
                raise ProviderUnavailable(f"{self.discovery_url}: another issuer {meta.get('issuer')!r}")
            jwks_uri = meta.get("jwks_uri")
            if not isinstance(jwks_uri, str):
                raise ProviderUnavailable(f"{self.discovery_url}: no jwks_uri")
            try:
                check_provider_url(jwks_uri)
            except ValueError as exc:
                raise ProviderUnavailable(f"{self.discovery_url}: jwks_uri {exc}") from None
            self._metadata = meta
        return self._metadata

    async def metadata_if_available(self) -> dict[str, Any] | None:
        """The discovery document, or ``None`` when it cannot be had now. Cached after the first
        success (as :meth:`metadata`); after a failure it is asked again at most once per
        ``jwks_refresh_seconds``, so that callers that can do without it (the autoconfiguration
        answers) never wait on an unreachable provider at every request."""
        if self._metadata is not None:
            return self._metadata
        async with self._discovery_lock:
            if self._metadata is not None:
                return self._metadata
            last = self._discovery_attempted_at
            if last is not None and self._monotonic() - last < self.jwks_refresh_seconds:
                return None
            self._discovery_attempted_at = self._monotonic()
            try:
                return await self.metadata()
            except ProviderUnavailable as exc:
                log.warning("identity provider discovery unavailable: %s", exc)
                return None

    async def _refresh(self) -> None:
        meta = await self.metadata()
        jwks = await self.get_json(str(meta["jwks_uri"]))
        keys = jwks.get("keys")
        if not isinstance(keys, list):
            raise ProviderUnavailable(f"{meta['jwks_uri']}: no keys")
        by_kid: dict[str, dict[str, Any]] = {}
        keyless: list[dict[str, Any]] = []
        for key in keys:
            if not isinstance(key, dict) or key.get("use", "sig") != "sig":
                continue
            kid = key.get("kid")
            if isinstance(kid, str):
                by_kid[kid] = key
            else:
                keyless.append(key)
        self._keys, self._keyless = by_kid, keyless
        self.jwks_fetches += 1

    async def signing_keys(self, kid: str | None) -> list[dict[str, Any]]:
        """The JWKs that may have signed a token whose header names ``kid`` (all keys without a
        kid when it names none). When the cache has none, the JWKS is fetched again, at most
        once per ``jwks_refresh_seconds`` whether the attempt succeeds or fails: a flood of
        made-up kids, or tokens while the provider is down, costs it one request per interval
        (until then a failed attempt is reported again without asking)."""
        found = self._lookup(kid)
        if found:
            return found
        async with self._lock:
            found = self._lookup(kid)  # another task may have refreshed meanwhile
            if found:
                return found
            if self._attempted_at is None or self._monotonic() - self._attempted_at >= self.jwks_refresh_seconds:
                self._attempted_at = self._monotonic()
                try:
                    await self._refresh()
                except ProviderUnavailable as exc:
                    self._failure = str(exc)
                    raise
                self._failure = None
                return self._lookup(kid)
            if self._failure is not None:
                raise ProviderUnavailable(f"{self._failure} (not asked again yet)")
        return []

    def _lookup(self, kid: str | None) -> list[dict[str, Any]]:
        if kid is None:
            return list(self._keyless) or (list(self._keys.values()) if len(self._keys) == 1 else [])
        key = self._keys.get(kid)
        return [key] if key is not None else []

    async def introspect(self, url: str, token: str, client: tuple[str, str]) -> dict[str, Any]:
        """RFC 7662 §2.1: the provider's verdict on ``token`` (a JSON object with ``active``)."""
        return await self.get_json(url, form={"token": token, "token_type_hint": "access_token"}, basic=client)
