"""The command reader: golden cases fed whole, one byte at a time and split at every
position (h11 ``test_io.py``, Stalwart's receiver tests), the path parser, and whole
sessions that answer the same bytes however their input is cut."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from smtp import replies
from smtp.commands import Auth, Command, Hello, Invalid, Mail, Rcpt, Simple
from smtp.params import MailParams, RcptParams
from smtp.reader import LONGEST_COMMAND, TOO_LONG, LineReader, TooLong, parse, split_path
from smtp.replies import Reply
from smtp.session import SessionConfig
from smtp.state import Verb
from smtp.testing import HOST, TLS, Client, Memory

MAX = 10_000


def splits(data: bytes) -> Iterable[list[bytes]]:
    """Whole, byte by byte, and every two-way split (mid-token included)."""
    yield [data]
    yield [data[i : i + 1] for i in range(len(data))]
    for i in range(1, len(data)):
        yield [data[:i], data[i:]]


def read_all(chunks: list[bytes], limit: int = LONGEST_COMMAND) -> list[Command | Reply]:
    reader, out = LineReader(), []
    for chunk in chunks:
        reader.feed(chunk)
        while (line := reader.next_line(limit)) is not None:
            out.append(replies.LINE_TOO_LONG if isinstance(line, TooLong) else parse(line, MAX))
    return out


GOLDEN: list[tuple[bytes, list[Command | Reply]]] = [
    (b"EHLO client.test\r\n", [Hello(Verb.EHLO, "client.test")]),
    (b"helo  client.test  \r\n", [Hello(Verb.HELO, "client.test")]),
    (b"MAIL FROM:<a@b.test> SIZE=10 BODY=8BITMIME\r\n", [Mail("a@b.test", MailParams(size=10, body="8BITMIME"))]),
    (b"MAIL FROM:<>\r\n", [Mail("", MailParams())]),
    (b"RCPT TO:<x@y.test> NOTIFY=NEVER\r\nDATA\r\n",
     [Rcpt("x@y.test", RcptParams(notify=frozenset())), Simple(Verb.DATA)]),
    (b"AUTH PLAIN AGEAYg==\r\nAUTH login\r\n", [Auth("PLAIN", "AGEAYg=="), Auth("LOGIN")]),
    (b"NOOP hello there\r\nQUIT\r\n", [Simple(Verb.NOOP, "hello there"), Simple(Verb.QUIT)]),
    (b"VRFY\r\nEXPN list\r\n", [Invalid(Verb.VRFY, replies.SYNTAX_ERROR), Simple(Verb.EXPN, "list")]),
    (b"DATA x\r\nSTARTTLS\r\n", [Invalid(Verb.DATA, replies.SYNTAX_ERROR), Simple(Verb.STARTTLS)]),
    (b"MAIL TO:<a@b>\r\nRCPT TO:<>\r\n",
     [Invalid(Verb.MAIL, replies.MAIL_SYNTAX), Invalid(Verb.RCPT, replies.RCPT_SYNTAX)]),
    (b"MAIL FROM:<a@b> SIZE=99999\r\n", [Invalid(Verb.MAIL, replies.MESSAGE_TOO_BIG)]),
    (b"FROB\r\n\r\n", [replies.COMMAND_UNRECOGNIZED, replies.COMMAND_UNRECOGNIZED]),
    ("NOOP \u00e9\r\n".encode(), [replies.NON_ASCII_COMMAND]),
    # RFC 6531: UTF-8 in the paths of MAIL and RCPT (the session checks SMTPUTF8 was given)
    ("MAIL FROM:<m\u00e9decin@h\u00f4pital.test> SMTPUTF8\r\nRCPT TO:<\u00e9@p.test>\r\n".encode(),
     [Mail("m\u00e9decin@h\u00f4pital.test", MailParams(smtputf8=True)), Rcpt("\u00e9@p.test", RcptParams())]),
    (b"MAIL FROM:<\xff@p.test>\r\nRCPT TO:<a\xc3@p.test>\r\n", [replies.INVALID_UTF8, replies.INVALID_UTF8]),
    ("MAIL FROM:<a@p.test> SIZE=\u0661\r\n".encode(), [Invalid(Verb.MAIL, replies.NON_ASCII_COMMAND)]),
    ("EHLO h\u00f4pital.test\r\n".encode(), [replies.NON_ASCII_COMMAND]),
    (b"NOOP " + b"x" * 600 + b"\r\nNOOP\n", [replies.LINE_TOO_LONG, Simple(Verb.NOOP)]),
    (b"NOOP " + b"x" * 5000 + b"\r\nRSET\r\n", [replies.LINE_TOO_LONG, Simple(Verb.RSET)]),
]


@pytest.mark.parametrize(("data", "expected"), GOLDEN, ids=[repr(d[:24]) for d, _ in GOLDEN])
def test_golden_cases_however_they_are_cut(data: bytes, expected: list[Command | Reply]) -> None:
    for chunks in splits(data):
        assert read_all(chunks) == expected, chunks


def test_incomplete_line_waits_and_an_over_long_one_is_not_kept() -> None:
    reader = LineReader()
    reader.feed(b"NOOP")
    assert reader.next_line(512) is None and reader.buffered == 4
    reader.feed(b"x" * 600)
    assert reader.next_line(512) is None and reader.buffered == 0
    reader.feed(b"yyy\r\nNOOP\r\n")
    assert reader.next_line(512) is TOO_LONG and reader.next_line(512) == b"NOOP"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<a@b.test>", ("a@b.test", "")),
        ("<a@b.test> SIZE=1", ("a@b.test", " SIZE=1")),
        ("< a@b.test >", ("a@b.test", "")),
        ("<>", ("", "")),
        ("<@r1.test,@r2.test:a@b.test>", ("a@b.test", "")),  # RFC 5321 §4.1.2 A-d-l dropped
        ('<"a>b"@c.test>', ('"a>b"@c.test', "")),
        ('<"a\\"b>"@c.test>', ('"a\\"b>"@c.test', "")),
        ("a@b.test", None),
        ("<a@b.test", None),
        ("<@r1.test a@b.test>", None),
    ],
)
def test_split_path(text: str, expected: tuple[str, str] | None) -> None:
    assert split_path(text) == expected


SESSIONS = {
    "transaction": (b"EHLO c.test\r\nMAIL FROM:<s@peer.test> SIZE=20\r\nRCPT TO:<r@patients.test>\r\n"
                    b"DATA\r\nSubject: x\r\n\r\n..dot\r\n.\r\nQUIT\r\n"),
    "smuggling": (b"HELO c\r\nMAIL FROM:<s@peer.test>\r\nRCPT TO:<r@patients.test>\r\nDATA\r\n"
                  b"x\n.\nMAIL FROM:<evil@peer.test>\r\n.\r\nNOOP\r\n"),
    "auth": (b"EHLO c\r\nAUTH LOGIN\r\nZHJAY2xpbmljLnRlc3Q=\r\nc2VjcmV0\r\nAUTH PLAIN\r\n*\r\nNOOP\r\n"),
    "errors": b"FROB\r\nNOOP \xff\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n" + b"z" * 700 + b"\r\nQUIT\r\n",
}


@pytest.mark.parametrize("name", list(SESSIONS))
def test_a_session_answers_the_same_however_its_input_is_cut(name: str) -> None:
    config = SessionConfig(hostname=HOST, listener="submission" if name == "auth" else "mx")
    data = SESSIONS[name]
    answers = set()
    for chunks in splits(data):
        memory = Memory()
        with Client(memory, config, tls=TLS if name == "auth" else None) as client:
            for chunk in chunks:
                client.send(chunk)
            out = b"".join(o.data for o in client.outputs)
            answers.add((out, tuple(d.message for d in memory.deliveries)))
    assert len(answers) == 1, answers
