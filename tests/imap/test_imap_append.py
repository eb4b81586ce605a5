"""Transcripts for MULTIAPPEND (RFC 3502) and CATENATE (RFC 4469) on :mod:`imap.testing`:
APPENDUID with a uid-set, all messages or none, URL parts by section and partial, BADURL
and TRYCREATE. The live transcripts over the real store are in tests/imap_server."""

from __future__ import annotations

import pytest

from imap.proto.receiver import DEFAULT_APPENDLIMIT
from imap.state import AUTHENTICATED_EXTENSIONS
from imap.testing import MemoryBackend, Transcript

LOGIN = """
    S: * OK [CAPABILITY IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID AUTH=PLAIN] IMAP4rev1 service ready
    C: a LOGIN alice pw
    S: a OK [CAPABILITY IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID IDLE ...APPENDLIMIT=26214400] Logged in
"""
FIRST = b"From: a@b.test\r\nSubject: one\r\n\r\nfirst body\r\n"


def with_one_message() -> tuple[MemoryBackend, Transcript]:
    backend = MemoryBackend(folders=("INBOX", "Archive"))
    backend.users["alice"].deliver(FIRST)
    return backend, Transcript(backend)


def test_both_extensions_are_advertised() -> None:
    assert {"MULTIAPPEND", "CATENATE"} <= set(AUTHENTICATED_EXTENSIONS)


async def test_multiappend_adds_every_message_with_its_own_flags_and_a_uid_set() -> None:
    backend, t = with_one_message()
    # RFC 3502 §6.3.11: each message has its own flags and date; a synchronizing literal is
    # invited for every message; RFC 4315 §3 APPENDUID then carries the uid-set in order.
    await t.run(LOGIN + r"""
        C: b APPEND Archive (\Seen) {3}
        S: + Ready for literal data
        C: abc (\Flagged) " 5-Mar-2026 10:11:12 +0100" {3}
        S: + Ready for literal data
        C: def {3+}
        C: ghi
        S: b OK [APPENDUID 2 1:3] APPEND completed
    """)
    archive = backend.users["alice"].folders["Archive"]
    assert [raw for _, raw in archive.messages.values()] == [b"abc", b"def", b"ghi"]
    assert [set(meta.flags) for meta, _ in archive.messages.values()] == [{"\\Seen"}, {"\\Flagged"}, set()]


async def test_multiappend_stores_nothing_when_one_message_is_refused() -> None:
    backend, t = with_one_message()
    await t.run(LOGIN + """
        C: b APPEND Archive {3+}
        C: abc {3+}
        C: d\x00f
        S: b NO NUL character in message
        C: c APPEND Nowhere {3+}
        C: abc {3+}
        C: def
        S: c NO [TRYCREATE] Destination mailbox does not exist
        C: d STATUS Archive (MESSAGES UIDNEXT)
        S: * STATUS Archive (MESSAGES 0 UIDNEXT 1)
        S: d OK STATUS completed
    """)
    assert backend.users["alice"].folders["Archive"].messages == {}


async def test_catenate_assembles_text_and_url_parts() -> None:
    backend, t = with_one_message()
    # RFC 4469 §5: TEXT parts as sent, URL parts (RFC 5092 relative form) by section and partial.
    await t.run(LOGIN + r"""
        C: b APPEND Archive (\Draft) CATENATE (URL "/INBOX/;UID=1/;SECTION=HEADER" TEXT {7+}
        C: reply
        C: )
        S: b OK [APPENDUID 2 1] APPEND completed
        C: c APPEND Archive CATENATE (URL "/INBOX;UIDVALIDITY=1/;uid=1/;section=TEXT/;partial=6.4") CATENATE (TEXT {2+}
        C: hi URL "/INBOX/;uid=1/;section=1")
        S: c OK [APPENDUID 2 2:3] APPEND completed
    """)
    stored = [raw for _, raw in backend.users["alice"].folders["Archive"].messages.values()]
    assert stored == [b"From: a@b.test\r\nSubject: one\r\n\r\nreply\r\n", b"body", b"hifirst body\r\n"]
    assert set(next(iter(backend.users["alice"].folders["Archive"].messages.values()))[0].flags) == {"\\Draft"}


@pytest.mark.parametrize("url", [
    "/INBOX;UIDVALIDITY=12345/;UID=1",  # another UIDVALIDITY: the message is not that one
    "/INBOX/;UID=9",  # no such message
    "/Nowhere/;UID=1",  # no such mailbox
    "/INBOX/;UID=1/;SECTION=BOGUS",  # not a section
    "imap://other.example/INBOX/;UID=1",  # only the relative form of the same user's mailboxes
    "/INBOX/;UID=1/;PARTIAL=x",
])
async def test_catenate_refuses_a_url_it_cannot_resolve(url: str) -> None:
    backend, t = with_one_message()
    # RFC 4469 §6: NO [BADURL url], and (with MULTIAPPEND) no message is stored at all.
    await t.run(LOGIN + f"""
        C: b APPEND Archive {{3+}}
        C: abc CATENATE (TEXT {{2+}}
        C: hi URL "{url}")
        S: b NO [BADURL {url}] Invalid or unknown CATENATE URL
    """)
    assert backend.users["alice"].folders["Archive"].messages == {}


async def test_catenate_to_a_missing_mailbox_is_trycreate_before_badurl() -> None:
    _, t = with_one_message()
    await t.run(LOGIN + """
        C: b APPEND Nowhere CATENATE (URL "/INBOX;UIDVALIDITY=12345/;UID=1")
        S: b NO [TRYCREATE] Destination mailbox does not exist
    """)


async def test_catenate_result_over_appendlimit_is_toobig() -> None:
    backend = MemoryBackend(folders=("INBOX", "Archive"))
    backend.users["alice"].deliver(b"x" * (DEFAULT_APPENDLIMIT // 2 + 1))
    url = "/INBOX/;UID=1"
    await Transcript(backend).run(LOGIN + f"""
        C: b APPEND Archive CATENATE (URL "{url}" URL "{url}")
        S: b NO [TOOBIG] Message too large
    """)
