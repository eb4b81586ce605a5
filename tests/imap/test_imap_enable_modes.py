"""ENABLE and the session mode (RFC 5161): CONDSTORE's implicit \\Seen (RFC 7162 §3.1.4.1),
UTF8=ACCEPT (RFC 6855) and IMAP4rev2 (RFC 9051) over :mod:`imap.testing`."""

from __future__ import annotations

from imap.testing import MemoryBackend, Transcript

PLAIN = b"From: a@b.test\r\nSubject: hello\r\n\r\nbody\r\n"
LOGIN = """
    S: * OK ...
    C: a LOGIN alice pw
    S: a OK ...
"""
SYSTEM = r"\Answered \Flagged \Deleted \Seen \Draft"


async def test_condstore_implicit_seen_returns_uid_and_modseq() -> None:
    # RFC 7162 §3.1.4.1: a FETCH that sets \Seen by itself (BODY[], not PEEK) answers FLAGS
    # and MODSEQ once CONDSTORE is on; UID FETCH always answers UID (RFC 3501 §6.4.8).
    backend = MemoryBackend()
    for _ in range(2):
        backend.users["alice"].deliver(PLAIN)
    await Transcript(backend).run(LOGIN + r"""
        C: e ENABLE CONDSTORE
        S: * ENABLED CONDSTORE
        S: e OK ENABLE completed
        C: b SELECT INBOX
        S: * FLAGS (...)
        S: * 2 EXISTS
        S: * 2 RECENT
        S: * OK [UNSEEN 1] First unseen
        S: * OK [PERMANENTFLAGS (...)] Limited
        S: * OK [UIDVALIDITY 1] UIDs valid
        S: * OK [UIDNEXT 3] Predicted next UID
        S: * OK [HIGHESTMODSEQ 3] Highest
        S: b OK [READ-WRITE] SELECT completed
        C: c UID FETCH 1 BODY[TEXT]
        S: * 1 FETCH (BODY[TEXT] {6}
        S: body
        S:  UID 1 FLAGS (\Recent \Seen) MODSEQ (4))
        S: c OK FETCH completed
        C: d FETCH 2 (RFC822.TEXT)
        S: * 2 FETCH (RFC822.TEXT {6}
        S: body
        S:  FLAGS (\Recent \Seen) MODSEQ (5))
        S: d OK FETCH completed
        C: f FETCH 2 (BODY[TEXT])
        S: * 2 FETCH (BODY[TEXT] {6}
        S: body
        S: )
        S: f OK FETCH completed
    """)
