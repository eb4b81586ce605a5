"""Client autoconfiguration over HTTP (issue 19): Thunderbird's autoconfig and Microsoft's POX
Autodiscover, answered for hosted domains only (anything else: 404).

The documents are built by :mod:`gateway.operations.client_config`. These routes sit on the
process's web app ahead of the patient inbox, so both ``listen.http`` and ``listen.https``
answer them, with the shared security headers (``gateway.web.security``); clients reach them
as ``autoconfig.DOMAIN`` / ``autodiscover.DOMAIN`` (CNAMEs to the gateway, ``gateway domain
hosted dns``). docs/deploy.md, "Client autoconfiguration".

With ``[auth.oidc]`` the Thunderbird document carries the ``oAuth2`` element, its endpoints from
the issuer's discovery document as the process's token verifier caches it
(:meth:`gateway.accounts.oidc_provider.ProviderClient.metadata_if_available`); while that document
cannot be had the element is left out and the answer is not cached (``no-store``), so that a
client asks again rather than keep an answer without it.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route, request_response

from gateway.delivery.runtime import MailRuntime
from gateway.operations import client_config
from gateway.store.services import Services
from gateway.web.forms import allow_body
from gateway.web.security import SecurityHeaders

XML = "application/xml; charset=utf-8"
CSP = "default-src 'none'; frame-ancestors 'none'"  # documents for mail clients, nothing to run
CACHED = {"Cache-Control": "public, max-age=300"}  # the same for every client of a domain
UNCACHED = {"Cache-Control": "no-store"}


def _text(status: int, text: str) -> Response:
    return PlainTextResponse(text + "\n", status_code=status)


def routes(svc: Services, mail: MailRuntime | None = None) -> list[BaseRoute]:
    """The autoconfiguration routes; ``mail``: the process's runtime, whose token verifier's
    provider client gives the issuer's discovery document (``None``: no ``oAuth2`` element)."""
    provider = mail.tokens.verifier.provider if mail is not None and mail.tokens is not None else None

    def known(domain: str | None) -> str | None:
        if domain is None:
            return None
        with svc.db.read() as session:
            return client_config.hosted(session, domain)

    async def thunderbird(request: Request) -> Response:
        asked = client_config.domain_of_request(request.query_params.get("emailaddress"),
                                                request.headers.get("host"))
        domain = known(asked)
        if domain is None:
            return _text(404, "no configuration for this domain")
        discovery = await provider.metadata_if_available() if provider is not None else None
        setup = client_config.setup_for(svc.settings, domain, discovery)
        complete = not setup.oauth2 or setup.oauth2_endpoints is not None
        document = client_config.thunderbird_xml(setup)
        return Response(document, media_type=XML, headers=CACHED if complete else UNCACHED)

    async def autodiscover(request: Request) -> Response:
        allow_body(request, client_config.MAX_REQUEST_BYTES)  # beyond: 413 before reading (BodyLimit)
        try:
            address = client_config.parse_autodiscover(await request.body())
        except client_config.RequestError as exc:
            return _text(400, f"bad Autodiscover request: {exc}")
        domain = known(address.domain)
        if domain is None:
            return _text(404, "no configuration for this domain")
        setup = client_config.setup_for(svc.settings, domain)
        return Response(client_config.autodiscover_xml(setup, address), media_type=XML)  # no-store

    hsts = svc.settings.web.hsts_max_age_seconds
    get = SecurityHeaders(request_response(thunderbird), csp=CSP, hsts_max_age=hsts)
    post = SecurityHeaders(request_response(autodiscover), csp=CSP, hsts_max_age=hsts)
    return [
        Route("/.well-known/autoconfig/mail/config-v1.1.xml", get, methods=["GET"]),
        Route("/mail/config-v1.1.xml", get, methods=["GET"]),
        Route("/autodiscover/autodiscover.xml", post, methods=["POST"]),
        Route("/Autodiscover/Autodiscover.xml", post, methods=["POST"]),
    ]
