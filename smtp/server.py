"""The thin asyncio shell around :class:`smtp.session.Session` (DESIGN rule 2).

An :class:`asyncio.Protocol` per connection (:class:`SmtpConnection`), so that every byte
received is the shell's own: nothing can wait in a stream buffer behind a STARTTLS (RFC
3207 §4.2, CVE-2011-0411: what came before the handshake is dropped, never read as if it
came over TLS). Public asyncio API only: ``loop.create_server`` or the host's own accept
loop (``loop.connect_accepted_socket`` with :meth:`SmtpServer.connection`), ``loop.start_tls``
for STARTTLS, ``pause_reading``/``resume_reading`` and ``pause_writing``/``resume_writing``
for flow control both ways. aiosmtpd is not needed for any of it.

The shell owns the clock (the session has none): one :class:`Deadline` per connection,
restarted by every command line read in full (RFC 5321 §4.5.3.2: 5 minutes by default),
moved by DATA bytes at the minimum data rate only (Postfix's ``smtpd_min_data_rate``: a
client trickling bytes is cut), checked by one timer that is moved only when it would fire
too late. When it runs out the session answers ``421 4.4.2`` and the connection closes.

Hooks for the host, all optional: ``peer_resolver`` reads what precedes the greeting (a
PROXY header) from an :class:`asyncio.StreamReader` and returns the client address;
``admit`` counts that address in the host's budget (a reason code refuses it, see
:func:`refusal`); ``tls_facts`` describes a TLS session (the host adds the certificate
subject its trust list matches, or, when its context let a certificate that does not verify
complete the handshake, why: ``TlsFacts.peer_problem``); ``on_notice(kind, detail)`` hears of ``connection``,
``timeout``, ``tls_failed`` and ``message_refused`` (detail: the enhanced code) for metrics.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from smtp.backend import Backend, TlsFacts
from smtp.connection import REFUSALS, Deadline, SmtpConnection, default_tls_facts, refusal
from smtp.session import SessionConfig

log = logging.getLogger("smtp.server")

BackendFactory = Callable[[str], Backend]  # the client address -> that connection's backend
PeerResolver = Callable[[asyncio.StreamReader, str], Awaitable[str]]  # raises to refuse
Admit = Callable[[str], "str | None"]
Notice = Callable[[str, str], None]
TlsFactsHook = Callable[[Any], TlsFacts]  # the ssl.SSLObject of a connection -> its facts

@dataclass(frozen=True)
class ServerConfig:
    session: SessionConfig = field(default_factory=SessionConfig)
    timeout: float = 300.0  # RFC 5321 §4.5.3.2.7: the server waits 5 minutes for a command
    min_data_rate: float = 500.0  # bytes per second during DATA
    tls_handshake_timeout: float = 30.0
    read_limit: int = 256 * 1024  # received bytes held before reading pauses
    shutdown_grace: float = 5.0  # seconds a busy session gets to finish when the server closes


class SmtpServer:
    """Sessions on accepted connections; :meth:`start` listens by itself when the host has no
    accept loop of its own."""

    def __init__(self, backend: BackendFactory, config: ServerConfig | None = None, *,
                 starttls_context: ssl.SSLContext | None = None, peer_resolver: PeerResolver | None = None,
                 admit: Admit | None = None, on_notice: Notice | None = None,
                 tls_facts: TlsFactsHook = default_tls_facts) -> None:
        self.backend = backend
        self.config = config or ServerConfig()
        self.starttls_context = starttls_context
        self.peer_resolver = peer_resolver
        self.admit = admit
        self.on_notice = on_notice
        self.tls_facts = tls_facts
        self.connections: set[SmtpConnection] = set()
        self._server: asyncio.Server | None = None

    @property
    def session_config(self) -> SessionConfig:
        return replace(self.config.session, starttls=self.starttls_context is not None)

    def connection(self, *, on_close: Callable[[], None] | None = None, admit: Admit | None = None) -> SmtpConnection:
        """A protocol for one accepted connection (a ``protocol_factory`` result). ``on_close`` runs
        once when it is over; ``admit``, when given, replaces the server's for this connection
        (e.g. the host's ticket for it, which counts the address a PROXY header revealed)."""
        return SmtpConnection(self, on_close, admit or self.admit)

    def notice(self, kind: str, detail: str = "") -> None:
        if self.on_notice is not None:
            self.on_notice(kind, detail)

    async def start(self, host: str, port: int, *, ssl_context: ssl.SSLContext | None = None) -> int:
        """Listen on ``host:port`` (implicit TLS with ``ssl_context``, RFC 8314); the port bound."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self.connection, host, port, ssl=ssl_context,
            ssl_handshake_timeout=self.config.tls_handshake_timeout if ssl_context else None)
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        """Stop listening; idle sessions get ``421 4.3.2`` at once, busy ones a grace period."""
        if self._server is not None:
            self._server.close()
        tasks = {t for t in (c.stop() for c in list(self.connections)) if t is not None}
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=self.config.shutdown_grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None


__all__ = ["REFUSALS", "Deadline", "ServerConfig", "SmtpConnection", "SmtpServer", "default_tls_facts", "refusal"]
