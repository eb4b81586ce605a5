"""Transcripts: RSET, NOOP, QUIT, HELP, VRFY, EXPN; unknown, empty, non-ASCII and over-long
lines (RFC 5321 §4.5.3.1.4, RFC 1870 §3, RFC 3461 §4, RFC 4954 §5); timeouts and shutdown."""

from __future__ import annotations

import pytest

from smtp import replies
from smtp.reader import LINE_LIMITS, LONGEST_COMMAND
from smtp.session import FLUSH_AT
from smtp.state import Verb
from smtp.testing import Client, Memory, transcript


def test_rset_noop_quit() -> None:
    memory = Memory()
    client = transcript("""
        S: 220 mx.test ESMTP service ready
        C: NOOP
        C: NOOP anything at all
        C: RSET
        C: HELO a
        C: MAIL FROM:<s@peer.test>
        C: RSET
        C: RCPT TO:<r@patients.test>
        C: RSET now
        S: 250 2.0.0 OK
        S: 250 2.0.0 OK
        S: 250 2.0.0 OK
        S: 250 mx.test hello
        S: 250 2.1.0 sender OK
        S: 250 2.0.0 OK
        S: 503 5.5.1 need MAIL command first
        S: 501 5.5.4 syntax error in parameters or arguments
        C: QUIT now
        S: 501 5.5.4 syntax error in parameters or arguments
        C: QUIT
        C: NOOP
        S: 221 2.0.0 closing connection
        S: [close]
    """, memory)
    assert client.session.closed and client.send(b"NOOP\r\n") == []
    client.close()


def test_help_vrfy_expn() -> None:
    transcript(f"""
        S: 220 mx.test ESMTP service ready
        C: HELP
        S: {replies.HELP.line()}
        C: HELP MAIL
        S: {replies.HELP.line()}
        C: VRFY dr@clinic.test
        S: 252 2.5.0 cannot verify users
        C: VRFY
        S: 501 5.5.4 syntax error in parameters or arguments
        C: EXPN staff
        S: 502 5.5.1 command not implemented
    """).close()


def test_unknown_commands_close_the_session_at_the_fifth() -> None:
    transcript("""
        S: 220 mx.test ESMTP service ready
        C: XYZZY
        C: BDAT 10 LAST
        C:
        C: NOOP
        C: TURN
        C: ETRN x
        C: NOOP
        S: 500 5.5.1 command not recognized
        S: 500 5.5.1 command not recognized
        S: 500 5.5.1 command not recognized
        S: 250 2.0.0 OK
        S: 500 5.5.1 command not recognized
        S: 421 4.7.0 too many unrecognized commands, closing connection
        S: [close]
    """).close()


def test_verbs_in_any_case_and_lines_ended_by_a_bare_lf() -> None:
    with Client() as c:
        c.greeting()
        assert c.send(b"noop\r\nNoOp\nhelo a\n") == [replies.OK.line(), replies.OK.line(), "250 mx.test hello"]


def test_non_ascii_is_refused_and_not_counted_as_unknown() -> None:
    with Client() as c:
        c.greeting()
        for _ in range(6):
            assert c.send("NOOP é\r\n".encode()) == [replies.NON_ASCII_COMMAND.line()]
        assert c.send(b"MAIL FROM:<\xe9@peer.test>\r\n") == [replies.INVALID_UTF8.line()]  # Latin-1, not UTF-8
        assert not c.session.closed


@pytest.mark.parametrize(("verb", "limit"), [("NOOP", 512), ("MAIL", LINE_LIMITS[Verb.MAIL]),
                                             ("RCPT", LINE_LIMITS[Verb.RCPT]), ("AUTH", LINE_LIMITS[Verb.AUTH])])
def test_line_limits_per_verb(verb: str, limit: int) -> None:
    """The limit counts the CRLF; MAIL and RCPT may be longer for their extensions, AUTH for a token."""
    with Client() as c:
        c.greeting()
        head = f"{verb} ".encode()
        fits = head + b"x" * (limit - 2 - len(head)) + b"\r\n"
        assert c.send(fits) != [replies.LINE_TOO_LONG.line()]
        over = head + b"x" * (limit - 1 - len(head)) + b"\r\n"
        assert c.send(over) == [replies.LINE_TOO_LONG.line()]


def test_a_very_long_line_is_dropped_without_being_kept() -> None:
    with Client() as c:
        c.greeting()
        for _ in range(100):
            assert c.send(b"NOOP " + b"x" * 10_000) == []
            assert c.session.lines.buffered <= LONGEST_COMMAND  # AUTH's: a SASL line (RFC 4954 §4)
        assert c.send(b"\r\nNOOP\r\n") == [replies.LINE_TOO_LONG.line(), replies.OK.line()]


def test_timeout_and_shutdown_are_421_then_close() -> None:
    with Client() as c:
        c.greeting()
        assert c.timeout() == [replies.TIMEOUT.line()] and c.outputs[-1].closes
        assert c.timeout() == [] and c.send(b"NOOP\r\n") == []
    with Client() as c:
        c.greeting()
        assert c.session.shutdown().data == replies.SHUTTING_DOWN.line().encode() + b"\r\n"


def test_a_client_pipelining_without_reading_gets_its_replies_in_bounded_batches() -> None:
    """RFC 2920 §3.1 lets a session batch replies; it stops at FLUSH_AT so the shell writes
    (and waits for the client to read) before more commands are run."""
    with Client() as c:
        c.greeting()
        lines = c.send(b"HELP\r\n" * 3000)
        batches = [c.outputs[-1]]
        while batches[-1].more:
            lines += c.send(b"")
            batches.append(c.outputs[-1])
        assert lines == [replies.HELP.line()] * 3000
        assert len(batches) > 2 and all(len(b.data) <= FLUSH_AT + 200 for b in batches)
        assert sum(b.commands for b in batches) == 3000
