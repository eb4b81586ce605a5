"""The identity provider as the gateway sees it: discovery, the signing keys, introspection.

- Discovery (OpenID Connect Discovery 1.0 §4): ``{issuer}/.well-known/openid-configuration``,
  whose ``issuer`` must be the configured one exactly (§4.3) and whose ``jwks_uri`` is
  ``https://`` (or loopback, as the issuer: ``gateway.settings.check_provider_url``). It is read
  again after ``discovery_max_age_seconds`` (an hour by default: a provider that moves its JWKS
  during a migration is followed by every node within the hour, for one small request per node
  and hour), and sooner when its JWKS URL answers 404/410 or a fresh JWKS lacks a token's ``kid``
  (the move is then followed at once). Re-reads happen at most once per ``jwks_refresh_seconds``
  (a flood of bad tokens costs one discovery request per interval); a failed re-read keeps the
  document held (a discovery outage alone stops no sign-in).
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


GONE = frozenset({404, 410})
"""HTTP statuses of a JWKS URL the provider no longer serves (RFC 9110 §15.5.5, §15.5.11)."""


class ProviderUnavailable(Exception):
    """The provider could not be reached or answered something unusable (a temporary failure
    for the client: the token itself was not judged). ``status``: the HTTP status, if any."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


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
        raise ProviderUnavailable(f"{url}: HTTP {exc.code}", status=exc.code) from None
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
        self._metadata_at = 0.0  # monotonic time of the document held
        self._distrusted = False  # its JWKS URL failed: read it again (when allowed)
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

    async def _discover(self) -> dict[str, Any]:
        """Discovery 1.0 §4: the document, checked (§4.3 issuer, a usable ``jwks_uri``)."""
        self._discovery_attempted_at = self._monotonic()
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
        if self._metadata is not None and self._metadata.get("jwks_uri") != jwks_uri:
            log.info("identity provider moved its JWKS: %s -> %s", self._metadata.get("jwks_uri"), jwks_uri)
        self._metadata, self._metadata_at, self._distrusted = meta, self._monotonic(), False
        return meta

    def _due(self) -> bool:
        """The document held is to be read again: older than ``discovery_max_age_seconds``, or
        distrusted (its JWKS URL failed)."""
        return self._distrusted or self._monotonic() - self._metadata_at >= self.discovery_max_age_seconds

    def _may_ask(self) -> bool:
        last = self._discovery_attempted_at
        return last is None or self._monotonic() - last >= self.jwks_refresh_seconds

    async def metadata(self) -> dict[str, Any]:
        """The discovery document. Fetched at first use (a failure raises
        :class:`ProviderUnavailable`); then read again when due (:meth:`_due`), at most once per
        ``jwks_refresh_seconds`` (a flood of bad tokens, each distrusting the JWKS URL, costs the
        provider one discovery request per interval), concurrent callers sharing one request. A
        failed re-read keeps the document held: an outage of discovery alone stops no sign-in."""
        held = self._metadata
        if held is not None and not self._due():
            return held
        async with self._discovery_lock:
            held = self._metadata
            if held is None:
                return await self._discover()
            if not self._due() or not self._may_ask():
                return held
            try:
                return await self._discover()
            except ProviderUnavailable as exc:
                log.warning("identity provider discovery failed, keeping the previous document: %s", exc)
                return held

    async def metadata_if_available(self) -> dict[str, Any] | None:
        """The discovery document, or ``None`` when it cannot be had now. As :meth:`metadata`,
        except that before a first success it is asked at most once per ``jwks_refresh_seconds``,
        so that callers that can do without it (the autoconfiguration answers) never wait on an
        unreachable provider at every request."""
        if self._metadata is not None:
            return await self.metadata()  # never raises once a document is held
        async with self._discovery_lock:
            if self._metadata is not None:
                return self._metadata
            if not self._may_ask():
                return None
            try:
                return await self._discover()
            except ProviderUnavailable as exc:
                log.warning("identity provider discovery unavailable: %s", exc)
                return None

    async def _load_jwks(self, jwks_uri: str) -> None:
        jwks = await self.get_json(jwks_uri)
        keys = jwks.get("keys")
        if not isinstance(keys, list):
            raise ProviderUnavailable(f"{jwks_uri}: no keys")
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

    async def _refresh(self, kid: str | None) -> None:
        """The JWKS fetched again. When the URL held fails (404/410: the provider moved it) or
        the fresh set still lacks ``kid``, the discovery document is distrusted and read again
        (bounded as :meth:`metadata`); a ``jwks_uri`` that changed is then fetched."""
        meta = await self.metadata()
        jwks_uri = str(meta["jwks_uri"])
        gone: ProviderUnavailable | None = None
        try:
            await self._load_jwks(jwks_uri)
        except ProviderUnavailable as exc:
            if exc.status not in GONE:
                raise
            gone = exc
        else:
            if self._lookup(kid):
                return
        self._distrusted = True
        moved = str((await self.metadata())["jwks_uri"])
        if moved != jwks_uri:
            await self._load_jwks(moved)
        elif gone is not None:
            raise gone

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
                    await self._refresh(kid)
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
