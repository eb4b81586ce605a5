"""QRESYNC (RFC 7162 §3.2) over :mod:`imap.testing`: ENABLE, SELECT / EXAMINE with the
QRESYNC parameter (VANISHED (EARLIER), changed messages, a stale UIDVALIDITY), UID FETCH
with VANISHED, VANISHED instead of EXPUNGE (EXPUNGE, UID EXPUNGE, MOVE, another session's
expunge seen at NOOP), ``[CLOSED]``, and the BADs of §3.2.5 / §3.2.6."""

from __future__ import annotations

from imap.testing import MemoryBackend, Transcript

LOGIN = """
    S: * OK ...
    C: a LOGIN alice pw
    S: a OK ...
"""
PLAIN = b"From: a@example.test\r\nSubject: s\r\n\r\nbody\r\n"


def _backend(count: int) -> MemoryBackend:
    backend = MemoryBackend(folders=("INBOX", "Archive"))
    for _ in range(count):
        backend.users["alice"].deliver(PLAIN)  # UIDs 1.., modseqs 2..
    return backend


async def test_qresync_must_be_enabled_first() -> None:
    await Transcript(_backend(1)).run(LOGIN + r"""
        C: b SELECT INBOX (QRESYNC (1 1))
        S: b BAD QRESYNC is not enabled
        C: c SELECT INBOX
        S: * FLAGS ...
        S: * 1 EXISTS
        S: * 1 RECENT
        S: * OK [UNSEEN 1] First unseen
        S: * OK [PERMANENTFLAGS ...] Limited
        S: * OK [UIDVALIDITY 1] UIDs valid
        S: * OK [UIDNEXT 2] Predicted next UID
        S: * OK [HIGHESTMODSEQ 2] Highest
        S: * OK [MAILBOXID (...)] Mailbox ID
        S: c OK [READ-WRITE] SELECT completed
        C: d UID FETCH 1:* FLAGS (CHANGEDSINCE 1 VANISHED)
        S: d BAD QRESYNC is not enabled
        C: e FETCH 1:* FLAGS (CHANGEDSINCE 1 VANISHED)
        S: e BAD VANISHED needs CHANGEDSINCE in UID FETCH
        C: f UID FETCH 1:* FLAGS (VANISHED)
        S: f BAD VANISHED needs CHANGEDSINCE in UID FETCH
        C: g ENABLE QRESYNC
        S: g BAD Command not valid in this state
    """)


async def test_vanished_replaces_expunge_and_select_resynchronises() -> None:
    backend = _backend(4)
    other = Transcript(backend)
    await other.run(LOGIN + """
        C: b SELECT INBOX
        S: * FLAGS ...
        S: * 4 EXISTS
        S: * 4 RECENT
        S: * OK ...
        S: * OK ...
        S: * OK ...
        S: * OK ...
        S: * OK ...
        S: * OK ...
        S: b OK [READ-WRITE] SELECT completed
    """)
    client = Transcript(backend)
    await client.run(LOGIN + r"""
        C: b ENABLE QRESYNC
        S: * ENABLED QRESYNC
        S: b OK ENABLE completed
        C: c SELECT INBOX
        S: * FLAGS ...
        S: * 4 EXISTS
        S: * 0 RECENT
        S: * OK [UNSEEN 1] First unseen
        S: * OK [PERMANENTFLAGS ...] Limited
        S: * OK [UIDVALIDITY 1] UIDs valid
        S: * OK [UIDNEXT 5] Predicted next UID
        S: * OK [HIGHESTMODSEQ 5] Highest
        S: * OK [MAILBOXID (...)] Mailbox ID
        S: c OK [READ-WRITE] SELECT completed
        C: d STORE 2 +FLAGS.SILENT (\Deleted)
        S: * 2 FETCH (UID 2 FLAGS (\Deleted) MODSEQ (6))
        S: d OK STORE completed
        C: e EXPUNGE
        S: * VANISHED 2
        S: e OK [HIGHESTMODSEQ 7] Expunged
        C: f UID MOVE 4 Archive
        S: * OK [COPYUID 2 4 1] Moved
        S: * VANISHED 4
        S: f OK MOVE completed
    """)
    # Another session expunges UID 1: this one hears of it as VANISHED at its next NOOP.
    await other.run(r"""
        C: c UID STORE 1 +FLAGS.SILENT (\Deleted)
        S: * 4 EXPUNGE
        S: * 2 EXPUNGE
        S: c OK STORE completed
        C: d UID EXPUNGE 1
        S: * 1 EXPUNGE
        S: d OK EXPUNGE completed
    """)
    await client.run(r"""
        C: g NOOP
        S: * VANISHED 1
        S: g OK NOOP completed
        C: h UID FETCH 1:* FLAGS (CHANGEDSINCE 5 VANISHED)
        S: * VANISHED (EARLIER) 1:2,4
        S: h OK FETCH completed
        C: i STORE 1 +FLAGS (\Flagged)
        S: * 1 FETCH (UID 3 FLAGS (\Flagged) MODSEQ (12))
        S: i OK STORE completed
        C: j UID FETCH 2:3 FLAGS (VANISHED CHANGEDSINCE 1)
        S: * VANISHED (EARLIER) 2
        S: * 1 FETCH (FLAGS (\Flagged) UID 3 MODSEQ (12))
        S: j OK FETCH completed
        C: k EXAMINE INBOX (QRESYNC (1 5 1:4))
        S: * OK [CLOSED] Previous mailbox closed
        S: * FLAGS ...
        S: * 1 EXISTS
        S: * 0 RECENT
        S: * OK [UNSEEN 1] First unseen
        S: * OK [PERMANENTFLAGS ()] Limited
        S: * OK [UIDVALIDITY 1] UIDs valid
        S: * OK [UIDNEXT 5] Predicted next UID
        S: * OK [HIGHESTMODSEQ 12] Highest
        S: * OK [MAILBOXID (...)] Mailbox ID
        S: * VANISHED (EARLIER) 1:2,4
        S: * 1 FETCH (UID 3 FLAGS (\Flagged) MODSEQ (12))
        S: k OK [READ-ONLY] EXAMINE completed
        C: l SELECT INBOX (QRESYNC (1 8 3:4 (1:2 3:4)))
        S: * OK [CLOSED] Previous mailbox closed
        S: * FLAGS ...
        S: * 1 EXISTS
        S: * 0 RECENT
        S: * OK ...
        S: * OK ...
        S: * OK ...
        S: * OK ...
        S: * OK [HIGHESTMODSEQ 12] Highest
        S: * OK [MAILBOXID (...)] Mailbox ID
        S: * VANISHED (EARLIER) 4
        S: * 1 FETCH (UID 3 FLAGS (\Flagged) MODSEQ (12))
        S: l OK [READ-WRITE] SELECT completed
        C: m SELECT INBOX (QRESYNC (77 1))
        S: * OK [CLOSED] Previous mailbox closed
        S: * FLAGS ...
        S: * 1 EXISTS
        S: * 0 RECENT
        S: * OK ...
        S: * OK ...
        S: * OK ...
        S: * OK ...
        S: * OK [HIGHESTMODSEQ 12] Highest
        S: * OK [MAILBOXID (...)] Mailbox ID
        S: m OK [READ-WRITE] SELECT completed
        C: n SELECT INBOX (QRESYNC (1 1 (1:2 1)))
        S: n BAD Invalid sequence match data
    """)
    await client.close()
    await other.close()
