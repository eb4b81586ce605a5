"""Outbound SMTP client against a real aiosmtpd peer on 127.0.0.1 (STARTTLS, verification on)."""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from dataclasses import replace
from typing import Any, TypedDict

import dns.resolver
import pytest

from gateway.outbound.client import client_tls_context, deliver, enhanced_status
from gateway.outbound.mx import RouteError, destinations
from gateway.outbound.values import Envelope, QueuedRecipient
from gateway.testing.ports import free_port
from tests.outbound.peer import PeerController, PeerHandler, Tls, start_peer

MESSAGE = b"From: dr@clinic.test\r\nTo: a@remote.test\r\nSubject: test\r\nMessage-ID: <m1@clinic.test>\r\n\r\nhello\r\n"
class Timeouts(TypedDict):
    connect_timeout: float
    command_timeout: float


TIMEOUTS: Timeouts = {"connect_timeout": 5.0, "command_timeout": 10.0}


def _env(*addresses: str, **kwargs: Any) -> Envelope:
    return Envelope("dr@clinic.test", tuple(QueuedRecipient(a) for a in addresses), **kwargs)


def _dest(peer: PeerController) -> list[tuple[str, int]]:
    return [("127.0.0.1", int(peer.port))]


async def test_delivers_over_verified_starttls_presenting_our_certificate(
        peer: PeerController, handler: PeerHandler, client_ctx: ssl.SSLContext) -> None:
    report = await deliver(_dest(peer), _env("a@remote.test"), MESSAGE, tls=client_ctx,
                           helo="mail.gateway.test", **TIMEOUTS)
    assert [r.outcome for r in report.results] == ["delivered"]
    assert report.results[0].code == 250 and report.remote_mta == "dns; 127.0.0.1"
    assert "peer-without-dsn" in report.notes
    [got] = handler.received
    assert got.mail_from == "dr@clinic.test" and got.rcpt_tos == ["a@remote.test"]
    assert b"hello" in got.content
    assert got.peercert is not None  # our client certificate reached the peer (operator DN check)
    subject = dict(item for rdn in got.peercert["subject"] for item in rdn)
    assert subject["organizationName"] == "Gateway Test Operator"


async def test_per_recipient_results(peer: PeerController, handler: PeerHandler, client_ctx: ssl.SSLContext) -> None:
    handler.rcpt_replies = {"busy@remote.test": "450 4.2.1 mailbox busy",
                            "gone@remote.test": "550 5.1.1 no such user"}
    report = await deliver(_dest(peer), _env("ok@remote.test", "busy@remote.test", "gone@remote.test"), MESSAGE,
                           tls=client_ctx, helo="mail.gateway.test", **TIMEOUTS)
    got = {r.recipient.address: (r.outcome, r.status) for r in report.results}
    assert got == {"ok@remote.test": ("delivered", "2.0.0"), "busy@remote.test": ("temporary", "4.2.1"),
                   "gone@remote.test": ("permanent", "5.1.1")}
    assert handler.received[0].rcpt_tos == ["ok@remote.test"]


async def test_data_refusal_applies_to_accepted_recipients(
        peer: PeerController, handler: PeerHandler, client_ctx: ssl.SSLContext) -> None:
    handler.data_reply = "554 5.6.0 content refused"
    report = await deliver(_dest(peer), _env("a@remote.test", "b@remote.test"), MESSAGE, tls=client_ctx,
                           helo="mail.gateway.test", **TIMEOUTS)
    assert {(r.outcome, r.status) for r in report.results} == {("permanent", "5.6.0")}


async def test_dsn_parameters_when_the_peer_offers_dsn(
        peer: PeerController, handler: PeerHandler, client_ctx: ssl.SSLContext) -> None:
    handler.offer_dsn = True
    rcpt = QueuedRecipient("a@remote.test", ("SUCCESS", "FAILURE"), "rfc822;a@remote.test")
    env = Envelope("dr@clinic.test", (rcpt,), ret="HDRS", envid="ENV+1")
    report = await deliver(_dest(peer), env, MESSAGE, tls=client_ctx, helo="mail.gateway.test", **TIMEOUTS)
    assert report.results[0].outcome == "delivered" and "peer-without-dsn" not in report.notes
    # RFC 3461 §4: xtext "+" -> "+2B" (aiosmtpd upper-cases what it hands over).
    assert handler.seen_params == ["RET=HDRS", "ENVID=ENV+2B1", "NOTIFY=SUCCESS,FAILURE", "ORCPT=RFC822;A@REMOTE.TEST"]


async def test_no_dsn_parameters_to_a_peer_without_dsn(
        peer: PeerController, handler: PeerHandler, client_ctx: ssl.SSLContext) -> None:
    env = Envelope("dr@clinic.test", (QueuedRecipient("a@remote.test", ("NEVER",)),), ret="FULL", envid="E1")
    report = await deliver(_dest(peer), env, MESSAGE, tls=client_ctx, helo="mail.gateway.test", **TIMEOUTS)
    assert report.results[0].outcome == "delivered" and handler.seen_params == []


async def test_wrong_ca_fails_temporarily_and_sends_nothing(
        peer: PeerController, handler: PeerHandler, tls: Tls) -> None:
    wrong = client_tls_context(ca_file=tls.other_ca_file, cert_file=tls.cert_file, key_file=tls.key_file)
    report = await deliver(_dest(peer), _env("a@remote.test"), MESSAGE, tls=wrong, helo="mail.gateway.test",
                           **TIMEOUTS)
    assert [(r.outcome, r.code) for r in report.results] == [("temporary", 0)]
    assert "TLS" in report.results[0].diagnostic
    assert handler.received == []


async def test_a_peer_certificate_that_does_not_verify_is_named_in_the_report(
        peer: PeerController, tls: Tls, client_ctx: ssl.SSLContext) -> None:
    """Issue 17 item 5: the DSN our sender gets says why, in the words our MX uses for its peers."""
    wrong = client_tls_context(ca_file=tls.other_ca_file, cert_file=tls.cert_file, key_file=tls.key_file)
    report = await deliver(_dest(peer), _env("a@remote.test"), MESSAGE, tls=wrong, helo="mail.gateway.test",
                           **TIMEOUTS)
    assert report.results[0].diagnostic == (
        f"X-Gateway; TLS with 127.0.0.1:{peer.port} failed: peer certificate not trusted: untrusted issuer")
    expired_peer = start_peer(PeerHandler(), replace(tls, peer_cert_file=tls.expired_peer_cert_file,
                                                     peer_key_file=tls.expired_peer_key_file))
    try:
        report = await deliver(_dest(expired_peer), _env("a@remote.test"), MESSAGE, tls=client_ctx,
                               helo="mail.gateway.test", **TIMEOUTS)
    finally:
        expired_peer.stop()
    assert [(r.outcome, r.status) for r in report.results] == [("temporary", "4.4.1")]
    assert report.results[0].diagnostic.endswith("failed: peer certificate not trusted: certificate expired")


async def test_peer_without_starttls_gets_nothing_in_clear(tls: Tls, client_ctx: ssl.SSLContext) -> None:
    handler = PeerHandler()
    plain = start_peer(handler, None)
    try:
        report = await deliver(_dest(plain), _env("a@remote.test"), MESSAGE, tls=client_ctx,
                               helo="mail.gateway.test", **TIMEOUTS)
    finally:
        plain.stop()
    assert report.results[0].outcome == "temporary" and "STARTTLS" in report.results[0].diagnostic
    assert handler.received == []


async def test_connection_refused_is_temporary(client_ctx: ssl.SSLContext) -> None:
    report = await deliver([("127.0.0.1", free_port())], _env("a@remote.test"), MESSAGE, tls=client_ctx,
                           helo="mail.gateway.test", **TIMEOUTS)
    assert [(r.outcome, r.status) for r in report.results] == [("temporary", "4.4.1")]


async def test_next_destination_is_tried_after_a_dead_one(
        peer: PeerController, handler: PeerHandler, client_ctx: ssl.SSLContext) -> None:
    report = await deliver([("127.0.0.1", free_port()), *_dest(peer)], _env("a@remote.test"), MESSAGE,
                           tls=client_ctx, helo="mail.gateway.test", **TIMEOUTS)
    assert report.results[0].outcome == "delivered" and len(handler.received) == 1


UTF8_MESSAGE = ("From: Médecin <médecin@clinic.test>\r\nTo: a@remote.test\r\nSubject: Résultats\r\n"
                "Message-ID: <m2@clinic.test>\r\n\r\nbonjour\r\n").encode()


@pytest.mark.parametrize(("sender", "rcpt", "message"), [
    ("médecin@clinic.test", "a@remote.test", MESSAGE),  # a UTF-8 reverse-path
    ("dr@clinic.test", "réception@remote.test", MESSAGE),  # a UTF-8 recipient
    ("dr@clinic.test", "a@remote.test", UTF8_MESSAGE),  # UTF-8 headers (RFC 6532)
])
async def test_a_message_needing_smtputf8_to_a_peer_without_it_fails_5_6_7(
        peer: PeerController, handler: PeerHandler, client_ctx: ssl.SSLContext, sender: str, rcpt: str,
        message: bytes) -> None:
    """Issue 17: RFC 6531 §3.2, nothing is downgraded; the failure is final and says why (a DSN follows)."""
    env = Envelope(sender, (QueuedRecipient(rcpt),))
    report = await deliver(_dest(peer), env, message, tls=client_ctx, helo="mail.gateway.test", **TIMEOUTS)
    assert [(r.outcome, r.status) for r in report.results] == [("permanent", "5.6.7")]
    assert "SMTPUTF8" in report.results[0].diagnostic and report.remote_mta == "dns; 127.0.0.1"
    assert handler.received == []


async def test_ascii_with_an_8bit_body_needs_no_smtputf8(
        peer: PeerController, handler: PeerHandler, client_ctx: ssl.SSLContext) -> None:
    body = MESSAGE + "résultat en pièce jointe\r\n".encode()
    report = await deliver(_dest(peer), _env("a@remote.test"), body, tls=client_ctx, helo="mail.gateway.test",
                           **TIMEOUTS)
    assert [r.outcome for r in report.results] == ["delivered"]


async def test_smtputf8_to_a_peer_that_offers_it(tls: Tls, client_ctx: ssl.SSLContext) -> None:
    handler = PeerHandler()
    peer = start_peer(handler, tls, smtputf8=True)
    try:
        env = Envelope("médecin@clinic.test", (QueuedRecipient("réception@remote.test"),))
        report = await deliver(_dest(peer), env, UTF8_MESSAGE, tls=client_ctx, helo="mail.gateway.test", **TIMEOUTS)
    finally:
        peer.stop()
    assert [r.outcome for r in report.results] == ["delivered"]
    [got] = handler.received
    assert got.mail_from == "médecin@clinic.test" and got.rcpt_tos == ["réception@remote.test"]
    assert "SMTPUTF8" in got.mail_options and got.content.startswith(UTF8_MESSAGE[:20])


def test_enhanced_status() -> None:
    assert enhanced_status(550, "5.1.1 no such user") == "5.1.1"
    assert enhanced_status(550, "no such user") == "5.0.0"
    assert enhanced_status(451, "5.1.1 inconsistent class") == "4.0.0"  # RFC 3463 §2: classes must agree


class _MX:
    def __init__(self, preference: int, exchange: str) -> None:
        self.preference, self.exchange = preference, exchange


class FakeResolver:
    def __init__(self, answers: dict[tuple[str, str], list[Any] | Exception]) -> None:
        self.answers = answers
        self.asked: list[tuple[str, str]] = []

    async def resolve(self, qname: str, rdtype: str) -> Iterable[Any]:
        self.asked.append((qname, rdtype))
        found = self.answers.get((qname, rdtype), dns.resolver.NoAnswer())  # type: ignore[no-untyped-call]
        if isinstance(found, Exception):
            raise found
        return found


async def test_route_wins_over_dns() -> None:
    resolver = FakeResolver({})
    assert await destinations("remote.test", "127.0.0.1:2526", resolver) == [("127.0.0.1", 2526)]
    assert resolver.asked == []


async def test_mx_records_by_preference() -> None:
    resolver = FakeResolver({("remote.test", "MX"): [_MX(20, "mx2.remote.test."), _MX(10, "mx1.remote.test.")]})
    assert await destinations("remote.test", None, resolver) == [("mx1.remote.test", 25), ("mx2.remote.test", 25)]


async def test_implicit_mx_falls_back_to_the_address_records() -> None:
    resolver = FakeResolver({("remote.test", "A"): ["192.0.2.1"]})
    assert await destinations("remote.test", None, resolver) == [("remote.test", 25)]
    with pytest.raises(RouteError) as none:
        await destinations("nothing.test", None, FakeResolver({}))
    assert none.value.permanent


@pytest.mark.parametrize(("answer", "permanent", "status"), [
    (dns.resolver.NXDOMAIN(), True, "5.1.2"),  # type: ignore[no-untyped-call]
    ([_MX(0, ".")], True, "5.1.10"),  # RFC 7505 null MX
    (dns.resolver.LifetimeTimeout(timeout=1.0, errors=[]), False, "4.4.3"),  # type: ignore[no-untyped-call]
    (dns.resolver.NoNameservers(), False, "4.4.3"),  # type: ignore[no-untyped-call]
])
async def test_dns_problems(answer: Any, permanent: bool, status: str) -> None:
    with pytest.raises(RouteError) as err:
        await destinations("remote.test", None, FakeResolver({("remote.test", "MX"): answer}))
    assert (err.value.permanent, err.value.status) == (permanent, status)


async def test_reserved_names_never_reach_the_dns() -> None:
    from gateway.outbound.mx import ReservedNamesResolver

    inner = FakeResolver({("remote.test", "MX"): [_MX(10, "mx1.remote.test.")]})
    with pytest.raises(RouteError) as err:
        await destinations("perso.example", None, ReservedNamesResolver(inner))
    assert err.value.permanent and err.value.status == "5.1.2"
    with pytest.raises(RouteError):
        await destinations("remote.test", None, ReservedNamesResolver(inner))


async def test_peer_must_present_the_trusted_operator_dn(
        peer: PeerController, handler: PeerHandler, client_ctx: ssl.SSLContext, tls: Tls) -> None:
    from cryptography import x509

    peer_dn = x509.load_pem_x509_certificate(tls.peer_cert_file.read_bytes()).subject.rfc4514_string()
    wrong = await deliver(_dest(peer), _env("a@remote.test"), MESSAGE, tls=client_ctx, helo="mail.gateway.test",
                          operator_dn="CN=mx.other-operator.example,O=Other Operator", **TIMEOUTS)
    assert [(r.outcome, r.code) for r in wrong.results] == [("temporary", 0)]
    assert "trusted operator" in wrong.results[0].diagnostic and handler.received == []
    right = await deliver(_dest(peer), _env("a@remote.test"), MESSAGE, tls=client_ctx, helo="mail.gateway.test",
                          operator_dn=peer_dn, **TIMEOUTS)
    assert [r.outcome for r in right.results] == ["delivered"]
