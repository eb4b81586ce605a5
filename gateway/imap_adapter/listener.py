"""Starting the IMAP listeners inside ``gateway serve`` (SPEC §2: 143 STARTTLS, 993 TLS).

``start_imap``: plain port with STARTTLS; LOGINDISABLED and no AUTH= before TLS unless
``tls.allow_auth_without_tls`` (development only, RFC 3501 §6.2.3). ``start_imaps``:
implicit TLS (RFC 8314 §3.3). Both share one :class:`StoreBackend` per gateway, whose
login throttle is the SMTP listeners' one when they run (failed logins limited alike).
"""

from __future__ import annotations

import asyncio
import socket
from typing import TYPE_CHECKING

from gateway import metrics
from gateway.accounts.auth import Authenticator
from gateway.imap_adapter.backend import StoreBackend
from gateway.net.accept import Acceptor, Ticket, listening_sockets
from gateway.net.bodies import Hold
from gateway.net.budgets import budgets
from gateway.net.proxy import Network, client_address, parse_networks
from gateway.net.tls import server_context
from imap.parser import DEFAULT_APPENDLIMIT
from imap.server import ImapServer, ServerConfig, refusal
from imap.session import SessionConfig

if TYPE_CHECKING:
    from gateway.app.server import Gateway, Running

_backends: dict[int, StoreBackend] = {}


def _authenticator(gw: Gateway) -> Authenticator:
    mail = getattr(gw, "mail", None)
    shared = getattr(mail, "authenticator", None)
    if isinstance(shared, Authenticator):
        return shared
    try:
        from gateway.delivery.smtp_listener import runtime

        return runtime(gw).authenticator
    except (ImportError, AttributeError):
        return Authenticator.configured(gw.services.db, gw.services.settings.auth)


def backend_for(gw: Gateway) -> StoreBackend:
    """The one IMAP backend of this gateway (shared by both listeners)."""
    key = id(gw)
    if key not in _backends:
        svc = gw.services
        _backends[key] = StoreBackend(svc.db, svc.keys, svc.hub, authenticator=_authenticator(gw))
    return _backends[key]


class _Counted:
    """A session's :class:`~gateway.net.bodies.Hold`, counting each refusal in the metrics."""

    def __init__(self, listener: str, hold: Hold) -> None:
        self.listener = listener
        self.hold = hold

    async def ensure(self, size: int) -> bool:
        if await self.hold.ensure(size):
            return True
        metrics.limit_refused(self.listener, "memory")
        return False

    def release(self) -> None:
        self.hold.release()


def _config(gw: Gateway, name: str, *, login_requires_tls: bool) -> ServerConfig:
    s = gw.services.settings
    appendlimit = getattr(getattr(s, "smtp", None), "max_message_size", DEFAULT_APPENDLIMIT)
    session = SessionConfig(login_requires_tls=login_requires_tls, appendlimit=int(appendlimit))
    return ServerConfig(session=session, idle_timeout=float(s.imap.idle_timeout_seconds),
                        login_timeout=float(s.imap.login_timeout_seconds),
                        max_connections=budgets(gw).plan.caps[name])


async def _start(gw: Gateway, name: str, *, implicit_tls: bool, description: str) -> Running:
    """The listener's sockets, each accepted behind its :class:`~gateway.net.accept.Gate`: beyond
    it ``* BYE [UNAVAILABLE]`` at once (implicit TLS: closed before the handshake)."""
    from gateway.app.server import Running

    settings = gw.services.settings
    host, port = settings.listen.address(name)
    context = server_context(settings, request_client_cert=False)
    requires_tls = implicit_tls or not settings.tls.allow_auth_without_tls
    resolver = None
    networks: tuple[Network, ...] = ()
    if settings.listen.proxy_protocol and not implicit_tls:  # PROXY v1/v2 before the greeting
        networks = parse_networks(settings.listen.proxy_trusted)

        async def resolver(reader: asyncio.StreamReader, peer: str) -> str:
            return await client_address(reader, peer, networks)

    config = _config(gw, name, login_requires_tls=requires_tls)
    server = ImapServer(
        backend_for(gw), host, port, config=config,
        ssl_context=context if implicit_tls else None, starttls_context=None if implicit_tls else context,
        peer_resolver=resolver, on_limit=lambda reason: metrics.limit_refused(name, reason),
        bodies=lambda peer: _Counted(name, budgets(gw).bodies.hold(peer)),
    )  # fmt: skip
    gate = budgets(gw).gate(name, deferred=networks)
    loop = asyncio.get_running_loop()

    async def connect(conn: socket.socket, ticket: Ticket) -> None:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await server.handle(reader, writer, admit=ticket.assign if networks else None)
            finally:
                ticket.release()

        def protocol() -> asyncio.StreamReaderProtocol:
            return asyncio.StreamReaderProtocol(asyncio.StreamReader(limit=config.read_size), serve)

        await loop.connect_accepted_socket(protocol, conn, ssl=context if implicit_tls else None,
                                           ssl_handshake_timeout=config.tls_handshake_timeout if implicit_tls else None)

    def refused(reason: str) -> bytes | None:
        return None if implicit_tls else refusal(reason)

    sockets = listening_sockets(host, port)
    acceptors = [Acceptor(sock, gate, connect, refused) for sock in sockets]
    for acceptor in acceptors:
        acceptor.start()

    async def close() -> None:
        for acceptor in acceptors:
            acceptor.close()
        await server.close()
        for acceptor in acceptors:
            await acceptor.wait_closed()
        _backends.pop(id(gw), None)

    return Running(name, f"{host}:{sockets[0].getsockname()[1]}", description, close)


async def start_imap(gw: Gateway) -> Running:
    return await _start(gw, "imap", implicit_tls=False, description="IMAP with STARTTLS (professionals)")


async def start_imaps(gw: Gateway) -> Running:
    return await _start(gw, "imaps", implicit_tls=True, description="IMAP over TLS (professionals)")
