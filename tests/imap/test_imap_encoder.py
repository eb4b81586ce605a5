"""Encoder, modified UTF-7, dates and sequence sets."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imap.proto import encoder as e
from imap.proto import mutf7, replies
from imap.proto.dates import format_date_time, parse_date, parse_date_time
from imap.proto.errors import BadCommand, Bye, Code, CommandFailed, ProtocolLimit
from imap.proto.seqset import SequenceSet, format_uids

# RFC 3501 §5.1.3 example and a few more.
MUTF7 = [
    ("~peter/mail/台北/日本語", b"~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
    ("Entwürfe", b"Entw&APw-rfe"),
    ("A&B", b"A&-B"),
    ("Éléments envoyés", b"&AMk-l&AOk-ments envoy&AOk-s"),
    ("", b""),
    ("😀", b"&2D3eAA-"),
]


@pytest.mark.parametrize(("text", "wire"), MUTF7)
def test_mutf7_examples(text: str, wire: bytes) -> None:
    assert mutf7.encode(text) == wire
    assert mutf7.decode(wire) == text


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_mutf7_round_trip(text: str) -> None:
    text = text.encode("utf-16-be", "surrogatepass").decode("utf-16-be", "replace")
    assert mutf7.decode(mutf7.encode(text)) == text


@pytest.mark.parametrize("wire", [b"&Jjo", b"&AGE-", b"&U,BTFw-&ZeVnLIqe-", b"a\x80", b"&=-"])
def test_mutf7_rejects_malformed(wire: bytes) -> None:
    with pytest.raises(mutf7.Malformed):
        mutf7.decode(wire)


def test_strings_quoted_or_literal() -> None:
    assert e.string("hello") == b'"hello"'
    assert e.string('a "b" \\c') == b'"a \\"b\\" \\\\c"'
    assert e.string("été") == b"{5}\r\n\xc3\xa9t\xc3\xa9"
    assert e.string("a\r\nb") == b"{4}\r\na\r\nb"
    assert e.string("x" * 2000).startswith(b"{2000}\r\n")
    assert e.nstring(None) == b"NIL"
    assert e.astring("INBOX") == b"INBOX"
    assert e.astring("nil") == b'"nil"'
    assert e.astring("a b") == b'"a b"'
    assert e.mailbox("台北") == b"&U,BTFw-"


def test_encode_values() -> None:
    value: e.Value = [None, 1, "s", b"b", e.Atom("\\Seen"), [e.Literal(b"x")], e.Raw(b"RAW")]
    assert e.encode(value) == b'(NIL 1 "s" "b" \\Seen ({1}\r\nx) RAW)'
    with pytest.raises(TypeError):
        e.encode(True)


def test_responses_cannot_inject_lines() -> None:
    assert e.untagged(b"ENABLED", "X\r\n* BYE") == b"* ENABLED X  * BYE\r\n"
    assert replies.SELECT_COMPLETED.line("a1") == b"a1 OK [READ-WRITE] SELECT completed\r\n"
    assert replies.PREDICTED_UIDNEXT.with_arg("4\r\n* BYE").line() == b"* OK [UIDNEXT 4  * BYE] Predicted next UID\r\n"
    assert replies.READY_FOR_LITERAL.line("ignored") == b"+ Ready for literal data\r\n"
    assert e.continuation_data(b"") == b"+ \r\n"
    assert e.flags(["\\Seen", "$Junk"]) == b"(\\Seen $Junk)"
    assert e.fetch_response(3, [("UID", 7), ("FLAGS", e.Raw(b"()"))]) == b"* 3 FETCH (UID 7 FLAGS ())\r\n"


def test_errors_know_their_response() -> None:
    assert BadCommand(replies.SYNTAX_ERROR).response("a") == b"a BAD Syntax error\r\n"
    exc = CommandFailed(replies.TRYCREATE, detail="KeyError('x')")
    assert exc.response("a") == b"a NO [TRYCREATE] Destination mailbox does not exist\r\n"
    assert b"KeyError" not in exc.response("a")
    # A backend's own refusal (plain text and code), cleaned of CR/LF:
    assert CommandFailed("x\r\ny", code=Code.CANNOT).response("t") == b"t NO [CANNOT] x  y\r\n"
    assert ProtocolLimit(replies.LITERAL_TOO_LARGE).response() == b"* BAD [TOOBIG] Literal too large\r\n"
    assert Bye(replies.LISTENER_FULL).response("a") == b"* BYE [UNAVAILABLE] Too many connections, try again later\r\n"
    assert Bye(replies.LOGGING_OUT).close_connection
    unsupported = CommandFailed(replies.UNSUPPORTED_CHARSET, code_arg="(UTF-8)")
    assert unsupported.response("s") == b"s NO [BADCHARSET (UTF-8)] Unsupported charset\r\n"


@pytest.mark.parametrize(("cls", "reply"), [(CommandFailed, replies.SYNTAX_ERROR), (BadCommand, replies.TRYCREATE),
                                            (ProtocolLimit, replies.MESSAGE_TOO_LARGE)])
def test_an_error_carries_only_a_reply_of_its_own_status(cls: type[CommandFailed], reply: replies.Reply) -> None:
    with pytest.raises(ValueError):
        cls(reply)


def test_dates() -> None:
    value = parse_date_time("17-Jul-1996 02:44:25 -0700")
    assert format_date_time(value) == "17-Jul-1996 02:44:25 -0700"
    assert parse_date_time(" 1-Feb-2000 00:00:00 +0000").day == 1
    assert format_date_time(dt.datetime(2024, 3, 5, 1, 2, 3)) == "05-Mar-2024 01:02:03 +0000"
    assert parse_date("1-feb-1994") == dt.date(1994, 2, 1)
    for bad in ["17-Foo-1996 02:44:25 -0700", "32-Jul-1996 02:44:25 -0700", "17-Jul-1996"]:
        with pytest.raises(BadCommand):
            parse_date_time(bad)


@pytest.mark.parametrize(
    ("text", "maximum", "members"),
    [
        ("1", 5, [1]),
        ("1,3:5,7:*", 9, [1, 3, 4, 5, 7, 8, 9]),
        ("*", 4, [4]),
        ("5:2", 9, [2, 3, 4, 5]),
        ("*:3", 5, [3, 4, 5]),
        ("1:*", 0, []),
        ("2,1,2:3", 9, [1, 2, 3]),
    ],
)
def test_seqset_resolution(text: str, maximum: int, members: list[int]) -> None:
    seqset = SequenceSet.parse(text)
    assert list(seqset.iter(maximum)) == members
    assert str(seqset) == text


def test_seqset_uid_star_includes_last_uid() -> None:
    # RFC 3501 §6.4.8: 559:* includes the last message even when 559 > every UID.
    assert SequenceSet.parse("559:*").filter([10, 20, 500], 500) == [500]
    assert SequenceSet.parse("1:100").filter([10, 200], 200) == [10]
    assert SequenceSet.parse("3000:3002").resolve(10) == [(3000, 3002)]


@pytest.mark.parametrize("text", ["", "0", "1:", ":1", "a", "1,,2", "01", "4294967296", "1:2:3"])
def test_seqset_syntax_errors(text: str) -> None:
    with pytest.raises(BadCommand):
        SequenceSet.parse(text)


def test_seqset_sequence_numbers_beyond_exists() -> None:
    SequenceSet.parse("1:*").check_sequence_numbers(3)
    with pytest.raises(BadCommand):
        SequenceSet.parse("4").check_sequence_numbers(3)
    assert format_uids([5, 1, 2, 3, 9]) == "1:3,5,9"
    assert str(SequenceSet.of(4, 1, 2)) == "1:2,4"


def test_envelope_address_lists_have_no_space_between_addresses() -> None:
    # RFC 3501 §9: env-to = "(" 1*address ")" / nil, with no SP between the addresses.
    from imap.proto.structure import Envelope, EnvelopeAddress
    two = (EnvelopeAddress("A", None, "a", "x.test"), EnvelopeAddress(None, None, "b", "x.test"))
    wire = e.encode(e.envelope(Envelope(to=two)))
    assert b'(("A" NIL "a" "x.test")(NIL NIL "b" "x.test"))' in wire
