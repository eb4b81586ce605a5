"""Starting the IMAP listeners inside ``gateway serve`` (SPEC §2: 143 STARTTLS, 993 TLS).

``start_imap``: plain port with STARTTLS; LOGINDISABLED and no AUTH= before TLS unless
``tls.allow_auth_without_tls`` (development only, RFC 3501 §6.2.3). ``start_imaps``:
implicit TLS (RFC 8314 §3.3). Both share one :class:`StoreBackend` per gateway, whose
login throttle is the SMTP listeners' one when they run (failed logins limited alike).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from gateway.auth import Authenticator
from gateway.proxy import client_address, parse_networks
from gateway.store.imap_backend import StoreBackend
from gateway.tls import server_context
from imap.parser import DEFAULT_APPENDLIMIT
from imap.server import ImapServer, ServerConfig
from imap.session import SessionConfig

if TYPE_CHECKING:
    from gateway.server import Gateway, Running

_backends: dict[int, StoreBackend] = {}


def _authenticator(gw: Gateway) -> Authenticator:
    mail = getattr(gw, "mail", None)
    shared = getattr(mail, "authenticator", None)
    if isinstance(shared, Authenticator):
        return shared
    try:
        from gateway.mail.listeners import runtime

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


def _config(gw: Gateway, *, login_requires_tls: bool) -> ServerConfig:
    s = gw.services.settings
    appendlimit = getattr(getattr(s, "smtp", None), "max_message_size", DEFAULT_APPENDLIMIT)
    session = SessionConfig(login_requires_tls=login_requires_tls, appendlimit=int(appendlimit))
    return ServerConfig(session=session, idle_timeout=float(s.imap.idle_timeout_seconds),
                        max_connections=s.imap.max_connections)


async def _start(gw: Gateway, name: str, *, implicit_tls: bool, description: str) -> Running:
    from gateway.server import Running

    settings = gw.services.settings
    host, port = settings.listen.address(name)
    context = server_context(settings, request_client_cert=False)
    requires_tls = implicit_tls or not settings.tls.allow_auth_without_tls
    resolver = None
    if settings.listen.proxy_protocol and not implicit_tls:  # PROXY v1/v2 before the greeting
        networks = parse_networks(settings.listen.proxy_trusted)

        async def resolver(reader: asyncio.StreamReader, peer: str) -> str:
            return await client_address(reader, peer, networks)

    server = ImapServer(
        backend_for(gw), host, port, config=_config(gw, login_requires_tls=requires_tls),
        ssl_context=context if implicit_tls else None, starttls_context=None if implicit_tls else context,
        peer_resolver=resolver,
    )  # fmt: skip
    await server.start()

    async def close() -> None:
        await server.close()
        _backends.pop(id(gw), None)

    return Running(name, f"{host}:{server.port}", description, close)


async def start_imap(gw: Gateway) -> Running:
    return await _start(gw, "imap", implicit_tls=False, description="IMAP with STARTTLS (professionals)")


async def start_imaps(gw: Gateway) -> Running:
    return await _start(gw, "imaps", implicit_tls=True, description="IMAP over TLS (professionals)")
