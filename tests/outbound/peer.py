"""A trusted peer for outbound tests: dev CA material and an aiosmtpd server on 127.0.0.1.

The server offers STARTTLS with a certificate from the dev CA, records what it received
(envelope, ESMTP parameters, our client certificate) and answers per recipient as told.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from cryptography.hazmat.primitives import serialization

from gateway.app.devtls import make_ca, make_leaf
from gateway.testing.ports import free_port

PEM = serialization.Encoding.PEM


@dataclass(frozen=True)
class Tls:
    ca_file: Path
    cert_file: Path  # ours (client certificate)
    key_file: Path
    peer_cert_file: Path
    peer_key_file: Path
    other_ca_file: Path  # a CA that signed nothing here
    expired_peer_cert_file: Path  # the peer's certificate from the CA, expired
    expired_peer_key_file: Path


def _key(key: Any) -> bytes:
    data: bytes = key.private_bytes(PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return data


def make_tls(folder: Path) -> Tls:
    ca_key, ca = make_ca("outbound test CA")
    our_key, ours = make_leaf(ca_key, ca, "mail.gateway.test", organization="Gateway Test Operator")
    peer_key, peer = make_leaf(ca_key, ca, "mx.remote.test", organization="Remote Operator")
    _other_key, other = make_ca("unrelated CA")
    past = datetime.now(UTC) - timedelta(days=400)
    old_key, old = make_leaf(ca_key, ca, "mx.remote.test", organization="Remote Operator", issued=past, days=30)
    files = {
        "ca.pem": ca.public_bytes(PEM), "ours.pem": ours.public_bytes(PEM), "ours.key": _key(our_key),
        "peer.pem": peer.public_bytes(PEM), "peer.key": _key(peer_key), "other.pem": other.public_bytes(PEM),
        "expired.pem": old.public_bytes(PEM), "expired.key": _key(old_key),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return Tls(folder / "ca.pem", folder / "ours.pem", folder / "ours.key", folder / "peer.pem",
               folder / "peer.key", folder / "other.pem", folder / "expired.pem", folder / "expired.key")


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    mail_options: list[str]
    rcpt_options: list[str]
    peercert: dict[str, Any] | None


@dataclass
class PeerHandler:
    """Replies: ``rcpt_replies[address]`` (e.g. "450 4.2.1 busy"); ``offer_dsn`` adds DSN to EHLO."""

    rcpt_replies: dict[str, str] = field(default_factory=dict)
    data_reply: str | None = None
    offer_dsn: bool = False
    received: list[Received] = field(default_factory=list)
    seen_params: list[str] = field(default_factory=list)

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope, hostname: str,
                          responses: list[str]) -> list[str]:
        session.host_name = hostname
        if self.offer_dsn:
            responses.insert(len(responses) - 1, "250-DSN")
        return responses

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          options: list[str]) -> str:
        reply = self.rcpt_replies.get(address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.data_reply is not None:
            return self.data_reply
        tls = session.ssl or {}
        self.received.append(Received(str(envelope.mail_from), list(envelope.rcpt_tos),
                                      bytes(envelope.original_content or b""), list(envelope.mail_options),
                                      list(envelope.rcpt_options), tls.get("peercert")))
        return "250 2.0.0 queued"


class _DsnSMTP(SMTP):
    """aiosmtpd refuses unknown MAIL/RCPT parameters: record the RFC 3461 ones and drop them."""

    def _getparams(self, params: Sequence[str]) -> dict[str, Any] | None:
        handler: PeerHandler = self.event_handler
        kept = []
        for p in params:
            if p.split("=", 1)[0] in ("RET", "ENVID", "NOTIFY", "ORCPT"):
                handler.seen_params.append(p)
            else:
                kept.append(p)
        result: dict[str, Any] | None = super()._getparams(kept)
        return result


class PeerController(Controller):
    def factory(self) -> SMTP:
        return _DsnSMTP(self.handler, **self.SMTP_kwargs)


def server_context(tls: Tls) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(tls.ca_file))
    ctx.load_cert_chain(str(tls.peer_cert_file), str(tls.peer_key_file))
    ctx.verify_mode = ssl.CERT_OPTIONAL  # records our client certificate when presented
    return ctx


def start_peer(handler: PeerHandler, tls: Tls | None, *, smtputf8: bool = False) -> PeerController:
    """``tls=None``: a peer without STARTTLS; ``smtputf8``: one that offers SMTPUTF8 (RFC 6531)."""
    port = free_port()
    kwargs: dict[str, Any] = {"hostname": "127.0.0.1", "port": port, "server_hostname": "mx.remote.test",
                              "enable_SMTPUTF8": smtputf8}
    if tls is not None:
        kwargs.update(tls_context=server_context(tls), require_starttls=True)
    controller = PeerController(handler, **kwargs)
    controller.start()
    return controller


def add_signing_domain(session: Any, keys: Any, name: str, selector: str = "s2026") -> str:
    """A hosted domain with a DKIM key, as ``gateway domain hosted add`` makes it; returns the TXT."""
    from crypto.dkim import dns_txt_record, generate_dkim_key
    from gateway.accounts.pros import add_hosted_domain

    private_pem, public_b64 = generate_dkim_key()
    domain = add_hosted_domain(session, name)
    system = keys.system_key(session)
    domain.dkim_selector = selector
    domain.dkim_data_key_id = system.data_key_id
    domain.dkim_key_sealed = system.seal("dkim", name, private_pem)
    domain.dkim_public_key = public_b64.decode("ascii")
    session.flush()
    return dns_txt_record(public_b64)
