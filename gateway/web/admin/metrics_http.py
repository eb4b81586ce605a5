"""``/metrics`` (Prometheus text format): on the main HTTP listener behind an admin API
token, and optionally on a separate listener (``[metrics] listen``) without one."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from gateway import metrics
from gateway.accounts import admins
from gateway.net.running import Running
from gateway.settings import split_hostport
from gateway.store.gauges import exposition
from gateway.store.services import Services


async def _exposition(svc: Services) -> Response:
    body = await asyncio.to_thread(exposition, svc.db)
    return Response(body, media_type=metrics.CONTENT_TYPE)


def _token_ok(svc: Services, header: str) -> bool:
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > 200 or not token.isascii():
        return False
    with svc.db.write() as session:
        return admins.token_admin(session, token, now=datetime.now(UTC)) is not None


def metrics_route(svc: Services) -> Route:
    async def endpoint(request: Request) -> Response:
        if not svc.settings.metrics.enabled:
            return PlainTextResponse("Not Found", status_code=404)
        if not await asyncio.to_thread(_token_ok, svc, request.headers.get("authorization", "")):
            return JSONResponse({"error": "unauthorized", "message": "admin API token required"}, status_code=401,
                                headers={"WWW-Authenticate": 'Bearer realm="metrics"', "Cache-Control": "no-store"})
        return await _exposition(svc)

    return Route("/metrics", endpoint, methods=["GET"])


class _Embedded(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # the gateway owns the signals
        yield


async def start_metrics_listener(svc: Services) -> Running:
    """The separate metrics listener when ``metrics.listen`` is set (else a no-op entry)."""
    listen = svc.settings.metrics.listen
    if not listen or not svc.settings.metrics.enabled:
        async def nothing() -> None:
            return None

        return Running("metrics", "(http)/metrics", "Prometheus metrics, admin token required", nothing)

    async def endpoint(_: Request) -> Response:
        return await _exposition(svc)

    host, port = split_hostport(listen)
    app = Starlette(routes=[Route("/metrics", endpoint, methods=["GET"])])
    server = _Embedded(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                                      lifespan="off", server_header=False))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise OSError("metrics listener stopped during start-up")
        await asyncio.sleep(0.02)

    async def close() -> None:
        server.should_exit = True
        await task

    return Running("metrics", listen, "Prometheus metrics (no token: keep it private)", close)
