"""Hypothesis fuzz of the whole session (h11 ``fuzz/afl-server.py``), with a stated invariant:

every line the session writes is a catalogue reply (or one of the few built lines: the
greeting, the EHLO lines, a SASL challenge, the stored id), or it closes and then says
nothing more; it never raises; what it holds stays bounded (a command or SASL line, the
DATA reader's limit, the memory budget given back at the end), and it never writes more
than a fixed multiple of what it read.
"""

from __future__ import annotations

import itertools
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from smtp.policy import Limits
from smtp.reader import SASL_LINE
from smtp.session import FLUSH_AT, SessionConfig
from smtp.testing import HOST, TLS, Client, Memory, is_catalogued

MAX_SIZE = 400
AMPLIFICATION = 40  # output bytes per input byte, at most (HELP, EHLO, a non-ASCII byte)
_BUILT = re.compile(
    r"^(220 mx\.test ESMTP service ready"
    r"|250[- ](mx\.test hello|PIPELINING|SIZE \d+|8BITMIME|ENHANCEDSTATUSCODES|DSN|SMTPUTF8|STARTTLS|AUTH PLAIN LOGIN)"
    r"|334 [A-Za-z0-9+/=]*"
    r"|250 2\.0\.0 message accepted for delivery \(id M\d+\))$"
)

WORDS = [
    b"EHLO c.test\r\n", b"HELO c\r\n", b"MAIL FROM:<s@peer.test>\r\n", b"MAIL FROM:<dr@clinic.test> SIZE=100\r\n",
    b"MAIL FROM:<> RET=FULL ENVID=x+2By\r\n", b"MAIL FROM:<s@peer.test> SIZE=999999\r\n", b"MAIL FROM:bad\r\n",
    b"RCPT TO:<r@patients.test>\r\n", b"RCPT TO:<r@patients.test> NOTIFY=NEVER ORCPT=rfc822;r+40p\r\n",
    b"RCPT TO:<nobody>\r\n", b"DATA\r\n", b"DATA x\r\n", b"RSET\r\n", b"NOOP\r\n", b"QUIT\r\n", b"HELP\r\n",
    b"VRFY a\r\n", b"EXPN b\r\n", b"STARTTLS\r\n", b"AUTH PLAIN AGRyQGNsaW5pYy50ZXN0AHNlY3JldA==\r\n",
    b"AUTH PLAIN\r\n", b"AUTH LOGIN\r\n", b"AUTH CRAM-MD5\r\n", b"*\r\n", b"ZHJAY2xpbmljLnRlc3Q=\r\n", b"c2VjcmV0\r\n",
    b"!!notbase64\r\n", b"FROB\r\n", b"\r\n", b"\n", b"\r", b".\r\n", b"\r\n.\r\n", b"\n.\n", b"\r.\r", b"\x00",
    b"..dot\r\n", b"Subject: x\r\n\r\nbody\r\n", "NOOP \u00e9\r\n".encode(), b"x" * 700, b"y" * 13_000 + b"\r\n",
]

words = st.sampled_from(WORDS)
chunks = st.lists(st.one_of(words, words, words, st.binary(max_size=40)), max_size=40)


@settings(max_examples=300, deadline=None)
@given(pieces=chunks, cuts=st.lists(st.integers(min_value=0, max_value=20_000), max_size=8),
       listener=st.sampled_from(["mx", "submission"]), tls=st.booleans(),
       fail=st.sets(st.sampled_from(["helo", "mail", "rcpt", "data", "deliver", "auth"])),
       room=st.one_of(st.none(), st.integers(min_value=0, max_value=2 * MAX_SIZE)),
       patience=st.sampled_from([5, 1000]))
def test_session_invariant(pieces: list[bytes], cuts: list[int], listener: str, tls: bool, fail: set[str],
                           room: int | None, patience: int) -> None:
    data = b"".join(pieces)
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    memory = Memory(fail=fail, room=room)
    config = SessionConfig(hostname=HOST, listener=listener, starttls=True,  # type: ignore[arg-type]
                           limits=Limits(max_message_size=MAX_SIZE, max_recipients=3), max_unrecognized=patience,
                           max_auth_failures=patience)
    client = Client(memory, config, tls=TLS if tls else None)
    closed = False
    try:
        client.greeting()
        for start, end in itertools.pairwise(points):
            chunk = data[start:end]
            lines = client.send(chunk)
            output = client.outputs[-1]
            if closed:
                assert output.data == b"" and not output.events
            for line in lines:
                assert _BUILT.match(line) or is_catalogued(line), line
            assert len(output.data) <= min(AMPLIFICATION * len(chunk) + 300, FLUSH_AT + 512)
            session = client.session
            assert output.more or session.lines.buffered <= SASL_LINE
            if session.data_reader is not None:
                assert session.data_reader.buffered <= MAX_SIZE + 8
            assert room is None or memory.held <= room
            closed = closed or output.closes
            if output.starttls:
                client.start_tls()
            while output.more:  # as the shell does: write, then the rest of the input
                client.send(b"")
                output = client.outputs[-1]
    finally:
        client.close()
    assert memory.held == 0
