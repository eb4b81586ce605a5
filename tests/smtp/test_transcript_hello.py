"""Transcripts: greeting, EHLO/HELO and what EHLO advertises (RFC 5321 §4.1.1.1, §4.3.1)."""

from __future__ import annotations

from smtp import replies
from smtp.policy import Limits
from smtp.session import SessionConfig
from smtp.testing import HOST, TLS, Client, Memory, transcript

SUBMISSION = SessionConfig(hostname=HOST, listener="submission", starttls=True)
MX = SessionConfig(hostname=HOST, listener="mx", starttls=True)


def test_mx_greeting_and_ehlo_keywords() -> None:
    transcript("""
        S: 220 mx.test ESMTP service ready
        C: EHLO client.peer.test
        S: 250-mx.test hello
        S: 250-PIPELINING
        S: 250-SIZE 26214400
        S: 250-8BITMIME
        S: 250-ENHANCEDSTATUSCODES
        S: 250-DSN
        S: 250-SMTPUTF8
        S: 250 STARTTLS
    """, config=MX)


def test_mx_over_tls_offers_neither_starttls_nor_auth() -> None:
    transcript("""
        S: 220 mx.test ESMTP service ready
        C: EHLO client.peer.test
        S: 250-mx.test hello
        S: 250-PIPELINING
        S: 250-SIZE 26214400
        S: 250-8BITMIME
        S: 250-ENHANCEDSTATUSCODES
        S: 250-DSN
        S: 250 SMTPUTF8
    """, config=MX, tls=TLS)


def test_submission_offers_auth_only_over_tls() -> None:
    plain = transcript("""
        S: 220 mx.test ESMTP service ready
        C: EHLO client.test
        S: 250-mx.test hello
        S: 250-PIPELINING
        S: 250-SIZE 26214400
        S: 250-8BITMIME
        S: 250-ENHANCEDSTATUSCODES
        S: 250-DSN
        S: 250-SMTPUTF8
        S: 250 STARTTLS
    """, config=SUBMISSION)
    plain.close()
    transcript("""
        S: 220 mx.test ESMTP service ready
        C: EHLO client.test
        S: 250-mx.test hello
        S: 250-PIPELINING
        S: 250-SIZE 26214400
        S: 250-8BITMIME
        S: 250-ENHANCEDSTATUSCODES
        S: 250-DSN
        S: 250-SMTPUTF8
        S: 250 AUTH PLAIN LOGIN
    """, config=SUBMISSION, tls=TLS).close()


def test_development_relaxation_offers_auth_in_plaintext_on_loopback_only() -> None:
    dev = SessionConfig(hostname=HOST, listener="submission", limits=Limits(allow_plaintext_auth_on_loopback=True))
    with Client(config=dev, peer="::1") as client:
        client.greeting()
        assert client.line("EHLO a")[-1] == "250 AUTH PLAIN LOGIN"
    with Client(config=dev, peer="192.0.2.1") as client:
        client.greeting()
        assert client.line("EHLO a")[-1] == "250 SMTPUTF8"


def test_no_auth_without_an_authenticator_and_the_size_limit_of_the_listener() -> None:
    config = SessionConfig(hostname=HOST, listener="submission", limits=Limits(max_message_size=1000))
    transcript("""
        S: 220 mx.test ESMTP service ready
        C: EHLO client.test
        S: 250-mx.test hello
        S: 250-PIPELINING
        S: 250-SIZE 1000
        S: 250-8BITMIME
        S: 250-ENHANCEDSTATUSCODES
        S: 250-DSN
        S: 250 SMTPUTF8
        C: AUTH PLAIN AGRyQGNsaW5pYy50ZXN0AHNlY3JldA==
        S: 503 5.5.1 authentication is not available on this port
    """, config=config, tls=TLS, auth=False).close()


def test_helo_has_no_keywords_and_no_auth() -> None:
    transcript("""
        S: 220 mx.test ESMTP service ready
        C: HELO client.test
        S: 250 mx.test hello
        C: AUTH PLAIN AGRyQGNsaW5pYy50ZXN0AHNlY3JldA==
        S: 503 5.5.1 bad sequence of commands
        C: MAIL FROM:<dr@clinic.test>
        S: 530 5.7.0 authentication required
    """, config=SUBMISSION, tls=TLS).close()


def test_ehlo_and_helo_need_an_argument() -> None:
    transcript("""
        S: 220 mx.test ESMTP service ready
        C: EHLO
        S: 501 5.5.4 syntax error in parameters or arguments
        C: HELO
        S: 501 5.5.4 syntax error in parameters or arguments
        C: MAIL FROM:<s@peer.test>
        S: 503 5.5.1 send EHLO or HELO first
    """).close()


def test_ehlo_in_a_transaction_resets_it() -> None:
    memory = Memory()
    client = transcript("""
        S: 220 mx.test ESMTP service ready
        C: HELO a
        C: MAIL FROM:<s@peer.test>
        C: RCPT TO:<r@patients.test>
        C: HELO b
        C: DATA
        S: 250 mx.test hello
        S: 250 2.1.0 sender OK
        S: 250 2.1.5 recipient OK
        S: 250 mx.test hello
        S: 503 5.5.1 need MAIL command first
    """, memory)
    assert client.session.facts.helo == "b" and not client.session.facts.esmtp
    assert memory.resets >= 1  # the policy was told the transaction is over
    client.close()


def test_a_refused_ehlo_leaves_the_session_as_it_was() -> None:
    """RFC 5321 §4.1.4: the server stays in the state it was in."""
    memory = Memory(refuse={"mx.test": replies.Reply(550, "5.7.1", "that is my name")})
    client = transcript("""
        S: 220 mx.test ESMTP service ready
        C: HELO client.test
        S: 250 mx.test hello
        C: MAIL FROM:<s@peer.test>
        S: 250 2.1.0 sender OK
        C: HELO mx.test
        S: 550 5.7.1 that is my name
        C: RCPT TO:<r@patients.test>
        S: 250 2.1.5 recipient OK
    """, memory)
    assert client.session.facts.helo == "client.test"
    client.close()
