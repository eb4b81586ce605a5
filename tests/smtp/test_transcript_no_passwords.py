"""Submission without password mechanisms (``[auth] password_login = false``, issue 19): EHLO
lists no AUTH and AUTH PLAIN / LOGIN answer 504 5.5.4 without the authenticator being asked;
fed byte by byte too (RFC 4954 §4)."""

from __future__ import annotations

from smtp.session import SessionConfig
from smtp.testing import HOST, TLS, Memory, transcript

NO_PASSWORDS = SessionConfig(hostname=HOST, listener="submission", mechanisms=())


def test_no_auth_keyword_and_password_mechanisms_refused() -> None:
    memory = Memory(fail={"auth"})  # the authenticator raises if it is ever asked
    transcript("""
        S: 220 mx.test ESMTP service ready
        C: EHLO client.test
        S: 250-mx.test hello
        S: 250-PIPELINING
        S: 250-SIZE 26214400
        S: 250-8BITMIME
        S: 250-ENHANCEDSTATUSCODES
        S: 250-DSN
        S: 250 SMTPUTF8
        C: AUTH PLAIN AGRyQGNsaW5pYy50ZXN0AHNlY3JldA==
        S: 504 5.5.4 unrecognized authentication type
        C: AUTH LOGIN
        S: 504 5.5.4 unrecognized authentication type
    """, memory, NO_PASSWORDS, tls=TLS).close()


def test_fed_byte_by_byte() -> None:
    client = transcript("""
        S: 220 mx.test ESMTP service ready
        C: EHLO client.test
        S: 250-mx.test hello
        S: 250-PIPELINING
        S: 250-SIZE 26214400
        S: 250-8BITMIME
        S: 250-ENHANCEDSTATUSCODES
        S: 250-DSN
        S: 250 SMTPUTF8
    """, None, NO_PASSWORDS, tls=TLS)
    data = b""
    for octet in b"AUTH PLAIN AGRyQGNsaW5pYy50ZXN0AHNlY3JldA==\r\n":
        output = client._runner.run(client.session.receive_data(bytes([octet])))
        data += output.data
    assert data.startswith(b"504 5.5.4 ")
    client.close()
