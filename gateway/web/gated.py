"""uvicorn behind the HTTP listener's connection budget (issue 15).

uvicorn accepts with ``loop.create_server`` (up to ``backlog`` = 2048 connections per
wake-up, each holding its descriptor for a few loop iterations even when refused) and caps
nothing per client address. :class:`GatedServer` replaces only its ``startup``: the
listening sockets are accepted by :class:`gateway.net.accept.Acceptor` behind the listener's
:class:`~gateway.net.accept.Gate`; an admitted socket becomes uvicorn's own HTTP protocol
(through ``loop.connect_accepted_socket``, TLS included when ``config.ssl`` is set), whose
end releases the connection's place. Beyond the caps: ``503`` at once, then close.
Everything else (``main_loop``, ``shutdown``, the protocols) is uvicorn's.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from typing import Any

import uvicorn

from gateway.net.accept import Acceptor, Gate, Ticket, listening_sockets

_BODY = "Service momentanément indisponible : trop de connexions. Réessayez dans quelques instants.\n".encode()
REFUSAL = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
           b"Retry-After: 10\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(_BODY)) + _BODY
TLS_HANDSHAKE_S = 30.0


def _released_on_close(base: type[Any]) -> type[Any]:
    """uvicorn's protocol class, releasing its connection's :class:`Ticket` when it ends."""

    class Gated(base):  # type: ignore[misc]
        ticket: Ticket | None = None

        def connection_lost(self, exc: Exception | None) -> None:
            try:
                super().connection_lost(exc)
            finally:
                if self.ticket is not None:
                    self.ticket.release()

    return Gated


class GatedServer(uvicorn.Server):
    """An embedded uvicorn (the gateway owns SIGINT/SIGTERM) accepting behind ``gate``;
    without a gate, uvicorn's own start-up."""

    def __init__(self, config: uvicorn.Config, gate: Gate | None = None) -> None:
        super().__init__(config)
        self.gate = gate

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        if self.gate is None or sockets is not None:
            await super().startup(sockets)
            return
        gate = self.gate
        config = self.config
        protocol_class = _released_on_close(config.http_protocol_class)
        loop = asyncio.get_running_loop()

        async def connect(conn: socket.socket, ticket: Ticket) -> None:
            def protocol() -> asyncio.Protocol:
                made = protocol_class(config=config, server_state=self.server_state, app_state=self.lifespan.state)
                made.ticket = ticket
                return made  # type: ignore[no-any-return]

            await loop.connect_accepted_socket(protocol, conn, ssl=config.ssl,
                                               ssl_handshake_timeout=TLS_HANDSHAKE_S if config.ssl else None)

        def refusal(_: str) -> bytes | None:
            return None if config.ssl else REFUSAL

        await self.lifespan.startup()
        acceptors = [Acceptor(sock, gate, connect, refusal)
                     for sock in listening_sockets(config.host, config.port, backlog=min(config.backlog, 1024))]
        for acceptor in acceptors:
            acceptor.start()
        self.servers = acceptors  # type: ignore[assignment]  # close() and wait_closed(), as uvicorn uses them
        self.started = True
