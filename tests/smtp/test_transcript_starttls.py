"""Transcripts: STARTTLS (RFC 3207) and the STARTTLS command injection (CVE-2011-0411 class)."""

from __future__ import annotations

import base64

import pytest

from smtp import replies
from smtp.policy import Limits
from smtp.session import SessionConfig
from smtp.testing import HOST, TLS, Client, transcript

SUBMISSION = SessionConfig(hostname=HOST, listener="submission", starttls=True)
EHLO_PLAIN = """
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
"""
GOOD = base64.b64encode(b"\0dr@clinic.test\0secret").decode()


def test_starttls_then_everything_learnt_before_is_forgotten() -> None:
    """RFC 3207 §4.2: after the handshake the client greets again; AUTH is now offered."""
    client = transcript(EHLO_PLAIN + f"""
        C: STARTTLS
        S: 220 2.0.0 ready to start TLS
        S: [starttls]
        C: MAIL FROM:<dr@clinic.test>
        S: 503 5.5.1 send EHLO or HELO first
        C: EHLO client.test
        S: 250-mx.test hello
        S: 250-PIPELINING
        S: 250-SIZE 26214400
        S: 250-8BITMIME
        S: 250-ENHANCEDSTATUSCODES
        S: 250-DSN
        S: 250-SMTPUTF8
        S: 250 AUTH PLAIN LOGIN
        C: STARTTLS
        S: 503 5.5.1 TLS already active
        C: AUTH PLAIN {GOOD}
        S: 235 2.7.0 authentication successful
    """, config=SUBMISSION)
    facts = client.session.facts
    assert facts.tls and facts.tls_info == TLS and facts.account == "dr@clinic.test"
    client.close()


@pytest.mark.parametrize(
    "injected",
    [b"MAIL FROM:<x@clinic.test>\r\n", b"RSET\r\n", b"\r\n", b"M", b"EHLO evil\r\nAUTH PLAIN x\r\n"],
    ids=["mail", "rset", "empty_line", "one_byte", "ehlo_auth"],
)
def test_starttls_command_injection_is_refused_and_dropped(injected: bytes) -> None:
    with Client(config=SUBMISSION) as c:
        c.greeting()
        c.line("EHLO client.test")
        assert c.send(b"STARTTLS\r\n" + injected) == [replies.STARTTLS_PIPELINED.line()]
        assert not c.outputs[-1].starttls
        assert c.line("NOOP") == [replies.OK.line()]  # none of the injected commands ran


def test_input_after_the_220_is_never_read() -> None:
    """What arrives between the 220 and the handshake is dropped, not read inside TLS."""
    with Client(config=SUBMISSION) as c:
        c.greeting()
        c.line("EHLO client.test")
        assert c.line("STARTTLS") == [replies.STARTTLS_READY.line()] and c.outputs[-1].starttls
        assert c.send(b"MAIL FROM:<x@clinic.test>\r\n") == []
        c.start_tls()
        assert c.line("MAIL FROM:<x@clinic.test>") == [replies.NEED_HELO.line()]
        assert c.session.lines.buffered == 0


def test_starttls_refusals() -> None:
    transcript(EHLO_PLAIN + """
        C: STARTTLS now
        S: 501 5.5.4 syntax error in parameters or arguments
    """, config=SUBMISSION).close()
    transcript("""
        S: 220 mx.test ESMTP service ready
        C: STARTTLS
        S: 454 4.7.0 TLS not available, try again later
    """, config=SessionConfig(hostname=HOST)).close()
    transcript("""
        S: 220 mx.test ESMTP service ready
        C: EHLO a
        C: MAIL FROM:<s@peer.test>
        C: STARTTLS
        S: 250-mx.test hello
        S: 250-PIPELINING
        S: 250-SIZE 26214400
        S: 250-8BITMIME
        S: 250-ENHANCEDSTATUSCODES
        S: 250-DSN
        S: 250-SMTPUTF8
        S: 250 STARTTLS
        S: 250 2.1.0 sender OK
        S: 503 5.5.1 not permitted during a mail transaction
    """, config=SessionConfig(hostname=HOST, starttls=True)).close()


def test_an_account_from_the_development_relaxation_is_forgotten_at_tls() -> None:
    dev = SessionConfig(hostname=HOST, listener="submission", starttls=True,
                        limits=Limits(allow_plaintext_auth_on_loopback=True))
    with Client(config=dev, peer="127.0.0.1") as c:
        c.greeting()
        c.line("EHLO a")
        assert c.line("AUTH PLAIN " + GOOD) == [replies.AUTH_SUCCESS.line()]
        assert c.line("STARTTLS") == [replies.STARTTLS_READY.line()]
        c.start_tls()
        assert c.session.facts.account is None and c.session.facts.helo is None
