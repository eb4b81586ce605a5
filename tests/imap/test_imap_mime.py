"""ENVELOPE, BODYSTRUCTURE and section golden tests on small synthetic messages."""

from __future__ import annotations

import pytest

from imap.message import mime
from imap.message.addresses import parse_address_list
from imap.proto import encoder
from imap.proto.command_types import Section, SectionText
from imap.proto.structure import BodyStructure, EnvelopeAddress

PLAIN = (
    b"Date: Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\r\n"
    b"From: Terry Gray <gray@cac.washington.edu>\r\n"
    b"Subject: IMAP4rev1 WG mtg summary and minutes\r\n"
    b"To: imap@cac.washington.edu\r\n"
    b"cc: minutes@CNRI.Reston.VA.US,\r\n John Klensin <KLENSIN@MIT.EDU>\r\n"
    b"Message-Id: <B27397-0100000@cac.washington.edu>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\n"
    b"\r\n"
    b"Hello\r\nthere\r\n"
)

MIXED = (
    b"From: =?UTF-8?Q?Jos=C3=A9_Mart=C3=ADnez?= <jose@example.fr>\r\n"
    b"To: undisclosed-recipients:;\r\n"
    b"Subject: =?UTF-8?B?UsOpc3VsdGF0cw==?=\r\n"
    b'Content-Type: multipart/mixed; boundary="b1"\r\n'
    b"\r\n"
    b"This is a preamble.\r\n"
    b"--b1\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n"
    b"R\xc3\xa9sultats normaux.\r\n"
    b"--b1\r\n"
    b'Content-Type: application/pdf; name="bilan.pdf"\r\n'
    b'Content-Disposition: attachment; filename="bilan.pdf"\r\n'
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"JVBERi0xLjQK\r\n"
    b"--b1\r\n"
    b"Content-Type: message/rfc822\r\n"
    b"\r\n"
    b"From: a@b.c\r\n"
    b"Subject: inner\r\n"
    b"\r\n"
    b"inner body\r\n"
    b"--b1--\r\n"
    b"epilogue\r\n"
)


def test_plain_envelope_rfc3501_example() -> None:
    # RFC 3501 §8's example, except between two addresses: its example shows a space, its
    # grammar (§9 env-cc = "(" 1*address ")") has none, and Dovecot writes none.
    root = mime.parse(PLAIN)
    assert encoder.encode(encoder.envelope(mime.envelope(root))) == (
        b'("Wed, 17 Jul 1996 02:23:25 -0700 (PDT)" "IMAP4rev1 WG mtg summary and minutes" '
        b'(("Terry Gray" NIL "gray" "cac.washington.edu")) '
        b'(("Terry Gray" NIL "gray" "cac.washington.edu")) '
        b'(("Terry Gray" NIL "gray" "cac.washington.edu")) '
        b'((NIL NIL "imap" "cac.washington.edu")) '
        b'((NIL NIL "minutes" "CNRI.Reston.VA.US")("John Klensin" NIL "KLENSIN" "MIT.EDU")) '
        b'NIL NIL "<B27397-0100000@cac.washington.edu>")'
    )


def test_plain_bodystructure() -> None:
    bs = mime.bodystructure(mime.parse(PLAIN))
    assert encoder.encode(encoder.bodystructure(bs, extended=False)) == (
        b'("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 14 2)'
    )
    assert encoder.encode(encoder.bodystructure(bs)) == (
        b'("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 14 2 NIL NIL NIL NIL)'
    )


def test_plain_sections() -> None:
    root = mime.parse(PLAIN)
    assert mime.section(root, Section()) == PLAIN
    assert mime.section(root, Section((1,))) == b"Hello\r\nthere\r\n"
    assert mime.section(root, Section((), SectionText.TEXT)) == b"Hello\r\nthere\r\n"
    assert mime.section(root, Section((), SectionText.HEADER)).endswith(b"US-ASCII\r\n\r\n")
    assert mime.section(root, Section((), SectionText.HEADER_FIELDS, ("CC", "SUBJECT"))) == (
        b"Subject: IMAP4rev1 WG mtg summary and minutes\r\n"
        b"cc: minutes@CNRI.Reston.VA.US,\r\n John Klensin <KLENSIN@MIT.EDU>\r\n\r\n"
    )
    not_fields = mime.section(root, Section((), SectionText.HEADER_FIELDS_NOT, ("CC", "SUBJECT", "DATE")))
    assert b"cc:" not in not_fields and b"Subject" not in not_fields and b"From:" in not_fields
    assert mime.section(root, Section((2,))) == b""
    assert mime.partial(b"0123456789", (2, 3)) == b"234"


def test_multipart_envelope_keeps_rfc2047_words_and_groups() -> None:
    env = mime.envelope(mime.parse(MIXED))
    assert env.subject == "=?UTF-8?B?UsOpc3VsdGF0cw==?="
    assert env.from_ == (EnvelopeAddress("=?UTF-8?Q?Jos=C3=A9_Mart=C3=ADnez?=", None, "jose", "example.fr"),)
    assert env.to == (EnvelopeAddress(None, None, "undisclosed-recipients", None),
                      EnvelopeAddress(None, None, None, None))


def test_multipart_bodystructure() -> None:
    bs = mime.bodystructure(mime.parse(MIXED))
    assert encoder.encode(encoder.bodystructure(bs)) == (
        b'(("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "8BIT" 19 1 NIL NIL NIL NIL)'
        b'("APPLICATION" "PDF" ("NAME" "bilan.pdf") NIL NIL "BASE64" 12 NIL '
        b'("attachment" ("FILENAME" "bilan.pdf")) NIL NIL)'
        b'("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 41 '
        b'(NIL "inner" ((NIL NIL "a" "b.c")) ((NIL NIL "a" "b.c")) ((NIL NIL "a" "b.c")) '
        b"NIL NIL NIL NIL NIL) "
        b'("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 10 1 NIL NIL NIL NIL) 4 NIL NIL NIL NIL)'
        b' "MIXED" ("BOUNDARY" "b1") NIL NIL NIL)'
    )


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        (Section((1,)), b"R\xc3\xa9sultats normaux."),
        (Section((2,)), b"JVBERi0xLjQK"),
        (Section((2,), SectionText.MIME), b'Content-Type: application/pdf; name="bilan.pdf"\r\n'),
        (Section((3,)), b"From: a@b.c\r\nSubject: inner\r\n\r\ninner body"),
        (Section((3,), SectionText.HEADER), b"From: a@b.c\r\nSubject: inner\r\n\r\n"),
        (Section((3,), SectionText.TEXT), b"inner body"),
        (Section((3, 1)), b"inner body"),
        (Section((3,), SectionText.HEADER_FIELDS, ("SUBJECT",)), b"Subject: inner\r\n\r\n"),
        (Section((1, 1)), b""),
        (Section((4,)), b""),
        (Section((1,), SectionText.TEXT), b""),
    ],
)
def test_multipart_sections(section: Section, expected: bytes) -> None:
    got = mime.section(mime.parse(MIXED), section)
    if section.text is SectionText.MIME:
        assert got.startswith(expected) and got.endswith(b"\r\n\r\n")
    else:
        assert got == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("a@b.c", [("a", "b.c", None)]),
        ('"Doe, John" <john@d.e>, x@y', [("john", "d.e", "Doe, John"), ("x", "y", None)]),
        ("Pete (comment) <pete@silly.test>", [("pete", "silly.test", "Pete")]),
        ("<@route1,@route2:user@host>", [("user", "host", None)]),
        ("local-only", [("local-only", "", None)]),
    ],
)
def test_address_lists(value: str, expected: list[tuple[str, str, str | None]]) -> None:
    assert [(a.mailbox, a.host, a.name) for a in parse_address_list(value)] == expected


def test_source_route_goes_to_adl() -> None:
    assert parse_address_list("<@r1,@r2:u@h>")[0].adl == "@r1,@r2"


def test_message_without_header_and_bare_lf() -> None:
    root = mime.parse(b"\r\njust a body\n")
    assert mime.section(root, Section((1,))) == b"just a body\n"
    lf = mime.parse(b"Subject: x\nContent-Type: text/html\n\nline1\nline2")
    bs = mime.bodystructure(lf)
    assert (bs.subtype, bs.size, bs.lines) == ("HTML", 11, 2)


def test_deep_nesting_is_bounded() -> None:
    raw = b""
    for level in range(60):
        raw += b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (level, level)
    raw += b"\r\nleaf\r\n"
    bs = mime.bodystructure(mime.parse(raw))

    def depth(part: BodyStructure) -> int:
        return 1 + max([0] + [depth(p) for p in part.parts] + ([depth(part.body)] if part.body else []))

    assert depth(bs) == mime.MAX_DEPTH + 1  # the 60 levels are cut at the bound, not followed
    encoded = encoder.encode(encoder.bodystructure(bs))
    assert encoded.count(b"(") <= 4 * (mime.MAX_DEPTH + 1)


# imaptest fetch-body-mime / fetch-bodystructure (issue 18): a parameter folded across lines.
FOLDED = (
    b"From: user@domain.example\r\n"
    b"Mime-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="foo\r\n bar"\r\n'
    b"\r\n"
    b"Root MIME prologue\r\n"
    b"\r\n"
    b"--foo bar\r\n"
    b"Content-Type: text/x-myown; charset=us-ascii\r\n"
    b"\r\n"
    b"hello\r\n"
    b"\r\n"
    b"--foo bar\r\n"
    b"Content-Type: message/rfc822\r\n"
    b"\r\n"
    b"From: sub@domain.example\r\n"
    b"Subject: submsg\r\n"
    b'Content-Type: multipart/alternative; boundary="sub1"\r\n'
    b"\r\n"
    b"--sub1\r\n"
    b"Content-Type: text/html\r\n"
    b"\r\n"
    b"<p>Hello world</p>\r\n"
    b"--sub1--\r\n"
    b"\r\n"
    b"--foo bar--\r\n"
    b"Root MIME epilogue\r\n"
)


def test_folded_boundary_parameter_is_unfolded() -> None:
    """RFC 5322 §2.2.3: unfolding removes the CRLF before the parameters are read (RFC 2045 §5.1),
    so the boundary is ``foo bar`` and the multipart is split on it."""
    root = mime.parse(FOLDED)
    assert len(root.children) == 2
    bs = mime.bodystructure(root)
    assert encoder.encode(encoder.bodystructure(bs, extended=False)) == (
        b'(("TEXT" "X-MYOWN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 7 1)'
        b'("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 164 '
        b'(NIL "submsg" ((NIL NIL "sub" "domain.example")) ((NIL NIL "sub" "domain.example")) '
        b'((NIL NIL "sub" "domain.example")) NIL NIL NIL NIL NIL) '
        b'(("TEXT" "HTML" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 18 1) "ALTERNATIVE") 9) "MIXED")'
    )
    assert (bs.params, mime.section(root, Section((1,)))) == ((("BOUNDARY", "foo bar"),), b"hello\r\n")
    assert mime.section(root, Section((2, 1))) == b"<p>Hello world</p>"
    assert mime.section(root, Section((1,), SectionText.MIME)) == (
        b"Content-Type: text/x-myown; charset=us-ascii\r\n\r\n")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # Dovecot's reading (imaptest fetch-envelope): a comment after a bare addr-spec is the name.
        ("user@domain.example (Real Name)", [("user", "domain.example", "Real Name")]),
        ("u@d.example (first) (last)", [("u", "d.example", "last")]),
        ("a@b.example (A), c@d.example", [("a", "b.example", "A"), ("c", "d.example", None)]),
        # ... and comments inside an address are not part of it (imaptest search-addresses).
        ("<user-from (comment)@ (comment) domain.example>", [("user-from", "domain.example", None)]),
        ("Real <u (c) @ d.example>", [("u", "d.example", "Real")]),
        ('"a (not a comment)"@d.example', [("a (not a comment)", "d.example", None)]),
    ],
)
def test_address_comments(value: str, expected: list[tuple[str, str, str | None]]) -> None:
    assert [(a.mailbox, a.host, a.name) for a in parse_address_list(value)] == expected


def test_address_comment_in_an_empty_group_is_no_address() -> None:
    assert parse_address_list("group:;, group2: (foo) ;") == (
        EnvelopeAddress(None, None, "group", None), EnvelopeAddress(None, None, None, None),
        EnvelopeAddress(None, None, "group2", None), EnvelopeAddress(None, None, None, None),
    )
