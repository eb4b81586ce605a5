"""Client autoconfiguration over HTTP (issue 19): Thunderbird's autoconfig and Microsoft's POX
Autodiscover, answered for hosted domains only (anything else: 404).

The documents are built by :mod:`gateway.operations.client_config`. These routes sit on the
process's web app ahead of the patient inbox, so both ``listen.http`` and ``listen.https``
answer them; clients reach them as ``autoconfig.DOMAIN`` / ``autodiscover.DOMAIN`` (CNAMEs to
the gateway, ``gateway domain hosted dns``). docs/deploy.md, "Client autoconfiguration".
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from gateway.operations import client_config
from gateway.store.services import Services
from gateway.web.forms import allow_body, declared_too_large

XML = "application/xml; charset=utf-8"
HEADERS = {"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"}


def _text(status: int, text: str) -> Response:
    return PlainTextResponse(text + "\n", status_code=status, headers={"X-Content-Type-Options": "nosniff"})


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
        return Response(document, media_type=XML, headers=HEADERS)

    async def autodiscover(request: Request) -> Response:
        limit = client_config.MAX_REQUEST_BYTES
        if declared_too_large(request, limit):
            return _text(413, f"request larger than {limit} bytes")
        allow_body(request, limit)
        try:
            address = client_config.parse_autodiscover(await request.body())
        except client_config.RequestError as exc:
            return _text(400, f"bad Autodiscover request: {exc}")
        domain = known(address.domain)
        if domain is None:
            return _text(404, "no configuration for this domain")
        setup = client_config.setup_for(svc.settings, domain)
        return Response(client_config.autodiscover_xml(setup, address), media_type=XML,
                        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})

    return [
        Route("/.well-known/autoconfig/mail/config-v1.1.xml", thunderbird, methods=["GET"]),
        Route("/mail/config-v1.1.xml", thunderbird, methods=["GET"]),
        Route("/autodiscover/autodiscover.xml", autodiscover, methods=["POST"]),
        Route("/Autodiscover/Autodiscover.xml", autodiscover, methods=["POST"]),
    ]
