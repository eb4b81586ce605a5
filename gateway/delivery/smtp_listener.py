"""The three SMTP listeners (MX, submission, submissions) of ``gateway serve`` and of each SMTP
process: the settings, the process's :class:`~gateway.delivery.runtime.MailRuntime` and its
:class:`~gateway.net.budgets.Budgets` are handed in by the composition root (``gateway.app``)."""

from __future__ import annotations

import asyncio
import socket

from gateway.delivery.runtime import MailRuntime
from gateway.delivery.smtp_policy import SmtpFlow
from gateway.delivery.smtpd import CONNECTION_REFUSALS, GatewaySMTP
from gateway.net.accept import Acceptor, Ticket, listening_sockets
from gateway.net.budgets import Budgets
from gateway.net.proxy import parse_networks
from gateway.net.running import Running
from gateway.net.tls import server_context
from gateway.settings import Settings
from smtp.replies import format_reply

_DESCRIPTIONS = {
    "mx": "SMTP from trusted operators (STARTTLS)",
    "submission": "SMTP submission for professionals (STARTTLS + AUTH)",
    "submissions": "SMTP submission over implicit TLS",
}


TLS_HANDSHAKE_S = 30.0
_REFUSAL_LINES = {reason: (format_reply(reply) + "\r\n").encode() for reason, reply in CONNECTION_REFUSALS.items()}


async def start_smtp_listener(settings: Settings, rt: MailRuntime, budgets: Budgets, name: str,
                              sock: socket.socket | None = None) -> Running:
    """Listen for ``name`` (mx, submission, submissions) on its configured address, or accept on
    ``sock``: a listening socket inherited from the serving process (``gateway.delivery.smtp_processes``).
    Connections pass the listener's :class:`~gateway.net.accept.Gate` first: beyond it they get
    ``421 4.7.0`` at once (implicit TLS: closed before the handshake)."""
    implicit_tls = name == "submissions"
    context = server_context(settings)
    flow = SmtpFlow(rt.directory, rt.pipeline, rt.limits)
    listener = "mx" if name == "mx" else "submission"
    # PROXY headers on the STARTTLS listeners; the implicit-TLS ports start with the TLS handshake.
    proxied = settings.listen.proxy_protocol and not implicit_tls
    proxies = parse_networks(settings.listen.proxy_trusted) if proxied else None
    gate = budgets.gate(name, deferred=proxies or ())
    bodies = budgets.bodies
    loop = asyncio.get_running_loop()

    def session(ticket: Ticket) -> GatewaySMTP:
        return GatewaySMTP(flow=flow, listener=listener, hostname=settings.server.hostname,
                           limits=rt.limits, tls_context=context, implicit_tls=implicit_tls,
                           authenticator=rt.authenticator, ticket=ticket, bodies=bodies,
                           timeout=settings.smtp.timeout_seconds, min_data_rate=settings.smtp.min_data_rate,
                           proxy_networks=proxies)

    ssl = context if implicit_tls else None

    async def connect(conn: socket.socket, ticket: Ticket) -> None:
        await loop.connect_accepted_socket(lambda: session(ticket), conn, ssl=ssl,
                                           ssl_handshake_timeout=TLS_HANDSHAKE_S if ssl else None)

    def refusal(reason: str) -> bytes | None:
        return None if implicit_tls else _REFUSAL_LINES[reason]

    host, port = settings.listen.address(name)
    sockets = [sock] if sock is not None else listening_sockets(host, port)
    acceptors = [Acceptor(s, gate, connect, refusal) for s in sockets]
    for acceptor in acceptors:
        acceptor.start()
    port = sockets[0].getsockname()[1]  # the port bound when the configured one is 0

    async def close() -> None:
        for acceptor in acceptors:
            acceptor.close()
        for acceptor in acceptors:
            await acceptor.wait_closed()

    return Running(name, f"{host}:{port}", _DESCRIPTIONS[name], close, tuple(s.fileno() for s in sockets))
