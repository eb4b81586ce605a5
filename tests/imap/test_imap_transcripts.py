"""Transcripts without sockets (pymap ``mocktransport`` style) on :mod:`imap.testing`: whole
exchanges, byte for byte, in milliseconds. The live transcripts of tests/imap_server run the
same protocol over the real store and TLS."""

from __future__ import annotations

import pytest

from imap.testing import MemoryBackend, Transcript

PLAIN = b"From: a@b.test\r\nSubject: hello\r\n\r\nbody\r\n"

LOGIN = """
    S: * OK [CAPABILITY IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID AUTH=PLAIN] IMAP4rev1 service ready
    C: a LOGIN alice pw
    S: a OK [CAPABILITY IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID IDLE ...APPENDLIMIT=26214400] Logged in
"""
SELECT = r"""
    C: b SELECT INBOX
    S: * FLAGS (\Answered \Flagged \Deleted \Seen \Draft)
    S: * 3 EXISTS
    S: * 3 RECENT
    S: * OK [UNSEEN 2] First unseen
    S: * OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft \*)] Limited
    S: * OK [UIDVALIDITY 1] UIDs valid
    S: * OK [UIDNEXT 4] Predicted next UID
    S: * OK [HIGHESTMODSEQ 4] Highest
    S: * OK [MAILBOXID (...)] Mailbox ID
    S: b OK [READ-WRITE] SELECT completed
"""


def three_messages(backend: MemoryBackend | None = None) -> Transcript:
    backend = backend or MemoryBackend(folders=("INBOX", "Archive"))
    for flags in (["\\Seen"], [], []):
        backend.users["alice"].deliver(PLAIN, flags=flags)
    return Transcript(backend)


async def test_uid_fetch_range_beyond_the_last_uid() -> None:
    # RFC 3501 §6.4.8: "7:*" is "3:7" when 3 is the highest UID, and UID FETCH carries UID.
    await three_messages().run(LOGIN + SELECT + r"""
        C: c UID FETCH 7:* FLAGS
        S: * 3 FETCH (FLAGS (\Recent) UID 3)
        S: c OK FETCH completed
        C: d FETCH 4 FLAGS
        S: d BAD Invalid message sequence number
        # Without "*" a UID range names only the UIDs in it: 4:9 names none here.
        C: e UID FETCH 4:9 FLAGS
        S: e OK FETCH completed
    """)


async def test_copy_and_move_answers() -> None:
    await three_messages().run(LOGIN + SELECT + r"""
        C: c COPY 1 Nowhere
        S: c NO [TRYCREATE] Destination mailbox does not exist
        C: d UID COPY 9 Archive
        S: d OK COPY completed, no messages
        C: e COPY 1:2 Archive
        S: e OK [COPYUID 2 1:2 1:2] COPY completed
        C: f UID MOVE 3 Archive
        S: * OK [COPYUID 2 3 3] Moved
        S: * 3 EXPUNGE
        S: f OK MOVE completed
        C: g STATUS Archive (MESSAGES UIDNEXT)
        S: * STATUS Archive (MESSAGES 3 UIDNEXT 4)
        S: g OK STATUS completed
    """)


@pytest.mark.parametrize("end", [b"\r\n", b""], ids=["whole line", "no end of line yet"])
async def test_line_too_long_is_refused_with_its_tag_and_closes(end: bytes) -> None:
    t = Transcript()
    await t.greet()
    out = await t.feed(b"a1 NOOP " + b"x" * 70000 + end)
    assert out == b"a1 BAD Line too long\r\n* BYE Too many protocol errors\r\n"
    assert t.session.closed
    assert await t.feed(b"a2 NOOP\r\n") == b""  # nothing more is read


async def test_append_over_appendlimit_is_refused_before_the_literal() -> None:
    await Transcript().run(LOGIN + """
        C: b APPEND INBOX {30000000}
        S: b NO [TOOBIG] Message too large
        C: c APPEND INBOX {6}
        S: + Ready for literal data
        C: hello
        S: c OK [APPENDUID 1 1] APPEND completed
    """)


async def test_read_only_mailbox_refuses_store() -> None:
    await three_messages().run(LOGIN + r"""
        C: b EXAMINE INBOX
        S: * FLAGS (\Answered \Flagged \Deleted \Seen \Draft)
        S: * 3 EXISTS
        S: * 3 RECENT
        S: * OK [UNSEEN 2] First unseen
        S: * OK [PERMANENTFLAGS ()] Limited
        S: * OK [UIDVALIDITY 1] UIDs valid
        S: * OK [UIDNEXT 4] Predicted next UID
        S: * OK [HIGHESTMODSEQ 4] Highest
        S: * OK [MAILBOXID (...)] Mailbox ID
        S: b OK [READ-ONLY] EXAMINE completed
        C: c STORE 1 +FLAGS (\Seen)
        S: c NO [READ-ONLY] Mailbox is read-only
        C: d FETCH 2 BODY[TEXT]
        S: * 2 FETCH (BODY[TEXT] {6}
        S: body
        S: )
        S: d OK FETCH completed
        C: e FETCH 2 FLAGS
        S: * 2 FETCH (FLAGS (\Recent))
        S: e OK FETCH completed
    """)


async def test_store_with_unchangedsince_reports_modified() -> None:
    await three_messages().run(LOGIN + SELECT + r"""
        C: c UID STORE 1:2 (UNCHANGEDSINCE 2) +FLAGS (\Flagged)
        S: * OK [HIGHESTMODSEQ 4] Highest
        S: * 1 FETCH (UID 1 FLAGS (\Recent \Flagged \Seen) MODSEQ (5))
        S: c OK [MODIFIED 2] Some messages were modified
    """)


async def test_idle_reports_new_mail_then_done() -> None:
    backend = MemoryBackend()
    t = three_messages(backend)
    await t.run(LOGIN + SELECT + """
        C: c IDLE
        S: + idling
    """)
    backend.users["alice"].deliver(PLAIN)  # as if delivered by SMTP meanwhile
    await t.run("S: * 4 EXISTS\nS: * 4 RECENT")
    await t.run("""
        C: DONE
        S: c OK IDLE terminated
    """)
    await t.close()


async def test_the_runner_fails_on_any_difference() -> None:
    with pytest.raises(AssertionError):
        await Transcript().run(LOGIN + "C: b NOOP\nS: b OK NOOP done", wait=0.05)
    with pytest.raises(AssertionError):  # a line the script does not expect
        await Transcript().run(LOGIN.replace("S: a OK", "S: x OK") + "C: b NOOP\nS: b OK NOOP completed", wait=0.05)
    with pytest.raises(AssertionError):  # output the script does not mention
        await Transcript().run(LOGIN + "C: b NOOP\nC: c NOOP\nS: b OK NOOP completed", wait=0.05)


async def test_mailboxes_created_listed_renamed_deleted() -> None:
    await Transcript().run(LOGIN + r"""
        C: b CREATE Projets/2026/Mars
        S: b OK [MAILBOXID (...)] CREATE completed
        C: c CREATE Projets
        S: c NO [ALREADYEXISTS] Mailbox already exists
        C: d LIST "" "Projets/%"
        S: * LIST (\HasChildren) "/" Projets/2026
        S: d OK LIST completed
        C: e RENAME Projets Dossiers
        S: e OK RENAME completed
        C: f DELETE Dossiers
        S: f OK DELETE completed
        C: g LIST "" "*"
        S: * LIST (\HasNoChildren) "/" INBOX
        S: * LIST (\Noselect \HasChildren) "/" Dossiers
        S: * LIST (\HasChildren) "/" Dossiers/2026
        S: * LIST (\HasNoChildren) "/" Dossiers/2026/Mars
        S: g OK LIST completed
        C: h DELETE INBOX
        S: h NO [CANNOT] INBOX cannot be deleted
        C: i CREATE "a*b"
        S: i NO [CANNOT] Invalid mailbox name
    """)


async def test_deleted_messages_are_expunged() -> None:
    await three_messages().run(LOGIN + SELECT + r"""
        C: c STORE 1,3 +FLAGS.SILENT (\Deleted)
        S: c OK STORE completed
        C: d UID EXPUNGE 3
        S: * 3 EXPUNGE
        S: d OK EXPUNGE completed
        C: e EXPUNGE
        S: * 1 EXPUNGE
        S: e OK EXPUNGE completed
        C: f UID SEARCH ALL
        S: * SEARCH 2
        S: f OK SEARCH completed
    """)


async def test_subscriptions_are_names_apart_from_mailboxes() -> None:
    # imaptest's subscribe test: CREATE subscribes nothing; LSUB with "%" gives the parent of
    # a deeper subscribed name, \Noselect (RFC 3501 §6.3.9); DELETE keeps the subscription
    # (§6.3.6); UNSUBSCRIBE still takes it.
    await Transcript().run(LOGIN + r"""
        C: b CREATE a/b/c
        S: b OK [MAILBOXID (...)] CREATE completed
        C: c CREATE a/d
        S: c OK [MAILBOXID (...)] CREATE completed
        C: d LSUB "" a*
        S: d OK LSUB completed
        C: e SUBSCRIBE a/b/c
        S: e OK SUBSCRIBE completed
        C: f SUBSCRIBE a/d
        S: f OK SUBSCRIBE completed
        C: g LSUB "" %
        S: * LSUB () "/" INBOX
        S: * LSUB (\Noselect) "/" a
        S: g OK LSUB completed
        C: h LSUB "" a/%
        S: * LSUB (\Noselect) "/" a/b
        S: * LSUB () "/" a/d
        S: h OK LSUB completed
        C: i LSUB "" a/*
        S: * LSUB () "/" a/b/c
        S: * LSUB () "/" a/d
        S: i OK LSUB completed
        C: j DELETE a/b/c
        S: j OK DELETE completed
        C: k LSUB "" a/b/*
        S: * LSUB () "/" a/b/c
        S: k OK LSUB completed
        C: l UNSUBSCRIBE a/b/c
        S: l OK UNSUBSCRIBE completed
        C: m LSUB "" a/b/*
        S: m OK LSUB completed
        C: n SUBSCRIBE a/b/c
        S: n NO [NONEXISTENT] No such mailbox
        C: o LIST "" a/*
        S: * LIST (\HasNoChildren) "/" a/b
        S: * LIST (\HasNoChildren) "/" a/d
        S: o OK LIST completed
    """)
