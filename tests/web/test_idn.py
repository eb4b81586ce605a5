"""Issue 17 item 6: a message from ``médecin@hôpital.test``, an operator trusted under its A-label
``xn--hpital-ixa.test``, with UTF-8 headers (RFC 6532), reaches a patient and is displayed.

The MX's wire (SMTPUTF8, UTF-8 paths) is the SMTP core's and is tested by its transcripts
(``tests/smtp/test_transcript_utf8.py``); here the gateway's part: the trust list, the
routing decisions on the UTF-8 sender and its From:, the delivery, and the web inbox.
"""

from __future__ import annotations

import asyncio
import html
import re

from gateway.app.cli.main import main as cli_main
from gateway.delivery.headers import parse_headers
from gateway.delivery.pipeline import Inbound, Rcpt
from routing.address import parse_address
from routing.decide import decide_after_data, decide_mail_from, decide_rcpt
from routing.facts import ConversationFacts, HeaderFacts, Sender
from tests.web.conftest import Site
from tests.web.kit import activate_http, login_http, new_ins, provision

DN = "CN=mx.xn--hpital-ixa.test,O=Hôpital Test,C=FR"


def test_a_message_from_an_idn_operator_is_delivered_and_displayed(site: Site) -> None:
    account = activate_http(site.live, (ins := new_ins()), provision(site.home, ins))
    assert cli_main(["--home", str(site.home), "domain", "trust", "add", "HÔPITAL.test", "--dn", DN]) == 0
    mail = site.live.gateway.mail
    snap = mail.directory.snapshot(refresh=True)
    entry = snap.trust.lookup("hôpital.test")
    assert entry is not None and entry.domain == "xn--hpital-ixa.test"  # trusted as its A-label

    to = f"{ins}@{site.world.patient_domain}"
    raw = (f"From: Médecin Dupré <médecin@hôpital.test>\r\nTo: {to}\r\nSubject: Résultats d'analyse\r\n"
           "Date: Mon, 23 Nov 2026 09:00:00 +0100\r\nMessage-ID: <idn-1@xn--hpital-ixa.test>\r\n"
           "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n"
           "\r\nBonjour, vos résultats sont normaux.\r\n").encode()
    sender = Sender("trusted_pro", parse_address("médecin@hôpital.test"), "mx", tls=True, tls_peer_dn=DN)
    assert decide_mail_from(sender, snap.trust).accept
    with site.live.services.db.read() as session:
        facts, target = mail.directory.recipient(session, parse_address(to), snap)
    assert target is not None and decide_rcpt(sender, facts, ConversationFacts(), snap.trust).accept
    header = parse_headers(raw)
    assert decide_after_data(sender, HeaderFacts(header.from_addresses), snap.trust).accept  # UTF-8 From: aligned

    inbound = Inbound(mail_from=sender.address, recipients=(Rcpt(parse_address(to), target),),
                      actor="trusted:xn--hpital-ixa.test", protocol="UTF8SMTPS", sender_is_professional=True,
                      peer="192.0.2.10", helo="mx.xn--hpital-ixa.test", headers=header)
    done = asyncio.run_coroutine_threadsafe(mail.pipeline.deliver(inbound, raw), site.live.loop).result(30)
    assert done.local == 1

    with login_http(site.live, account) as c:
        inbox = html.unescape(c.get("/").text)
        assert "Médecin Dupré" in inbox and "Résultats d'analyse" in inbox
        link = re.search(r'href="(/(?:conversations|messages)/\d+)"', c.get("/").text)
        assert link is not None
        thread = html.unescape(c.get(link.group(1)).text)
        message = re.search(r'href="(/messages/\d+)"', thread)
        assert message is not None, thread
        page = html.unescape(c.get(message.group(1)).text)
    assert "Médecin Dupré" in page and "médecin@hôpital.test" in page and "vos résultats sont normaux" in page
