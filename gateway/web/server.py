"""The HTTP listeners: Starlette on uvicorn, in the gateway's event loop.

``listen.http`` always; ``listen.https`` when set, the same app over TLS with the ``[tls]``
server certificate and the gateway's own TLS context (``gateway.net.tls``: TLS 1.2 minimum,
AEAD suites), so that one node needs no reverse proxy for the web inbox. Requests there have
the ``https`` scheme: cookies get ``Secure`` (and the ``__Host-``/``__Secure-`` names), HSTS
is sent.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import TYPE_CHECKING

import uvicorn
from starlette.applications import Starlette

from gateway.net.budgets import budgets
from gateway.net.proxy import parse_networks
from gateway.web.app import create_app
from gateway.web.gated import GatedServer

if TYPE_CHECKING:
    from gateway.app.server import Gateway, Running


class _EmbeddedServer(GatedServer):
    """uvicorn inside the gateway's loop: the gateway, not uvicorn, owns SIGINT/SIGTERM;
    connections pass the web listeners' budget first (``gateway.web.gated``; HTTP and HTTPS
    share the ``http`` caps)."""


def _app(gw: Gateway) -> Starlette:
    """One web app per gateway, shared by the HTTP and HTTPS listeners."""
    if not isinstance(gw.web_app, Starlette):
        gw.web_app = create_app(gw)
    return gw.web_app


async def _serve(gw: Gateway, name: str, tls: ssl.SSLContext | None, description: str) -> Running:
    from gateway.app.server import Running

    listen = gw.services.settings.listen
    host, port = listen.address(name)
    config = uvicorn.Config(_app(gw), host=host, port=port, log_level="warning",
                            access_log=False, lifespan="off", server_header=False,
                            # Behind load balancers (listen.proxy_protocol), trust X-Forwarded-For
                            # from them only; otherwise never (uvicorn trusts 127.0.0.1 by default).
                            proxy_headers=listen.proxy_protocol,
                            forwarded_allow_ips=[n.split("/")[0] if n.endswith(("/32", "/128")) else n
                                                 for n in listen.proxy_trusted])
    config.load()
    config.ssl = tls  # uvicorn passes it to loop.create_server (our context, not one built from its options)
    deferred = parse_networks(listen.proxy_trusted) if listen.proxy_protocol else ()
    server = _EmbeddedServer(config, budgets(gw).gate("http", deferred=deferred))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # re-raise the bind error
            raise OSError(f"{name.upper()} listener stopped during start-up")
        await asyncio.sleep(0.02)

    async def close() -> None:
        server.should_exit = True
        await task

    return Running(name, f"{host}:{port}", description, close)


async def start_http(gw: Gateway) -> Running:
    return await _serve(gw, "http", None, "patient web inbox, admin pages")


async def start_https(gw: Gateway) -> Running:
    from gateway.app.server import Running
    from gateway.net.tls import server_context

    settings = gw.services.settings
    if not settings.listen.https:
        async def nothing() -> None:
            return None

        return Running("https", "-", "off (set listen.https to serve the web inbox over TLS)", nothing)
    # No client certificate request: browsers would show a certificate picker.
    tls = server_context(settings, request_client_cert=False)
    return await _serve(gw, "https", tls, "patient web inbox, admin pages over TLS (Secure cookies)")
