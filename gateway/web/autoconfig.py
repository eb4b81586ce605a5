"""Client autoconfiguration over HTTP (issue 19): Thunderbird's autoconfig and Microsoft's POX
Autodiscover, answered for hosted domains only (anything else: 404).

The documents are built by :mod:`gateway.operations.client_config`. These routes sit on the
process's web app ahead of the patient inbox, so both ``listen.http`` and ``listen.https``
answer them, with the shared security headers (``gateway.web.security``); clients reach them
as ``autoconfig.DOMAIN`` / ``autodiscover.DOMAIN`` (CNAMEs to the gateway, ``gateway domain
hosted dns``). docs/deploy.md, "Client autoconfiguration".
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route, request_response

from gateway.operations import client_config
from gateway.store.services import Services
from gateway.web.forms import allow_body
from gateway.web.security import SecurityHeaders

XML = "application/xml; charset=utf-8"
CSP = "default-src 'none'; frame-ancestors 'none'"  # documents for mail clients, nothing to run
CACHED = {"Cache-Control": "public, max-age=300"}  # the same for every client of a domain


def _text(status: int, text: str) -> Response:
    return PlainTextResponse(text + "\n", status_code=status)


def routes(svc: Services) -> list[BaseRoute]:
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
        document = client_config.thunderbird_xml(client_config.setup_for(svc.settings, domain))
        return Response(document, media_type=XML, headers=CACHED)

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
