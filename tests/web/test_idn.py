"""Issue 17 item 6: a message from ``médecin@hôpital.test``, an operator trusted under its A-label
``xn--hpital-ixa.test``, with UTF-8 headers (RFC 6532), reaches a patient over the MX wire and is
displayed in the patient's web inbox.

The operator connects as a real MTA would: TLS with a client certificate of the test CA whose DN
the trust entry binds, ``MAIL FROM:<médecin@hôpital.test> SMTPUTF8``, raw UTF-8 From:/Subject:.
The SMTP core's own transcripts are in ``tests/smtp/test_transcript_utf8.py``.
"""

from __future__ import annotations

import html
import re
import ssl
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from gateway.app.cli.main import main as cli_main
from gateway.testing.ports import free_port
from gateway.testing.sink import Sink, running_sink
from gateway.testing.smtpclient import mailbox_messages, mx_client, transaction
from gateway.testing.world import issue_client_cert
from tests.web.conftest import Site
from tests.web.kit import activate_http, csrf_of, login_http, new_ins, provision

HELO = "mx.xn--hpital-ixa.test"


@dataclass
class Operator:
    ctx: ssl.SSLContext  # its MTA's TLS client context, for our MX
    sink: Sink  # its MX (SMTPUTF8 offered), where our queue delivers


@pytest.fixture(scope="module")
def operator(site: Site) -> Iterator[Operator]:
    """``HÔPITAL.test`` trusted, bound to a certificate of the test CA (the same serves its MX on
    loopback, where the trust entry routes our outbound mail)."""
    cert, key, dn = issue_client_cert(site.home, site.home / "idn-peer", HELO, "Hôpital Test")
    port = free_port()
    assert cli_main(["--home", str(site.home), "domain", "trust", "add", "HÔPITAL.test", "--dn", dn,
                     "--route", f"127.0.0.1:{port}"]) == 0
    snap = site.live.gateway.mail.directory.snapshot(refresh=True)
    entry = snap.trust.lookup("hôpital.test")
    assert entry is not None and entry.domain == "xn--hpital-ixa.test"  # trusted as its A-label
    ctx = ssl.create_default_context(cafile=site.live.ca_file)
    ctx.load_cert_chain(str(cert), str(key))
    with running_sink(port, str(cert), str(key), smtputf8=True) as sink:
        yield Operator(ctx, sink)


def utf8_message(to: str, subject: str, extra: str = "") -> bytes:
    return (f"From: Médecin Dupré <médecin@hôpital.test>\r\nTo: {to}\r\nSubject: {subject}\r\n{extra}"
            f"Date: Mon, 23 Nov 2026 09:00:00 +0100\r\nMessage-ID: <{uuid.uuid4().hex}@xn--hpital-ixa.test>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n"
            "\r\nBonjour, vos résultats sont normaux.\r\n").encode()


def test_a_message_from_an_idn_operator_over_the_mx_is_delivered_and_displayed(site: Site, operator: Operator) -> None:
    ctx = operator.ctx
    account = activate_http(site.live, (ins := new_ins()), provision(site.home, ins))
    to = f"{ins}@{site.world.patient_domain}"
    raw = utf8_message(to, "Résultats d'analyse")
    with mx_client(site.live, ctx, helo=HELO) as client:
        assert client.has_extn("smtputf8")
        t = transaction(client, "médecin@hôpital.test", [to], raw, mail_options=["SMTPUTF8", "BODY=8BITMIME"])
    assert t.mail[0] == 250, t.mail
    assert t.rcpts == [(250, t.rcpts[0][1])], t.rcpts
    assert t.data is not None and t.data[0] == 250, t.data

    (stored,) = mailbox_messages(site.live, ins=ins)
    assert stored.endswith(raw)  # raw UTF-8 headers kept as received (RFC 6532)
    assert b"with UTF8SMTPS" in stored  # RFC 6531 §4.3 Received: type

    with login_http(site.live, account) as c:
        inbox = html.unescape(c.get("/").text)
        assert "Médecin Dupré" in inbox and "Résultats d'analyse" in inbox
        link = re.search(r'href="(/(?:conversations|messages)/\d+)"', inbox)
        assert link is not None
        thread = html.unescape(c.get(link.group(1)).text)
        message = re.search(r'href="(/messages/\d+)"', thread)
        assert message is not None, thread
        page = html.unescape(c.get(message.group(1)).text)
    assert "Médecin Dupré" in page and "médecin@hôpital.test" in page and "vos résultats sont normaux" in page


def test_a_utf8_address_without_smtputf8_gets_553_5_6_7(site: Site, operator: Operator) -> None:
    """RFC 6531 §3.5, over the wire: no transaction starts, none is stored, the session stays usable."""
    ctx = operator.ctx
    ins = site.world.patients["open"]
    to = site.world.patient()
    before = len(mailbox_messages(site.live, ins=ins))
    with mx_client(site.live, ctx, helo=HELO) as client:
        client.send("MAIL FROM:<médecin@hôpital.test>\r\n".encode())  # smtplib would refuse to encode it
        code, text = client.getreply()
        assert (code, text[:5]) == (553, b"5.6.7"), text
        assert client.mail("dr@xn--hpital-ixa.test")[0] == 250
        client.send(f"RCPT TO:<réception@{site.world.patient_domain}>\r\n".encode())
        code, text = client.getreply()
        assert (code, text[:5]) == (553, b"5.6.7"), text
        assert client.rcpt(to)[0] == 250  # the transaction goes on for the ASCII recipient
        assert client.rset()[0] == 250
        assert client.noop()[0] == 250
    assert len(mailbox_messages(site.live, ins=ins)) == before



def test_the_patients_read_receipt_and_reply_go_back_with_the_utf8_address_raw(site: Site, operator: Operator) -> None:
    """Issue 17 (RFC 6532): the MDN and the web reply to ``médecin@hôpital.test`` write its address in
    raw UTF-8 (once an RFC 2047 encoded-word, which no MTA can deliver) and leave with SMTPUTF8."""
    account = activate_http(site.live, (ins := new_ins()), provision(site.home, ins))
    to = f"{ins}@{site.world.patient_domain}"
    dnt = "Disposition-Notification-To: Médecin Dupré <médecin@hôpital.test>\r\n"
    raw = utf8_message(to, "Compte rendu", extra=dnt)
    with mx_client(site.live, operator.ctx, helo=HELO) as client:
        t = transaction(client, "médecin@hôpital.test", [to], raw, mail_options=["SMTPUTF8", "BODY=8BITMIME"])
    assert t.data is not None and t.data[0] == 250, t.data
    with login_http(site.live, account) as c:
        conversation = re.search(r'href="(/conversations/\d+)"', c.get("/").text)
        assert conversation is not None
        page = c.get(conversation.group(1))
        message = re.search(r'href="(/messages/\d+)"', page.text)
        assert message is not None
        assert "Compte rendu" in c.get(message.group(1)).text  # displayed: the read receipt is due
        r = c.post(f"{conversation.group(1)}/repondre", data={"csrf": csrf_of(page.text), "text": "Merci docteur"})
        assert "réponse a été envoyée" in r.text

    def sent() -> list[bytes]:
        with operator.sink.lock:
            return [m for m in operator.sink.messages if f"From: {ins}@".encode() in m]

    for _ in range(600):  # bounded wait: 60 s for the queue worker
        if len(sent()) >= 2:
            break
        time.sleep(0.1)
    got = sent()
    assert len(got) == 2, got
    mdn = next(m for m in got if b"disposition-notification" in m)
    reply = next(m for m in got if b"Merci docteur" in m)
    for sent_message, address in ((mdn, "médecin@hôpital.test"), (reply, "médecin@xn--hpital-ixa.test")):
        head = sent_message.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
        assert f"To: {address}".encode() in head, head
        assert not any(line.startswith(b"To:") and b"=?" in line for line in head)
