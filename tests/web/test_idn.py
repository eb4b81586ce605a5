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
import uuid

from gateway.app.cli.main import main as cli_main
from gateway.testing.smtpclient import mailbox_messages, mx_client, transaction
from gateway.testing.world import issue_client_cert
from tests.web.conftest import Site
from tests.web.kit import activate_http, login_http, new_ins, provision

HELO = "mx.xn--hpital-ixa.test"


def idn_operator(site: Site) -> ssl.SSLContext:
    """Trust ``HÔPITAL.test`` bound to a certificate of the test CA; the operator's TLS client context."""
    folder = site.home / "idn-peer"
    if not (folder / f"{HELO}.pem").exists():
        _cert, _key, dn = issue_client_cert(site.home, folder, HELO, "Hôpital Test")
        assert cli_main(["--home", str(site.home), "domain", "trust", "add", "HÔPITAL.test", "--dn", dn]) == 0
        snap = site.live.gateway.mail.directory.snapshot(refresh=True)
        entry = snap.trust.lookup("hôpital.test")
        assert entry is not None and entry.domain == "xn--hpital-ixa.test"  # trusted as its A-label
    ctx = ssl.create_default_context(cafile=site.live.ca_file)
    ctx.load_cert_chain(str(folder / f"{HELO}.pem"), str(folder / f"{HELO}.key"))
    return ctx


def utf8_message(to: str, subject: str) -> bytes:
    return (f"From: Médecin Dupré <médecin@hôpital.test>\r\nTo: {to}\r\nSubject: {subject}\r\n"
            f"Date: Mon, 23 Nov 2026 09:00:00 +0100\r\nMessage-ID: <{uuid.uuid4().hex}@xn--hpital-ixa.test>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n"
            "\r\nBonjour, vos résultats sont normaux.\r\n").encode()


def test_a_message_from_an_idn_operator_over_the_mx_is_delivered_and_displayed(site: Site) -> None:
    ctx = idn_operator(site)
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


def test_a_utf8_address_without_smtputf8_gets_553_5_6_7(site: Site) -> None:
    """RFC 6531 §3.5, over the wire: no transaction starts, none is stored, the session stays usable."""
    ctx = idn_operator(site)
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

