"""Starting the IMAP listeners inside ``gateway serve`` (SPEC §2: 143 STARTTLS, 993 TLS).

``imap``: plain port with STARTTLS; LOGINDISABLED and no AUTH= before TLS unless
``tls.allow_auth_without_tls`` (development only, RFC 3501 §6.2.3). ``imaps``: implicit TLS
(RFC 8314 §3.3). Both share the process's one :class:`StoreBackend`, whose login throttle is
the SMTP listeners' one (failed logins limited alike): the composition root builds it once
(``gateway.app.gateway.Gateway.imap_backend``) and hands it in with the budgets.
"""

from __future__ import annotations

import asyncio
import socket

from gateway import metrics
from gateway.imap_adapter.backend import ACCESS_CHECK_S, StoreBackend
from gateway.net.accept import Acceptor, Ticket, listening_sockets
from gateway.net.bodies import Hold
from gateway.net.budgets import Budgets
from gateway.net.proxy import Network, client_address, parse_networks
from gateway.net.running import Running
from gateway.net.tls import client_auth_context, server_context
from gateway.settings import Settings
from imap.proto.receiver import DEFAULT_APPENDLIMIT, LiteralMode
from imap.server import ImapServer, ServerConfig, refusal
from imap.session import SessionConfig
from saslwire.bearer import TOKEN_MECHANISMS


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


def _config(s: Settings, budgets: Budgets, name: str, *, login_requires_tls: bool) -> ServerConfig:
    appendlimit = getattr(getattr(s, "smtp", None), "max_message_size", DEFAULT_APPENDLIMIT)
    session = SessionConfig(login_requires_tls=login_requires_tls, appendlimit=int(appendlimit),
                            password_login=s.auth.password_login,
                            token_mechanisms=TOKEN_MECHANISMS if s.auth.oidc is not None else (),
                            token_grace=float(s.auth.oidc.session_grace_seconds) if s.auth.oidc else 3600.0,
                            literal_mode=LiteralMode(s.imap.literals),
                            external=s.tls.client_ca_file is not None,
                            access_check=ACCESS_CHECK_S)  # an IDLE session of a suspended account
    return ServerConfig(session=session, idle_timeout=float(s.imap.idle_timeout_seconds),
                        login_timeout=float(s.imap.login_timeout_seconds),
                        max_connections=budgets.plan.caps[name])


async def start_imap_listener(settings: Settings, backend: StoreBackend, budgets: Budgets, name: str, *,
                              implicit_tls: bool, description: str) -> Running:
    """Listen for ``name`` (imap, imaps): the listener's sockets, each accepted behind its
    :class:`~gateway.net.accept.Gate`: beyond it ``* BYE [UNAVAILABLE]`` at once (implicit TLS:
    closed before the handshake)."""
    host, port = settings.listen.address(name)
    # [tls] client_ca_file: ask for a client certificate (application mailboxes, EXTERNAL)
    context = client_auth_context(settings) or server_context(settings, request_client_cert=False)
    requires_tls = implicit_tls or not settings.tls.allow_auth_without_tls
    resolver = None
    networks: tuple[Network, ...] = ()
    if settings.listen.proxy_protocol and not implicit_tls:  # PROXY v1/v2 before the greeting
        networks = parse_networks(settings.listen.proxy_trusted)

        async def resolver(reader: asyncio.StreamReader, peer: str) -> str:
            return await client_address(reader, peer, networks)

    config = _config(settings, budgets, name, login_requires_tls=requires_tls)
    server = ImapServer(
        backend, host, port, config=config,
        ssl_context=context if implicit_tls else None, starttls_context=None if implicit_tls else context,
        peer_resolver=resolver, on_limit=lambda reason: metrics.limit_refused(name, reason),
        bodies=lambda peer: _Counted(name, budgets.bodies.hold(peer)),
    )  # fmt: skip
    gate = budgets.gate(name, deferred=networks)
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

    return Running(name, f"{host}:{sockets[0].getsockname()[1]}", description, close)
