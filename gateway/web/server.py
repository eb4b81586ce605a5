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

import uvicorn
from starlette.applications import Starlette

from gateway.net.budgets import Budgets
from gateway.net.proxy import parse_networks
from gateway.net.running import Running
from gateway.net.tls import server_context
from gateway.settings import Settings
from gateway.web.gated import GatedServer


class _EmbeddedServer(GatedServer):
    """uvicorn inside the gateway's loop: the gateway, not uvicorn, owns SIGINT/SIGTERM;
    connections pass the web listeners' budget first (``gateway.web.gated``; HTTP and HTTPS
    share the ``http`` caps)."""


async def _serve(settings: Settings, budgets: Budgets, app: Starlette, name: str, tls: ssl.SSLContext | None,
                 description: str) -> Running:
    listen = settings.listen
    host, port = listen.address(name)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning",
                            access_log=False, lifespan="off", server_header=False,
                            # Behind load balancers (listen.proxy_protocol), trust X-Forwarded-For
                            # from them only; otherwise never (uvicorn trusts 127.0.0.1 by default).
                            proxy_headers=listen.proxy_protocol,
                            forwarded_allow_ips=[n.split("/")[0] if n.endswith(("/32", "/128")) else n
                                                 for n in listen.proxy_trusted])
    config.load()
    config.ssl = tls  # uvicorn passes it to loop.create_server (our context, not one built from its options)
    deferred = parse_networks(listen.proxy_trusted) if listen.proxy_protocol else ()
    server = _EmbeddedServer(config, budgets.gate("http", deferred=deferred))
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


async def start_http_listener(settings: Settings, budgets: Budgets, app: Starlette) -> Running:
    """``listen.http``: the process's one web app (built by the composition root), behind the
    ``http`` budget."""
    return await _serve(settings, budgets, app, "http", None, "patient web inbox, admin pages")


async def start_https_listener(settings: Settings, budgets: Budgets, app: Starlette) -> Running:
    """``listen.https`` when set: the same app over TLS (else a no-op entry)."""
    if not settings.listen.https:
        async def nothing() -> None:
            return None

        return Running("https", "-", "off (set listen.https to serve the web inbox over TLS)", nothing)
    # No client certificate request: browsers would show a certificate picker.
    tls = server_context(settings, request_client_cert=False)
    return await _serve(settings, budgets, app, "https", tls,
                        "patient web inbox, admin pages over TLS (Secure cookies)")
