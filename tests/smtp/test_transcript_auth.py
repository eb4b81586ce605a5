"""Transcripts: AUTH (RFC 4954) with PLAIN (RFC 4616) and LOGIN, over TLS on submission."""

from __future__ import annotations

import base64
import logging

import pytest

from smtp import replies
from smtp.policy import Limits
from smtp.session import SessionConfig
from smtp.testing import HOST, TLS, Client, Memory, transcript

SUBMISSION = SessionConfig(hostname=HOST, listener="submission", starttls=True)
GREETED = """
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
"""


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def plain(user: str, password: str, authzid: str = "") -> str:
    """A PLAIN message (RFC 4616 §2), base64-encoded."""
    return b64(f"{authzid}\0{user}\0{password}".encode())


GOOD = plain("dr@clinic.test", "secret")
NOT_UTF8 = b64(b"\0dr@clinic.test\0\xff")


def run(script: str, memory: Memory | None = None) -> Client:
    return transcript(GREETED + script, memory, SUBMISSION, tls=TLS)


def test_plain_with_initial_response_then_mail() -> None:
    client = run(f"""
        C: AUTH PLAIN {GOOD}
        C: MAIL FROM:<dr@clinic.test>
        S: 235 2.7.0 authentication successful
        S: 250 2.1.0 sender OK
    """)
    assert client.session.facts.account == "dr@clinic.test"
    client.close()


def test_plain_with_a_challenge_and_a_matching_authzid() -> None:
    run(f"""
        C: AUTH plain
        S: 334
        C: {plain('dr@clinic.test', 'secret', 'dr@clinic.test')}
        S: 235 2.7.0 authentication successful
    """).close()


def test_login_exchange_and_login_with_the_user_name_up_front() -> None:
    run(f"""
        C: AUTH LOGIN
        S: 334 VXNlcm5hbWU6
        C: {b64(b"dr@clinic.test")}
        S: 334 UGFzc3dvcmQ6
        C: {b64(b"secret")}
        S: 235 2.7.0 authentication successful
    """).close()
    run(f"""
        C: AUTH LOGIN {b64(b"dr@clinic.test")}
        S: 334 UGFzc3dvcmQ6
        C: {b64(b"wrong")}
        S: 535 5.7.8 authentication credentials invalid
    """).close()


@pytest.mark.parametrize(
    ("script", "reply"),
    [
        ("C: AUTH PLAIN\nS: 334\nC: *", replies.AUTH_CANCELLED),  # RFC 4954 §4
        ("C: AUTH LOGIN\nS: 334 VXNlcm5hbWU6\nC: *", replies.AUTH_CANCELLED),
        ("C: AUTH PLAIN not*base64", replies.AUTH_BAD_BASE64),
        ("C: AUTH PLAIN\nS: 334\nC: not*base64", replies.AUTH_BAD_BASE64),
        ("C: AUTH LOGIN not*base64", replies.AUTH_BAD_BASE64),  # was left unanswered before
        ("C: AUTH PLAIN =", replies.SYNTAX_ERROR),  # an empty initial response is no PLAIN message
        (f"C: AUTH PLAIN {b64(b'only-one-part')}", replies.SYNTAX_ERROR),
        ("C: AUTH PLAIN " + NOT_UTF8, replies.SYNTAX_ERROR),  # RFC 4616 §2: UTF-8
        (f"C: AUTH PLAIN {plain('dr@clinic.test', 'secret', 'boss@clinic.test')}", replies.AUTH_FAILED),
        ("C: AUTH CRAM-MD5", replies.AUTH_MECHANISM_UNSUPPORTED),
        ("C: AUTH", replies.SYNTAX_ERROR),
        ("C: AUTH PLAIN a b", replies.SYNTAX_ERROR),
        (f"C: AUTH PLAIN {plain('dr@clinic.test', 'wrong')}", replies.AUTH_FAILED),
    ],
)
def test_refusals(script: str, reply: replies.Reply) -> None:
    client = run(f"{script}\nS: {reply.line()}\nC: NOOP\nS: 250 2.0.0 OK")
    assert client.session.facts.account is None
    client.close()


def test_a_response_line_over_the_limit() -> None:
    """RFC 4954 §4: 12288 octets at least are read; beyond, 500 5.5.6 and the session goes on."""
    with Client(config=SUBMISSION, tls=TLS) as c:
        c.greeting()
        c.line("EHLO a")
        assert c.line("AUTH PLAIN") == ["334 "]
        assert c.send(b"A" * 20000 + b"\r\nNOOP\r\n") == [replies.AUTH_LINE_TOO_LONG.line(), replies.OK.line()]
        assert c.line("AUTH PLAIN") == ["334 "]
        assert c.line(b64(b"\0dr@clinic.test\0secret" + b"x" * 9000)) == [replies.AUTH_FAILED.line()]


def test_throttled_then_too_many_failures_close() -> None:
    memory = Memory(throttled={"slow@clinic.test"})
    client = run(f"""
        C: AUTH PLAIN {plain('slow@clinic.test', 'x')}
        S: 454 4.7.0 too many authentication failures, try again later
        C: AUTH PLAIN {plain('dr@clinic.test', 'x')}
        S: 535 5.7.8 authentication credentials invalid
        C: AUTH PLAIN {plain('dr@clinic.test', 'y')}
        C: NOOP
        S: 421 4.7.0 too many authentication failures, closing connection
        S: [close]
    """, memory)
    assert client.session.closed
    client.close()


def test_authenticator_failure_is_a_temporary_failure(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="smtp.session"):
        run(f"""
            C: AUTH PLAIN {GOOD}
            S: 454 4.7.0 temporary authentication failure
            C: AUTH LOGIN
            S: 334 VXNlcm5hbWU6
        """, Memory(fail={"auth"})).close()
    assert any(r.exc_info for r in caplog.records)


def test_auth_is_refused_where_it_must_be() -> None:
    transcript(f"""
        S: 220 mx.test ESMTP service ready
        C: AUTH PLAIN {GOOD}
        S: 503 5.5.1 send EHLO or HELO first
        C: EHLO a
        S: 250-mx.test hello
        S: 250-PIPELINING
        S: 250-SIZE 26214400
        S: 250-8BITMIME
        S: 250-ENHANCEDSTATUSCODES
        S: 250-DSN
        S: 250-SMTPUTF8
        S: 250 STARTTLS
        C: AUTH PLAIN {GOOD}
        S: 538 5.7.11 encryption required for requested authentication mechanism
    """, config=SUBMISSION).close()
    run(f"""
        C: AUTH PLAIN {GOOD}
        S: 235 2.7.0 authentication successful
        C: AUTH PLAIN {GOOD}
        S: 503 5.5.1 already authenticated
        C: MAIL FROM:<dr@clinic.test>
        S: 250 2.1.0 sender OK
        C: AUTH LOGIN
        S: 503 5.5.1 not permitted during a mail transaction
    """).close()


def test_development_relaxation_allows_auth_in_plaintext_on_loopback() -> None:
    dev = SessionConfig(hostname=HOST, listener="submission", limits=Limits(allow_plaintext_auth_on_loopback=True))
    with Client(config=dev, peer="127.0.0.1") as c:
        c.greeting()
        c.line("EHLO a")
        assert c.line("AUTH PLAIN " + b64(b"\0dr@clinic.test\0secret")) == [replies.AUTH_SUCCESS.line()]
        assert c.line("MAIL FROM:<dr@clinic.test>") == [replies.SENDER_OK.line()]
