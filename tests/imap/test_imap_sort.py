"""SORT (RFC 5256 §3), SORT=DISPLAY (RFC 5957), ESORT (RFC 5267 §3.2): the sort keys, the base
subject (RFC 5256 §2.1) and whole exchanges over :mod:`imap.testing` (imaptest's sort-* tests)."""

from __future__ import annotations

import pytest

from imap.message.sortkeys import base_subject, display_key, mailbox_key
from imap.proto.structure import EnvelopeAddress
from imap.testing import MemoryBackend, Transcript


@pytest.mark.parametrize(
    ("subject", "base"),
    [
        ("a", "A"),
        ("Re: Re: hello", "HELLO"),
        ("Re[2]: Fwd: hello (fwd)", "HELLO"),
        ("[foo] Fwd: [bar] Re: fw: b (fWd)  (fwd)", "B"),
        ("Re: [FWD: c]", "C"),
        ("[xyz]", "[XYZ]"),  # a blob that would leave nothing stays
        ("", ""),
        ("=?iso-8859-1?q?_?=", ""),
        ("Re: =?utf-8?q?b?=", "B"),
        ("=?iso-8859-1?q?RE:_C?=", "C"),
        ("=?us-ascii?b?UmU6IGM=?=", "C"),
        ("Ad: Re: Ad: Re: Ad: x", "AD: RE: AD: RE: AD: X"),
        ("re: [fwd: [fwd: re: [fwd: babylon]]]", "BABYLON"),
        ("b\t (a)", "B (A)"),  # white space runs become one space
        ("=?utf-8?q?=C3=A9t=C3=A9?=", "ÉTÉ"),
    ],
)
def test_base_subject(subject: str, base: str) -> None:
    assert base_subject(subject) == base


def test_address_keys() -> None:
    # RFC 5256 §3: the first address's mailbox; a group's name is its first "mailbox".
    assert mailbox_key((EnvelopeAddress(None, None, "User2", "domain2.example"),)) == "USER2"
    assert mailbox_key((EnvelopeAddress(None, None, "user2", None),
                        EnvelopeAddress(None, None, "blah", "d.example"))) == "USER2"
    assert mailbox_key(()) == ""
    # RFC 5957 §3: the display name (RFC 2047 decoded), else the address.
    assert display_key((EnvelopeAddress("=?iso-8859-1?q?foo_aar?=", None, "e", "f.example"),)) == "FOO AAR"
    assert display_key((EnvelopeAddress(None, None, "b", "c.example"),)) == "B@C.EXAMPLE"
    assert display_key((EnvelopeAddress(None, None, "empty", None), EnvelopeAddress(None, None, None, None))) == "EMPTY"
    assert display_key(()) == ""


def _message(subject: str, sender: str, date: str, size: int) -> bytes:
    return (f"From: {sender}\r\nSubject: {subject}\r\nDate: {date}\r\n\r\n".encode() + b"x" * size)


LOGIN = """
    S: * OK ...
    C: a LOGIN alice pw
    S: a OK ...
    C: b SELECT INBOX
    S: * FLAGS ...
    S: * 4 EXISTS
    S: * 4 RECENT
    S: * OK [UNSEEN 1] First unseen
    S: * OK [PERMANENTFLAGS ...
    S: * OK [UIDVALIDITY 1] UIDs valid
    S: * OK [UIDNEXT 5] Predicted next UID
    S: * OK [HIGHESTMODSEQ 5] Highest
    S: * OK [MAILBOXID (...)] Mailbox ID
    S: b OK [READ-WRITE] SELECT completed
"""


async def test_sort_exchanges() -> None:
    # Every answer below is Debian Dovecot 2.3's on the same four messages (INTERNALDATE
    # 02-Mar-2026 09:00:00 +0000), but KOI8-R, which Dovecot converts and this server refuses.
    backend = MemoryBackend()
    for message in (
        _message("Re: beta", "Zed <a@x.example>", "Mon, 02 Mar 2026 10:00:00 +0100", 300),
        _message("alpha", "b@x.example", "Mon, 02 Mar 2026 08:00:00 +0000", 100),
        _message("[list] Beta", "=?utf-8?q?Andr=C3=A9?= <c@x.example>", "Mon, 02 Mar 2026 09:30:00 +0000", 200),
        _message("Fwd: alpha", "d@x.example", "not a date", 150),
    ):
        backend.users["alice"].deliver(message)
    await Transcript(backend).run(LOGIN + r"""
        C: c SORT (SUBJECT) UTF-8 ALL
        S: * SORT 2 4 1 3
        S: c OK SORT completed
        C: d SORT (REVERSE SUBJECT SIZE) US-ASCII ALL
        S: * SORT 3 1 2 4
        S: d OK SORT completed
        C: e UID SORT (FROM) UTF-8 2:4
        S: * SORT 2 3 4
        S: e OK SORT completed
        C: f SORT (DISPLAYFROM) UTF-8 ALL
        S: * SORT 3 2 4 1
        S: f OK SORT completed
        C: g SORT (DATE) UTF-8 ALL
        S: * SORT 2 1 4 3
        S: g OK SORT completed
        C: h SORT (REVERSE ARRIVAL) UTF-8 UNSEEN
        S: * SORT 1 2 3 4
        S: h OK SORT completed
        C: i SORT RETURN (MIN MAX ALL COUNT) (REVERSE SUBJECT) UTF-8 ALL
        S: * ESEARCH (TAG "i") MIN 1 MAX 4 ALL 1,3,2,4 COUNT 4
        S: i OK SORT completed
        C: j SORT RETURN (ALL) (REVERSE DATE) UTF-8 ALL
        S: * ESEARCH (TAG "j") ALL 3,1,4,2
        S: j OK SORT completed
        C: k SORT (SUBJECT) KOI8-R ALL
        S: k NO [BADCHARSET (US-ASCII UTF-8)] Unsupported charset
    """)
