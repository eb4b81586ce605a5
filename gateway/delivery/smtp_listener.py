"""The three SMTP listeners (MX, submission, submissions) of ``gateway serve`` and of each SMTP
process: the settings, the process's :class:`~gateway.delivery.runtime.MailRuntime` and its
:class:`~gateway.net.budgets.Budgets` are handed in by the composition root (``gateway.app``).

The wire is :mod:`smtp.server`'s (one :class:`smtp.session.Session` per connection, every reply
from :mod:`smtp.replies`); the gateway gives it, through the shell's hooks:

- the accept loop (:class:`~gateway.net.accept.Acceptor` behind the listener's
  :class:`~gateway.net.accept.Gate`: beyond its caps ``421 4.7.0`` at once, implicit TLS
  closed before the handshake), each connection's ticket released when it ends (``on_close``);
- the PROXY header (``peer_resolver``: :func:`gateway.net.proxy.client_address`), then the
  ticket counted against the address it revealed (``admit``);
- TLS: implicit on ``submissions`` (RFC 8314), STARTTLS on the others, and the client
  certificate's subject (``tls_facts``: :func:`gateway.net.tls.peer_dn`) that the trust list binds;
  on the MX a client certificate that does not verify no longer ends the handshake
  (:func:`gateway.net.peer_certs.tolerate_unverified_clients`): the facts carry why
  (``TlsFacts.peer_problem``) and ``MAIL FROM`` is refused with ``550 5.7.1`` naming it;
- the backend (:mod:`gateway.delivery.smtp_backend`), the timeouts and minimum data rate of
  ``[smtp]``, and the counters (``on_notice``).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from dataclasses import replace
from typing import Any

from gateway import metrics
from gateway.delivery.runtime import MailRuntime
from gateway.delivery.smtp_backend import backend_factory, metrics_label
from gateway.net.accept import Acceptor, Ticket, listening_sockets
from gateway.net.budgets import Budgets
from gateway.net.peer_certs import client_problem, tolerate_unverified_clients
from gateway.net.proxy import Network, ProxyRefused, client_address, parse_networks
from gateway.net.running import Running
from gateway.net.tls import client_auth_context, peer_dn, server_context
from gateway.settings import Settings
from saslwire.bearer import TOKEN_MECHANISMS
from smtp.backend import TlsFacts
from smtp.server import ServerConfig, SmtpServer, default_tls_facts, refusal
from smtp.session import SessionConfig

log = logging.getLogger("gateway.smtp")

_DESCRIPTIONS = {
    "mx": "SMTP from trusted operators (STARTTLS)",
    "submission": "SMTP submission for professionals (STARTTLS + AUTH)",
    "submissions": "SMTP submission over implicit TLS",
}

TLS_HANDSHAKE_S = 30.0


def tls_facts(ssl_object: Any) -> TlsFacts:
    """The shell's TLS facts with the verified client certificate's subject (RFC 4514), which
    the trust list binds to an operator (``routing.decide``)."""
    return replace(default_tls_facts(ssl_object), peer_dn=peer_dn(ssl_object))


def tolerant_tls_facts(ssl_object: Any) -> TlsFacts:
    """:func:`tls_facts` for a context that completes the handshake whatever the client certificate:
    one that did not verify gives no subject, no certificate, and the reason (``peer_problem``)."""
    problem = client_problem(ssl_object) if ssl_object is not None else None
    if problem is None:
        return tls_facts(ssl_object)
    return replace(default_tls_facts(ssl_object), peer_certificate=None, peer_problem=problem)


def _notices(name: str) -> Any:
    label = metrics_label(name)

    def on_notice(kind: str, detail: str) -> None:
        if kind == "connection":
            metrics.connection(label)
        elif kind == "timeout":
            metrics.limit_refused(label, "timeout")
        elif kind == "tls_failed":
            log.info("TLS handshake failed", extra={"listener": label})
        elif kind == "message_refused":  # the DATA reader's refusal: smuggling, NUL, size, memory
            log.info("data refused", extra={"reason": f"smtp.{detail}", "listener": label})
            metrics.refused(label, "data", f"smtp.{detail}")

    return on_notice


def smtp_server(settings: Settings, rt: MailRuntime, budgets: Budgets, name: str,
                context: ssl.SSLContext | None, proxies: tuple[Network, ...] | None) -> SmtpServer:
    """The shell for listener ``name``, its sessions over the gateway's backend."""
    implicit_tls = name == "submissions"
    session = SessionConfig(hostname=settings.server.hostname, listener=name,  # type: ignore[arg-type]
                            limits=rt.limits, bare_line_endings=settings.smtp.bare_line_endings(name),
                            mechanisms=(("PLAIN", "LOGIN") if settings.auth.password_login else ())
                            + (TOKEN_MECHANISMS if rt.tokens is not None else ())
                            + (("EXTERNAL",) if name != "mx" and settings.tls.client_ca_file is not None else ()))
    config = ServerConfig(session=session, timeout=float(settings.smtp.timeout_seconds),
                          min_data_rate=float(settings.smtp.min_data_rate), tls_handshake_timeout=TLS_HANDSHAKE_S)
    resolver = None
    if proxies is not None:
        async def resolver(reader: asyncio.StreamReader, peer: str) -> str:
            try:
                return await client_address(reader, peer, proxies)
            except ProxyRefused as exc:
                log.warning("connection refused", extra={"reason": str(exc), "listener": metrics_label(name)})
                raise

    authenticator = rt.authenticator if name != "mx" else None  # never AUTH on the MX (SPEC §6)
    backend = backend_factory(name, rt.directory, rt.pipeline, authenticator, budgets.bodies,
                              tokens=rt.tokens if authenticator is not None else None)
    # The MX completes the handshake with a client certificate that does not verify, to refuse
    # MAIL FROM with the reason (issue 17 item 5); elsewhere such a handshake ends as before.
    tolerant = name == "mx" and context is not None and tolerate_unverified_clients(context)
    if name == "mx" and context is not None and not tolerant:
        log.warning("TLS: on this Python a client certificate that does not verify ends the MX handshake",
                    extra={"listener": "mx"})
    return SmtpServer(backend, config, starttls_context=None if implicit_tls else context,
                      peer_resolver=resolver, on_notice=_notices(name),
                      tls_facts=tolerant_tls_facts if tolerant else tls_facts)


async def start_smtp_listener(settings: Settings, rt: MailRuntime, budgets: Budgets, name: str,
                              sock: socket.socket | None = None) -> Running:
    """Listen for ``name`` (mx, submission, submissions) on its configured address, or accept on
    ``sock``: a listening socket inherited from the serving process (``gateway.delivery.smtp_processes``).
    Connections pass the listener's :class:`~gateway.net.accept.Gate` first: beyond it they get
    ``421 4.7.0`` at once (implicit TLS: closed before the handshake)."""
    implicit_tls = name == "submissions"
    # submission with [tls] client_ca_file: client certificates of application mailboxes (EXTERNAL)
    context = (client_auth_context(settings) if name != "mx" else None) or server_context(settings)
    # PROXY headers on the STARTTLS listeners; the implicit-TLS ports start with the TLS handshake.
    proxied = settings.listen.proxy_protocol and not implicit_tls
    proxies = parse_networks(settings.listen.proxy_trusted) if proxied else None
    server = smtp_server(settings, rt, budgets, name, context, proxies)
    gate = budgets.gate(name, deferred=proxies or ())
    loop = asyncio.get_running_loop()
    ssl_context = context if implicit_tls else None

    async def connect(conn: socket.socket, ticket: Ticket) -> None:
        def protocol() -> asyncio.Protocol:
            # the client behind a proxy is counted against its own address once the header is read
            return server.connection(on_close=ticket.release, admit=ticket.assign if proxies else None)

        await loop.connect_accepted_socket(protocol, conn, ssl=ssl_context,
                                           ssl_handshake_timeout=TLS_HANDSHAKE_S if ssl_context else None)

    def refused(reason: str) -> bytes | None:
        return None if implicit_tls else refusal(reason)

    host, port = settings.listen.address(name)
    sockets = [sock] if sock is not None else listening_sockets(host, port)
    acceptors = [Acceptor(s, gate, connect, refused) for s in sockets]
    for acceptor in acceptors:
        acceptor.start()
    port = sockets[0].getsockname()[1]  # the port bound when the configured one is 0

    async def close() -> None:
        for acceptor in acceptors:
            acceptor.close()
        await server.close()  # idle sessions get 421 4.3.2, busy ones a grace period
        for acceptor in acceptors:
            await acceptor.wait_closed()

    return Running(name, f"{host}:{port}", _DESCRIPTIONS[name], close, tuple(s.fileno() for s in sockets))
