"""NOTIFY (RFC 5465) over :mod:`imap.testing`: the initial STATUS of ``NOTIFY SET STATUS``
(imaptest's notify test), what a session hears while idle between commands (the selected
mailbox's EXISTS / FETCH / EXPUNGE and MessageNew's fetch attributes, STATUS for the others,
LIST for MailboxName and SubscriptionChange), ``selected-delayed``, ``NOTIFY NONE``, the
BAD / NO [BADEVENT] answers; and a client that sends NOTIFY and SELECT (QRESYNC) one byte
at a time."""

from __future__ import annotations

import asyncio

from imap.testing import MemoryBackend, Transcript

LOGIN = """
    S: * OK ...
    C: a LOGIN alice pw
    S: a OK ...
"""
PLAIN = b"From: a@example.test\r\nSubject: s\r\n\r\nbody\r\n"
EVERYTHING = "(personal (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange))"
SELECT_INBOX = """
    S: * FLAGS ...
    S: * 1 EXISTS
    S: * 1 RECENT
    S: * OK ...
    S: * OK ...
    S: * OK ...
    S: * OK ...
    S: * OK ...
    S: * OK ...
"""


def _backend() -> MemoryBackend:
    backend = MemoryBackend(folders=("INBOX", "Archive"))
    backend.users["alice"].deliver(PLAIN)  # INBOX UID 1, modseq 2
    backend.users["alice"].deliver(PLAIN, folder="Archive")  # Archive UID 1, modseq 3
    return backend


async def test_initial_status_as_imaptest_checks_it() -> None:
    await Transcript(_backend()).run(LOGIN + """
        C: b NOTIFY SET STATUS (mailboxes Archive (MessageExpunge))
        S: * STATUS Archive (MESSAGES 1 UIDNEXT 2 UIDVALIDITY 2 UNSEEN 1)
        S: b OK NOTIFY completed
        C: c NOTIFY SET STATUS (mailboxes (Archive INBOX) (FlagChange))
        S: * STATUS INBOX (MESSAGES 1 UIDNEXT 2 UIDVALIDITY 1 UNSEEN 1 HIGHESTMODSEQ 2)
        S: * STATUS Archive (MESSAGES 1 UIDNEXT 2 UIDVALIDITY 2 UNSEEN 1 HIGHESTMODSEQ 3)
        S: c OK NOTIFY completed
        C: d NOTIFY SET (mailboxes Archive (MessageNew MessageExpunge FlagChange))
        S: d OK NOTIFY completed
        C: e SELECT INBOX
    """ + SELECT_INBOX + """
        S: e OK [READ-WRITE] SELECT completed
        C: f NOTIFY SET STATUS (personal (MessageNew))
        S: * STATUS Archive (MESSAGES 1 UIDNEXT 2 UIDVALIDITY 2 UNSEEN 1)
        S: f OK NOTIFY completed
        C: g NOTIFY NONE
        S: g OK NOTIFY completed
    """)


async def test_bad_notify_commands() -> None:
    await Transcript(_backend()).run("""
        S: * OK ...
        C: a NOTIFY NONE
        S: a BAD Command not valid in this state
        C: b LOGIN alice pw
        S: b OK ...
        C: c NOTIFY SET (selected (MessageNew))
        S: c BAD Invalid NOTIFY events
        C: d NOTIFY SET (selected (FlagChange))
        S: d BAD Invalid NOTIFY events
        C: e NOTIFY SET (personal (MessageNew (UID)))
        S: e BAD Invalid NOTIFY events
        C: f NOTIFY SET (selected NONE) (selected-delayed NONE)
        S: f BAD Unknown or repeated NOTIFY filter
        C: g NOTIFY SET (nowhere (MessageNew))
        S: g BAD Unknown or repeated NOTIFY filter
        C: h NOTIFY SET (personal (MessageNew Unheard))
        S: h BAD Invalid NOTIFY events
        C: i NOTIFY SET (personal ())
        S: i BAD Syntax error
        C: j NOTIFY SET (personal (AnnotationChange MessageNew))
        S: j NO [BADEVENT (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange)] Unsupported ...
        C: k NOTIFY SET (subtree (MessageNew))
        S: k BAD Syntax error
        C: l NOTIFY RESET
        S: l BAD Syntax error
        C: m NOTIFY SET (selected (MessageNew (UID BODY.PEEK[HEADER]) MessageExpunge)) (inboxes NONE)
        S: m OK NOTIFY completed
    """)


async def test_changes_reach_an_idle_client() -> None:
    backend = _backend()
    mailboxes = backend.users["alice"]
    client, other = Transcript(backend), Transcript(backend)
    await other.run(LOGIN)
    await client.run(LOGIN + r"""
        C: b NOTIFY SET (selected (MessageNew (UID FLAGS) MessageExpunge FlagChange)) """ + EVERYTHING + """
        S: b OK NOTIFY completed
        C: c SELECT INBOX
    """ + SELECT_INBOX + """
        S: c OK [READ-WRITE] SELECT completed
    """)
    mailboxes.deliver(PLAIN)  # INBOX UID 2: no command from the client, yet it hears of it
    await client.run(r"""
        S: * 2 EXISTS
        S: * 2 RECENT
        S: * 2 FETCH (UID 2 FLAGS (\Recent))
    """)
    mailboxes.deliver(PLAIN, folder="Archive")
    await client.run("S: * STATUS Archive (MESSAGES 2 UIDNEXT 3 UNSEEN 2)")
    await other.run(r"""
        C: b CREATE Projects
        S: b OK [MAILBOXID (...)] CREATE completed
    """)
    await client.run(r'S: * LIST (\HasNoChildren) "/" Projects')
    await other.run(r"""
        C: c RENAME Projects Plans
        S: c OK RENAME completed
    """)
    await client.run(r'S: * LIST (\HasNoChildren) "/" Plans ("OLDNAME" (Projects))')
    await other.run(r"""
        C: d DELETE Plans
        S: d OK DELETE completed
        C: e UNSUBSCRIBE Archive
        S: e OK UNSUBSCRIBE completed
    """)
    await client.run(r"""
        S: * LIST (\NonExistent) "/" Plans
        S: * LIST (\HasNoChildren) "/" Archive
    """)
    await other.run(r"""
        C: f SELECT Archive
        S: * FLAGS ...
        S: * 2 EXISTS
        S: * 2 RECENT
        S: * OK ...
        S: * OK ...
        S: * OK ...
        S: * OK ...
        S: * OK ...
        S: * OK ...
        S: f OK [READ-WRITE] SELECT completed
        C: g STORE 1 +FLAGS.SILENT (\Seen)
        S: g OK STORE completed
    """)
    await client.run("S: * STATUS Archive (UNSEEN 1)")
    await other.run(r"""
        C: h SELECT INBOX
        S: * FLAGS ...
        S: * 2 EXISTS
        S: * 0 RECENT
        S: * OK ...
        S: * OK ...
        S: * OK ...
        S: * OK ...
        S: * OK ...
        S: * OK ...
        S: h OK [READ-WRITE] SELECT completed
        C: i STORE 1 +FLAGS.SILENT (\Deleted)
        S: i OK STORE completed
    """)
    await client.run(r"S: * 1 FETCH (FLAGS (\Recent \Deleted))")
    await other.run("""
        C: j EXPUNGE
        S: * 1 EXPUNGE
        S: j OK EXPUNGE completed
    """)
    await client.run("S: * 1 EXPUNGE")  # "selected": expunges are pushed too (RFC 5465 §5.1)
    await client.run("""
        C: d NOTIFY SET (selected-delayed (MessageNew MessageExpunge))
        S: d OK NOTIFY completed
    """)
    await other.run(r"""
        C: k STORE 1 +FLAGS.SILENT (\Deleted)
        S: k OK STORE completed
    """)
    await asyncio.sleep(0.3)
    assert client.take() == b""  # FlagChange is not watched: the flag waits for a command
    await other.run(r"""
        C: l EXPUNGE
        S: * 1 EXPUNGE
        S: l OK EXPUNGE completed
    """)
    mailboxes.deliver(PLAIN)  # UID 3: new mail is pushed, the expunge waits for a command
    await client.run("""
        S: * 2 EXISTS
        S: * 2 RECENT
    """)
    await client.run("""
        C: e NOOP
        S: * 1 EXPUNGE
        S: e OK NOOP completed
        C: f NOTIFY NONE
        S: f OK NOTIFY completed
    """)
    mailboxes.deliver(PLAIN, folder="Archive")
    mailboxes.deliver(PLAIN)
    await asyncio.sleep(0.3)
    assert client.take() == b""  # nothing is pushed after NOTIFY NONE
    await client.run("""
        C: g NOOP
        S: * 2 EXISTS
        S: * 2 RECENT
        S: g OK NOOP completed
    """)
    await client.close()
    await other.close()


async def test_a_client_sending_one_byte_at_a_time() -> None:
    backend = _backend()
    client = Transcript(backend)
    await client.greet()
    commands = (b"a LOGIN alice pw\r\nb ENABLE QRESYNC\r\n"
                b"c NOTIFY SET STATUS (selected (MessageNew MessageExpunge)) (mailboxes \"Archive\" (MessageNew))\r\n"
                b"d SELECT INBOX (QRESYNC (1 1 1:5))\r\n")
    out = bytearray()
    for i in range(len(commands)):
        out += await client.feed(commands[i : i + 1])
    lines = bytes(out).split(b"\r\n")
    assert lines[0].startswith(b"a OK ")
    assert lines[1:4] == [b"* ENABLED QRESYNC", b"b OK ENABLE completed",
                          b"* STATUS Archive (MESSAGES 1 UIDNEXT 2 UIDVALIDITY 2 UNSEEN 1)"]
    assert lines[4] == b"c OK NOTIFY completed"
    assert b"* 1 FETCH (UID 1 FLAGS (\\Recent) MODSEQ (2))" in lines
    assert lines[-2:] == [b"d OK [READ-WRITE] SELECT completed", b""]
    backend.users["alice"].deliver(PLAIN)
    await client.run("""
        S: * 2 EXISTS
        S: * 2 RECENT
    """)
    await client.close()
