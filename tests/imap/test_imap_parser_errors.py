"""Malformed commands: a tagged BAD (or NO) with a generic text, never Python exception text."""

from __future__ import annotations

import pytest

from imap.proto.commands import Noop
from imap.proto.errors import BadCommand, CommandFailed, ImapError
from imap.proto.receiver import CommandReceiver, NeedLiteral

BAD = [
    (b"a FOO\r\n", b"a BAD Unknown command\r\n"),
    (b"a UID NOOP\r\n", b"a BAD Unknown command\r\n"),
    (b"a LOGIN alice\r\n", b"a BAD Syntax error\r\n"),
    (b"a NOOP extra\r\n", b"a BAD Unexpected characters at end of command\r\n"),
    (b"a SELECT\r\n", b"a BAD Syntax error\r\n"),
    (b"a SELECT INBOX (XRESYNC)\r\n", b"a BAD Unknown SELECT parameter\r\n"),
    (b"a SELECT INBOX (QRESYNC)\r\n", b"a BAD Syntax error\r\n"),  # RFC 7162 §3.2.5: QRESYNC needs its list
    (b"a SELECT &Jjo! (XRESYNC)\r\n", b"a BAD Unknown SELECT parameter\r\n"),  # syntax first
    (b"a FETCH 0 FLAGS\r\n", b"a BAD Invalid sequence set\r\n"),
    (b"a FETCH 1 FOO\r\n", b"a BAD Unknown FETCH item\r\n"),
    (b"a FETCH 1 BODY[MIME]\r\n", b"a BAD MIME needs a part number\r\n"),
    (b"a FETCH 1 BODY[HEADER.FIELDS ()]\r\n", b"a BAD Empty header list\r\n"),
    (b"a FETCH 1 BODY[0]\r\n", b"a BAD Invalid section part\r\n"),
    (b"a FETCH 1 BINARY[1.TEXT]\r\n", b"a BAD Invalid section\r\n"),  # RFC 3516 §6 section-binary
    (b"a FETCH 1 BINARY.SIZE[1]<0.5>\r\n", b"a BAD Unexpected characters at end of command\r\n"),
    (b"a FETCH 1 BINARY.SIZE\r\n", b"a BAD Unknown FETCH item\r\n"),
    (b"a LOGIN ~{1}\r\nx y\r\n", b"a BAD Syntax error\r\n"),  # literal8 only where RFC 3516 allows it
    (b"a FETCH 1 BODY[]<0.0>\r\n", b"a BAD Invalid number\r\n"),
    (b"a FETCH 1 (FLAGS\r\n", b"a BAD Syntax error\r\n"),
    (b"a STORE 1 FLAGS.LOUD (\\Seen)\r\n", b"a BAD Invalid STORE item\r\n"),
    (b"a SEARCH FOO\r\n", b"a BAD Unknown search key\r\n"),
    (b"a SEARCH SINCE 31-Feb-2020\r\n", b"a BAD Invalid date\r\n"),
    (b"a SEARCH " + b"NOT " * 100 + b"ALL\r\n", b"a BAD Search too deeply nested\r\n"),
    (b"a SEARCH " + b"(" * 100 + b"ALL" + b")" * 100 + b"\r\n", b"a BAD Search too deeply nested\r\n"),
    (b"a SEARCH RETURN (SAVE save) ALL\r\n", b"a BAD Unknown SEARCH return option\r\n"),  # twice
    (b"a SORT RETURN (SAVE) (DATE) UTF-8 ALL\r\n", b"a BAD Unknown SEARCH return option\r\n"),  # no CONTEXT=SORT
    # RFC 5267 §4.4 partial-range (imaptest's search-partial: "1", "1:*", "*:1"); RFC 9394 negatives
    (b"a SEARCH RETURN (PARTIAL 1) ALL\r\n", b"a BAD Invalid PARTIAL range\r\n"),
    (b"a SEARCH RETURN (ALL PARTIAL 1:2) ALL\r\n", b"a BAD PARTIAL conflicts with ALL\r\n"),
    (b"a SEARCH RETURN (PARTIAL) ALL\r\n", b"a BAD Invalid PARTIAL range\r\n"),
    (b"a SEARCH RETURN (PARTIAL 0:3) ALL\r\n", b"a BAD Invalid PARTIAL range\r\n"),
    (b"a SEARCH RETURN (PARTIAL -1:3) ALL\r\n", b"a BAD Invalid PARTIAL range\r\n"),
    (b"a SEARCH RETURN (PARTIAL 1:4294967296) ALL\r\n", b"a BAD Invalid PARTIAL range\r\n"),
    (b"a SEARCH RETURN (PARTIAL 1:*) ALL\r\n", b"a BAD Syntax error\r\n"),
    (b"a SEARCH RETURN (PARTIAL *:1) ALL\r\n", b"a BAD Syntax error\r\n"),
    # RFC 5182 §3: "$" is a whole sequence-set, never part of one
    (b"a FETCH $,1 FLAGS\r\n", b"a BAD Syntax error\r\n"),
    (b"a FETCH 1,$ FLAGS\r\n", b"a BAD Invalid sequence set\r\n"),
    (b"a SEARCH UID $:4\r\n", b"a BAD Unexpected characters at end of command\r\n"),
    (b"a CANCELUPDATE\r\n", b"a BAD Syntax error\r\n"),  # RFC 5267 §4.3: 1*(SP tag-string)
    (b"a CANCELUPDATE tag\r\n", b"a BAD Syntax error\r\n"),  # a tag-string is a string
    (b"a SEARCH RETURN ALL\r\n", b"a BAD Syntax error\r\n"),
    (b"a SORT (ARRIVAL) ALL\r\n", b"a BAD Syntax error\r\n"),  # the charset is required (RFC 5256 §3)
    (b"a SORT () UTF-8 ALL\r\n", b"a BAD Syntax error\r\n"),
    (b"a SORT (REVERSE) UTF-8 ALL\r\n", b"a BAD Unknown SORT key\r\n"),
    (b"a SORT (NAME) UTF-8 ALL\r\n", b"a BAD Unknown SORT key\r\n"),
    (b"a STATUS INBOX (BIGNESS)\r\n", b"a BAD Unknown STATUS item\r\n"),
    (b"a STATUS INBOX ()\r\n", b"a BAD Empty STATUS item list\r\n"),
    (b'a APPEND INBOX "bad date" {1}\r\nx\r\n', b"a BAD Invalid date-time\r\n"),
    (b"a APPEND INBOX\r\n", b"a BAD Syntax error\r\n"),
    (b"a APPEND INBOX {1+}\r\nx (\\Seen)\r\n", b"a BAD Syntax error\r\n"),  # RFC 3502
    (b"a APPEND INBOX {1+}\r\nx \r\n", b"a BAD APPEND needs a literal\r\n"),
    (b"a APPEND INBOX CATENATE ()\r\n", b"a BAD Syntax error\r\n"),  # RFC 4469 §5: 1*cat-part
    (b"a APPEND INBOX CATENATE (BODY {1+}\r\nx)\r\n", b"a BAD Syntax error\r\n"),
    (b"a APPEND INBOX CATENATE (URL x\r\n", b"a BAD Syntax error\r\n"),
    (b"a AUTHENTICATE PLAIN !!!\r\n", b"a BAD Syntax error\r\n"),
    (b"a AUTHENTICATE PLAIN AGFsaWNlAHB\r\n", b"a BAD Invalid base64\r\n"),
    (b'a LOGIN "unterminated\r\n', b"a BAD Unterminated quoted string\r\n"),
    (b"a LOGIN {3}\r\na\x00b x\r\n", b"a BAD NUL in literal\r\n"),
    (b"a LOGIN \xff\xfe x\r\n", b"a BAD Syntax error\r\n"),
    (b"a ENABLE\r\n", b"a BAD ENABLE needs a capability\r\n"),
    (b"a ID (" + b'"k" "v" ' * 31 + b")\r\n", b"a BAD Too many ID parameters\r\n"),
    (b"+tag NOOP\r\n", b"* BAD Syntax error\r\n"),
    (b"NOOP\r\n", b"NOOP BAD Syntax error\r\n"),
]


@pytest.mark.parametrize(("wire", "response"), BAD, ids=[w[:30].decode("latin-1") for w, _ in BAD])
def test_bad_commands(wire: bytes, response: bytes) -> None:
    receiver = CommandReceiver(max_literal=10_000)
    receiver.feed(wire)
    with pytest.raises(ImapError) as info:
        while isinstance(receiver.next_event(), NeedLiteral):
            pass
    assert isinstance(info.value, BadCommand)
    assert info.value.response() == response
    assert receiver.buffered == 0


def test_bad_charset_is_no_with_code() -> None:
    receiver = CommandReceiver()
    receiver.feed(b"a SEARCH CHARSET KOI8-R TEXT x\r\n")
    with pytest.raises(CommandFailed) as info:
        receiver.next_event()
    assert info.value.response() == b"a NO [BADCHARSET (US-ASCII UTF-8)] Unsupported charset\r\n"


# A name that is not valid modified UTF-7 is well-formed syntax naming no mailbox: NO, as
# Dovecot answers (imaptest's atoms test), once the whole command has been parsed.
NOT_MUTF7 = [
    b"a SELECT &Jjo!\r\n",
    b"a SELECT &AGE-\r\n",  # 'a' must not be encoded
    b"a EXAMINE \"!#$&'+,-.0123456789:;<=>?@^_`|[}\"\r\n",
    b"a CREATE a&ZZ\r\n",
    b"a CREATE a&ZZ (USE (\\Sent))\r\n",
    b"a DELETE a&ZZ\r\n",
    b"a RENAME INBOX/x a&ZZ\r\n",
    b"a STATUS a&ZZ (MESSAGES)\r\n",
    b"a APPEND a&ZZ {1+}\r\nx\r\n",
    b"a UID COPY 1 a&ZZ\r\n",
]


@pytest.mark.parametrize("wire", NOT_MUTF7, ids=[w[:24].decode("latin-1") for w in NOT_MUTF7])
def test_a_name_that_is_not_modified_utf7_is_refused_with_no(wire: bytes) -> None:
    receiver = CommandReceiver()
    receiver.feed(wire + b"b NOOP\r\n")
    with pytest.raises(CommandFailed) as info:
        while isinstance(receiver.next_event(), NeedLiteral):
            pass
    assert info.value.response() == b"a NO Mailbox name is not valid modified UTF-7\r\n"
    assert receiver.next_event() == Noop("b")


def test_receiver_recovers_after_a_bad_command() -> None:
    receiver = CommandReceiver()
    receiver.feed(b"a FOO\r\nb NOOP\r\n")
    with pytest.raises(BadCommand):
        receiver.next_event()
    assert receiver.next_event() == Noop("b")
