"""Transcripts: SMTPUTF8 (RFC 6531): advertised, UTF-8 paths with the parameter, 553 5.6.7 without."""

from __future__ import annotations

from smtp import replies
from smtp.session import SessionConfig
from smtp.testing import HOST, TLS, Client, Memory, transcript

MX = SessionConfig(hostname=HOST)


def test_smtputf8_is_advertised_on_mx_and_submission() -> None:
    for config in (MX, SessionConfig(hostname=HOST, listener="submission", starttls=True)):
        with Client(None, config, tls=TLS) as c:
            c.greeting()
            assert "250-SMTPUTF8" in c.line("EHLO client.test") or "250 SMTPUTF8" in c.line("EHLO client.test")


def test_utf8_sender_and_recipient_with_smtputf8() -> None:
    memory = Memory()
    transcript("""
        S: 220 mx.test ESMTP service ready
        C: HELO mta.xn--hpital-ixa.test
        S: 250 mx.test hello
        C: MAIL FROM:<médecin@hôpital.test> SMTPUTF8 BODY=8BITMIME
        S: 250 2.1.0 sender OK
        C: RCPT TO:<réception@patients.test>
        S: 250 2.1.5 recipient OK
        C: DATA
        S: 354 end data with <CR><LF>.<CR><LF>
        C: From: Médecin <médecin@hôpital.test>
        C: Subject: Résultats
        C:
        C: Bonjour
        C: .
        S: 250 2.0.0 message accepted for delivery (id M1)
    """, memory, MX).close()
    (done,) = memory.deliveries
    assert done.envelope.sender == "médecin@hôpital.test" and done.envelope.params.smtputf8
    assert done.envelope.recipients[0].address == "réception@patients.test"
    assert done.message.startswith("From: Médecin <médecin@hôpital.test>\r\n".encode())


def test_utf8_paths_without_smtputf8_get_553_5_6_7() -> None:
    """RFC 6531 §3.5: a non-ASCII address in a transaction without SMTPUTF8."""
    memory = Memory()
    transcript("""
        S: 220 mx.test ESMTP service ready
        C: HELO mta.example.test
        S: 250 mx.test hello
        C: MAIL FROM:<médecin@hôpital.test>
        S: 553 5.6.7 non-ASCII address without SMTPUTF8
        C: MAIL FROM:<dr@hopital.test>
        S: 250 2.1.0 sender OK
        C: RCPT TO:<réception@patients.test>
        S: 553 5.6.7 non-ASCII address without SMTPUTF8
        C: RCPT TO:<r@patients.test>
        S: 250 2.1.5 recipient OK
    """, memory, MX).close()
    assert replies.UTF8_ADDRESS_WITHOUT_SMTPUTF8.code == 553
