"""The HTTP listener: Starlette on uvicorn, in the gateway's event loop."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import uvicorn

from gateway.budgets import budgets
from gateway.proxy import parse_networks
from gateway.web.app import create_app
from gateway.web.gated import GatedServer

if TYPE_CHECKING:
    from gateway.server import Gateway, Running


class _EmbeddedServer(GatedServer):
    """uvicorn inside the gateway's loop: the gateway, not uvicorn, owns SIGINT/SIGTERM;
    connections pass the HTTP listener's budget first (``gateway.web.gated``)."""


async def start_http(gw: Gateway) -> Running:
    from gateway.server import Running

    listen = gw.services.settings.listen
    host, port = listen.address("http")
    config = uvicorn.Config(create_app(gw), host=host, port=port, log_level="warning",
                            access_log=False, lifespan="off", server_header=False,
                            # Behind load balancers (listen.proxy_protocol), trust X-Forwarded-For
                            # from them only; otherwise never (uvicorn trusts 127.0.0.1 by default).
                            proxy_headers=listen.proxy_protocol,
                            forwarded_allow_ips=[n.split("/")[0] if n.endswith(("/32", "/128")) else n
                                                 for n in listen.proxy_trusted])
    deferred = parse_networks(listen.proxy_trusted) if listen.proxy_protocol else ()
    server = _EmbeddedServer(config, budgets(gw).gate("http", deferred=deferred))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # re-raise the bind error
            raise OSError("HTTP listener stopped during start-up")
        await asyncio.sleep(0.02)

    async def close() -> None:
        server.should_exit = True
        await task

    return Running("http", f"{host}:{port}", "patient web inbox, admin pages", close)
