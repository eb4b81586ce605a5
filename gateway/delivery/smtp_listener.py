"""Starting the three SMTP listeners (MX, submission, submissions) inside ``gateway serve``."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from gateway.accounts.auth import Authenticator
from gateway.delivery.directory import Directory
from gateway.delivery.internal import InternalMail
from gateway.delivery.pipeline import Pipeline
from gateway.delivery.smtp_policy import SmtpFlow
from gateway.delivery.smtpd import CONNECTION_REFUSALS, GatewaySMTP
from gateway.net.accept import Acceptor, Ticket, listening_sockets
from gateway.net.budgets import budgets
from gateway.net.proxy import parse_networks
from gateway.net.tls import server_context
from smtp.policy import Limits
from smtp.replies import format_reply

if TYPE_CHECKING:
    from gateway.app.context import Services
    from gateway.app.server import Gateway, Running


@dataclass
class MailRuntime:
    """What every SMTP session (and the web inbox) shares in one process."""

    directory: Directory
    pipeline: Pipeline
    authenticator: Authenticator
    limits: Limits
    internal: InternalMail

    @classmethod
    def build(cls, svc: Services) -> MailRuntime:
        s = svc.settings
        limits = Limits(max_message_size=s.smtp.max_message_size, max_recipients=s.smtp.max_recipients,
                        allow_plaintext_auth_on_loopback=s.tls.allow_auth_without_tls)
        directory = Directory(svc.db, s.domains.patient_domain)
        pipeline = Pipeline(svc.db, svc.keys, svc.hub, hostname=s.server.hostname,
                            queue_max_age=timedelta(hours=s.queue.max_age_hours),
                            notification_interval=timedelta(minutes=s.queue.notification_interval_minutes))
        return cls(directory, pipeline, Authenticator.configured(svc.db, s.auth), limits,
                   InternalMail(directory, pipeline))


def runtime(gw: Gateway) -> MailRuntime:
    if gw.mail is None:
        gw.mail = MailRuntime.build(gw.services)
    return gw.mail


_DESCRIPTIONS = {
    "mx": "SMTP from trusted operators (STARTTLS)",
    "submission": "SMTP submission for professionals (STARTTLS + AUTH)",
    "submissions": "SMTP submission over implicit TLS",
}


TLS_HANDSHAKE_S = 30.0
_REFUSAL_LINES = {reason: (format_reply(reply) + "\r\n").encode() for reason, reply in CONNECTION_REFUSALS.items()}


async def start_listener(gw: Gateway, name: str, sock: socket.socket | None = None) -> Running:
    """Listen for ``name`` (mx, submission, submissions) on its configured address, or accept on
    ``sock``: a listening socket inherited from the serving process (``gateway.delivery.smtp_processes``).
    Connections pass the listener's :class:`~gateway.net.accept.Gate` first: beyond it they get
    ``421 4.7.0`` at once (implicit TLS: closed before the handshake)."""
    from gateway.app.server import Running

    rt = runtime(gw)
    settings = gw.services.settings
    implicit_tls = name == "submissions"
    context = server_context(settings)
    flow = SmtpFlow(rt.directory, rt.pipeline, rt.limits)
    listener = "mx" if name == "mx" else "submission"
    # PROXY headers on the STARTTLS listeners; the implicit-TLS ports start with the TLS handshake.
    proxied = settings.listen.proxy_protocol and not implicit_tls
    proxies = parse_networks(settings.listen.proxy_trusted) if proxied else None
    gate = budgets(gw).gate(name, deferred=proxies or ())
    bodies = budgets(gw).bodies
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


async def start_mx(gw: Gateway) -> Running:
    return await start_listener(gw, "mx")


async def start_submission(gw: Gateway) -> Running:
    return await start_listener(gw, "submission")


async def start_submissions(gw: Gateway) -> Running:
    return await start_listener(gw, "submissions")


async def start_outbound(gw: Gateway) -> Running:
    """The outbound queue worker; bounces and DSNs to local users go through the pipeline."""
    from gateway.outbound.worker import outbound_listener

    return await outbound_listener(runtime(gw).internal.submit_callback)(gw)
