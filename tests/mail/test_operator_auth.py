"""Operator authentication over the MX (issue 17, SPEC §4 "sender spoofing").

The trust list's certificate authenticates an operator: a verified client certificate whose
DN is bound to the From: domain's trust entry suffices, with or without DKIM; a DKIM
signature of the author's domain that is present must verify; DKIM is required for entries
with no bound certificate, or when the entry says ``dkim_required``. Null-sender DSNs and
MDNs from a trusted operator (a stock Postfix signs neither) reach the professional.
"""

from __future__ import annotations

import ssl
import uuid
from collections.abc import Iterator

import pytest

from gateway.accounts import ins_index
from gateway.app.cli.main import main
from gateway.testing.live import LiveGateway, live_gateway, make_home
from gateway.testing.smtpclient import mailbox_messages, mx_client, transaction
from gateway.testing.world import World, issue_client_cert, populate


@pytest.fixture(scope="module")
def world_live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, LiveGateway]]:
    home = make_home(tmp_path_factory.mktemp("gw") / "home")
    world = populate(home)
    with live_gateway(home) as live:
        yield world, live


def bounce(world: World, to: str, *, author: str | None = None) -> bytes:
    """A bounce as Postfix writes it: From: MAILER-DAEMON, multipart/report, no DKIM signature."""
    author = author or f"MAILER-DAEMON@{world.peer.domain}"
    boundary = uuid.uuid4().hex
    return (f"From: MAILER-DAEMON (Mail Delivery System) <{author}>\r\nTo: {to}\r\n"
            "Subject: Undelivered Mail Returned to Sender\r\nDate: Mon, 23 Nov 2026 08:00:00 +0100\r\n"
            f"Message-ID: <{uuid.uuid4().hex}@{world.peer.domain}>\r\nAuto-Submitted: auto-replied\r\n"
            "MIME-Version: 1.0\r\n"
            f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"\r\n\r\n'
            f"--{boundary}\r\nContent-Type: text/plain\r\n\r\nThis is the mail system.\r\n"
            f"--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\n"
            f"Reporting-MTA: dns; mx.{world.peer.domain}\r\n\r\n"
            f"Final-Recipient: rfc822; nobody@{world.peer.domain}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
            f"\r\n--{boundary}--\r\n").encode()


def plain(world: World, to: str, *, author: str | None = None) -> bytes:
    author = author or f"dr.b@{world.peer.domain}"
    return (f"From: {author}\r\nTo: {to}\r\nSubject: Compte rendu\r\nDate: Mon, 23 Nov 2026 08:00:00 +0100\r\n"
            f"Message-ID: <{uuid.uuid4().hex}@{world.peer.domain}>\r\n\r\nBonjour.\r\n").encode()


def peer_ctx(world: World, live: LiveGateway) -> ssl.SSLContext:
    return world.peer.client_context(live.ca_file)


def test_null_sender_bounce_from_the_operator_certificate_reaches_the_professional(
        world_live: tuple[World, LiveGateway]) -> None:
    """Issue 17 item 1: was ``550 5.7.20 no passing DKIM signature found`` (pinned DKIM policy)."""
    world, live = world_live
    before = len(mailbox_messages(live, pro=world.pro))
    message = bounce(world, world.pro)
    with mx_client(live, peer_ctx(world, live)) as client:
        t = transaction(client, "", [world.pro], message)
    assert t.mail[0] == 250 and t.rcpts[0][0] == 250
    assert t.data is not None and t.data[0] == 250, t.data
    stored = mailbox_messages(live, pro=world.pro)
    assert len(stored) == before + 1 and stored[-1].endswith(message)


def test_null_sender_bounce_to_a_patient_opens_no_conversation(world_live: tuple[World, LiveGateway]) -> None:
    """A bounce of a patient's reply reaches the patient's inbox, but nobody to answer in it."""
    from sqlalchemy import func, select

    from gateway.store.models import Conversation, Patient

    world, live = world_live
    with live.services.db.read() as s:
        mailbox_id = s.execute(select(Patient.mailbox_id).where(
            ins_index.match(live.services.keys, s, world.patients["open"]))).scalar_one()

    def conversations() -> int:
        with live.services.db.read() as s:
            count = s.execute(select(func.count()).select_from(Conversation)
                              .where(Conversation.mailbox_id == mailbox_id)).scalar_one()
            return int(count)

    before, stored = conversations(), len(mailbox_messages(live, ins=world.patients["open"]))
    with mx_client(live, peer_ctx(world, live)) as client:
        t = transaction(client, "", [world.patient()], bounce(world, world.patient()))
    assert t.data is not None and t.data[0] == 250, t.data
    assert len(mailbox_messages(live, ins=world.patients["open"])) == stored + 1
    assert conversations() == before


def test_null_sender_bounce_from_the_operators_host_name(world_live: tuple[World, LiveGateway]) -> None:
    """Postfix writes From: MAILER-DAEMON@$myorigin, by default its host name under the trusted domain."""
    world, live = world_live
    message = bounce(world, world.pro, author=f"MAILER-DAEMON@mx.{world.peer.domain}")
    with mx_client(live, peer_ctx(world, live)) as client:
        t = transaction(client, "", [world.pro], message)
    assert t.data is not None and t.data[0] == 250, t.data


def test_null_sender_from_a_domain_the_certificate_is_not_bound_to(world_live: tuple[World, LiveGateway]) -> None:
    world, live = world_live
    for author in ("MAILER-DAEMON@internet.example", f"MAILER-DAEMON@x{world.peer.domain}", world.colleague):
        with mx_client(live, peer_ctx(world, live)) as client:
            t = transaction(client, "", [world.pro], bounce(world, world.pro, author=author))
        assert t.data is not None and t.data[0] == 550 and t.data[1].startswith("5.7.1"), (author, t.data)


def test_null_sender_mdn_from_a_professional_of_the_operator(world_live: tuple[World, LiveGateway]) -> None:
    world, live = world_live
    mdn = (f"From: dr.b@{world.peer.domain}\r\nTo: {world.pro}\r\nSubject: Read: Compte rendu\r\n"
           f"Message-ID: <{uuid.uuid4().hex}@{world.peer.domain}>\r\nMIME-Version: 1.0\r\n"
           'Content-Type: multipart/report; report-type=disposition-notification; boundary="b"\r\n\r\n'
           "--b\r\nContent-Type: text/plain\r\n\r\nLu.\r\n--b\r\n"
           "Content-Type: message/disposition-notification\r\n\r\n"
           f"Final-Recipient: rfc822; dr.b@{world.peer.domain}\r\n"
           "Disposition: manual-action/MDN-sent-manually; displayed\r\n\r\n--b--\r\n").encode()
    with mx_client(live, peer_ctx(world, live)) as client:
        t = transaction(client, "", [world.pro], mdn)
    assert t.data is not None and t.data[0] == 250, t.data


def test_unsigned_message_from_the_operator_certificate_is_delivered(world_live: tuple[World, LiveGateway]) -> None:
    world, live = world_live
    before = len(mailbox_messages(live, ins=world.patients["open"]))
    with mx_client(live, peer_ctx(world, live)) as client:
        t = transaction(client, f"dr.b@{world.peer.domain}", [world.patient()], plain(world, world.patient()))
    assert t.data is not None and t.data[0] == 250, t.data
    assert len(mailbox_messages(live, ins=world.patients["open"])) == before + 1


def test_a_failing_signature_is_refused_even_with_the_certificate(world_live: tuple[World, LiveGateway]) -> None:
    world, live = world_live
    for message in (bounce(world, world.pro), plain(world, world.pro)):
        signed = world.peer.sign(message)
        tampered = signed.replace(b"Date: Mon, 23 Nov", b"Date: Tue, 24 Nov")
        sender = "" if b"MAILER-DAEMON" in message else f"dr.b@{world.peer.domain}"
        with mx_client(live, peer_ctx(world, live)) as client:
            good = transaction(client, sender, [world.pro], signed)
            t = transaction(client, sender, [world.pro], tampered)
        assert good.data is not None and good.data[0] == 250, good.data
        assert t.data is not None and t.data[0] == 550 and t.data[1].startswith("5.7.20"), t.data
        assert "does not verify" in t.data[1]


def test_a_signature_with_an_unknown_selector_is_refused_under_a_pinned_key(
        world_live: tuple[World, LiveGateway]) -> None:
    from crypto.dkim import generate_dkim_key, sign_message

    world, live = world_live
    private, _public = generate_dkim_key(2048)
    message = plain(world, world.pro)
    signed = sign_message(message, domain=world.peer.domain, selector="other", private_key_pem=private) + message
    with mx_client(live, peer_ctx(world, live)) as client:
        t = transaction(client, f"dr.b@{world.peer.domain}", [world.pro], signed)
    assert t.data is not None and t.data[0] == 550 and t.data[1].startswith("5.7.20"), t.data


def test_another_domains_signature_is_not_the_authors(world_live: tuple[World, LiveGateway]) -> None:
    """A signature by a third party (a list, a forwarder) says nothing about the author: not checked."""
    from crypto.dkim import generate_dkim_key, sign_message

    world, live = world_live
    private, _public = generate_dkim_key(1024)
    message = plain(world, world.pro)
    signed = sign_message(message, domain="lists.example", selector="s", private_key_pem=private) + message
    with mx_client(live, peer_ctx(world, live)) as client:
        t = transaction(client, f"dr.b@{world.peer.domain}", [world.pro], signed)
    assert t.data is not None and t.data[0] == 250, t.data


def test_another_certificate_is_not_the_operators(world_live: tuple[World, LiveGateway]) -> None:
    """The null sender with a certificate of the test CA that the trust list binds to nobody."""
    world, live = world_live
    cert, key, _ = issue_client_cert(world.home, world.home / "rogue", "mx.rogue.example", "Rogue Operator")
    ctx = ssl.create_default_context(cafile=live.ca_file)
    ctx.load_cert_chain(str(cert), str(key))
    with mx_client(live, ctx) as client:
        t = transaction(client, "", [world.pro], bounce(world, world.pro))
    assert t.mail[0] == 550 and t.mail[1].startswith("5.7.1")


@pytest.fixture(scope="module")
def strict_live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, LiveGateway]]:
    """The peer's entry asks for DKIM explicitly (``--dkim-required``) on top of its certificate."""
    home = make_home(tmp_path_factory.mktemp("gw") / "home")
    world = populate(home)
    assert main(["--home", str(home), "domain", "trust", "set", world.peer.domain, "--dkim-required"]) == 0
    with live_gateway(home) as live:
        yield world, live


def test_dkim_required_entry_refuses_unsigned_mail_with_the_certificate(
        strict_live: tuple[World, LiveGateway]) -> None:
    world, live = strict_live
    with mx_client(live, peer_ctx(world, live)) as client:
        t = transaction(client, f"dr.b@{world.peer.domain}", [world.pro], plain(world, world.pro))
        assert t.data is not None and t.data == (550, "5.7.20 no passing DKIM signature found"), t.data
        t = transaction(client, "", [world.pro], bounce(world, world.pro))
        assert t.data is not None and t.data[0] == 550 and t.data[1].startswith("5.7.20"), t.data
        t = transaction(client, f"dr.b@{world.peer.domain}", [world.pro], world.peer.sign(plain(world, world.pro)))
        assert t.data is not None and t.data[0] == 250, t.data


@pytest.fixture(scope="module")
def no_dn_live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, LiveGateway]]:
    """The peer's entry binds no certificate: its pinned DKIM key is what authenticates it."""
    home = make_home(tmp_path_factory.mktemp("gw") / "home")
    world = populate(home)
    assert main(["--home", str(home), "domain", "trust", "set", world.peer.domain, "--dn", ""]) == 0
    with live_gateway(home) as live:
        yield world, live


def test_without_a_bound_certificate_dkim_is_required(no_dn_live: tuple[World, LiveGateway]) -> None:
    world, live = no_dn_live
    before = len(mailbox_messages(live, ins=world.patients["open"]))
    sender = f"dr.b@{world.peer.domain}"
    with mx_client(live, peer_ctx(world, live)) as client:
        t = transaction(client, sender, [world.patient()], plain(world, world.patient()))
        assert t.data == (550, "5.7.20 no passing DKIM signature found"), t.data
        assert len(mailbox_messages(live, ins=world.patients["open"])) == before
        t = transaction(client, sender, [world.patient()], world.peer.sign(plain(world, world.patient())))
        assert t.data is not None and t.data[0] == 250, t.data
        # No certificate is bound to anyone: nobody may use the null sender.
        t = transaction(client, "", [world.pro], world.peer.sign(bounce(world, world.pro)))
        assert t.mail[0] == 550 and t.mail[1].startswith("5.7.1"), t.mail


def test_bare_lf_is_refused_on_the_mx(world_live: tuple[World, LiveGateway]) -> None:
    """The MX's default ``reject`` (issue 17 item 7): a lone LF refuses the whole message
    (submission's ``normalize`` is tested in test_smtp_attacks)."""
    world, live = world_live
    before = len(mailbox_messages(live, pro=world.pro))
    with mx_client(live, peer_ctx(world, live)) as client:
        assert client.mail(f"dr.b@{world.peer.domain}")[0] == 250
        assert client.rcpt(world.pro)[0] == 250
        client.putcmd("data")
        assert client.getreply()[0] == 354
        client.send(plain(world, world.pro).replace(b"\r\n", b"\n") + b"\r\n.\r\n")  # smtplib.data() would fix it
        code, text = client.getreply()
        assert (code, text[:5]) == (550, b"5.5.2"), text
        assert client.noop()[0] == 250  # in sync
    assert len(mailbox_messages(live, pro=world.pro)) == before
