"""The protocol session without sockets (DESIGN rule 2): bytes in, bytes out, over the
in-memory backend of :mod:`imap.testing`."""

from __future__ import annotations

import asyncio

from imap.testing import Transcript


async def test_login_select_append_fetch_logout() -> None:
    t = Transcript()
    assert (await t.greet()).startswith(b"* OK [CAPABILITY IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID AUTH=PLAIN]")
    assert (await t.feed(b"a LOGIN alice pw\r\n")).startswith(b"a OK [CAPABILITY IMAP4rev1")
    out = await t.feed(b"b APPEND INBOX {12}\r\n")
    assert out == b"+ Ready for literal data\r\n"
    assert await t.feed(b"Subject: x") == b""
    assert (await t.feed(b"\r\n\r\n")) == b"b OK [APPENDUID 1 1] APPEND completed\r\n"
    out = await t.feed(b"c SELECT INBOX\r\n")
    assert b"* 1 EXISTS\r\n" in out and out.endswith(b"c OK [READ-WRITE] SELECT completed\r\n")
    out = await t.feed(b"d FETCH 1 (RFC822.SIZE BODY.PEEK[])\r\n")
    assert out == b"* 1 FETCH (RFC822.SIZE 12 BODY[] {12}\r\nSubject: x\r\n)\r\nd OK FETCH completed\r\n"
    out = await t.feed(b"e LOGOUT\r\n")
    assert out == b"* BYE Logging out\r\ne OK LOGOUT completed\r\n" and t.session.closed


async def test_pipelined_commands_and_errors_keep_order() -> None:
    t = Transcript(tls=False)
    out = await t.feed(b"a NOOP\r\nb LOGIN alice pw\r\nc FOO\r\n")
    assert out == (b"a OK NOOP completed\r\nb NO [PRIVACYREQUIRED] Use STARTTLS before logging in\r\n"
                   b"c BAD Unknown command\r\n")
    out = await t.feed(b"d STARTTLS\r\ne NOOP\r\n")
    assert out == b"d OK Begin TLS negotiation now\r\n" and t.session.starttls_requested
    t.session.tls_started()
    assert await t.feed(b"f NOOP\r\n") == b"f OK NOOP completed\r\n"  # "e" was dropped


async def test_idle_pushes_changes_then_done() -> None:
    t = Transcript()
    await t.feed(b"a LOGIN alice pw\r\nb SELECT INBOX\r\n")
    assert await t.feed(b"c IDLE\r\n") == b"+ idling\r\n"
    boxes = t.session.boxes
    await boxes.append("INBOX", b"Subject: y\r\n\r\n", [], None)
    await asyncio.sleep(0.2)
    assert t.take() == b"* 1 EXISTS\r\n* 1 RECENT\r\n"  # new to this session: recent (RFC 3501 §2.3.2)
    assert await t.feed(b"DONE\r\n") == b"c OK IDLE terminated\r\n"
