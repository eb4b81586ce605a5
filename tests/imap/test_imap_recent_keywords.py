"""\\Recent (RFC 3501 §2.3.2) and keywords in FLAGS (§7.2.6) over :mod:`imap.testing`, several
sessions of one user at once (imaptest's select, copy, search-flags and store tests)."""

from __future__ import annotations

from imap.testing import MemoryBackend, Transcript

PLAIN = b"From: a@b.test\r\nSubject: hello\r\n\r\nbody\r\n"
LOGIN = """
    S: * OK ...
    C: a LOGIN alice pw
    S: a OK ...
"""
SYSTEM = r"\Answered \Flagged \Deleted \Seen \Draft"


def _select(verb: str, exists: int, recent: int, *, uidnext: int, modseq: int, keywords: str = "",
            unseen: int | None = 1) -> str:
    flags = SYSTEM + (" " + keywords if keywords else "")
    permanent = "()" if verb == "EXAMINE" else f"({flags} \\*)"
    done = "b OK [READ-ONLY] EXAMINE completed" if verb == "EXAMINE" else "b OK [READ-WRITE] SELECT completed"
    first = f"S: * OK [UNSEEN {unseen}] First unseen\n" if unseen is not None else ""
    return f"""
        C: b {verb} INBOX
        S: * FLAGS ({flags})
        S: * {exists} EXISTS
        S: * {recent} RECENT
        {first}
        S: * OK [PERMANENTFLAGS {permanent}] Limited
        S: * OK [UIDVALIDITY 1] UIDs valid
        S: * OK [UIDNEXT {uidnext}] Predicted next UID
        S: * OK [HIGHESTMODSEQ {modseq}] Highest
        S: * OK [MAILBOXID (...)] Mailbox ID
        S: {done}
    """


async def test_examine_shows_recent_select_claims_it_once() -> None:
    backend = MemoryBackend()
    for _ in range(2):
        backend.users["alice"].deliver(PLAIN)
    first, second = Transcript(backend), Transcript(backend)
    # EXAMINE sees the new messages as recent without taking them (RFC 3501 §6.3.2).
    await first.run(LOGIN + _select("EXAMINE", 2, 2, uidnext=3, modseq=3) + r"""
        C: c FETCH 1:2 FLAGS
        S: * 1 FETCH (FLAGS (\Recent))
        S: * 2 FETCH (FLAGS (\Recent))
        S: c OK FETCH completed
    """)
    await second.run(LOGIN + """
        C: c STATUS INBOX (MESSAGES RECENT)
        S: * STATUS INBOX (MESSAGES 2 RECENT 2)
        S: c OK STATUS completed
    """)
    # The first SELECT takes them: that session alone sees them recent (§2.3.2).
    await first.run(_select("SELECT", 2, 2, uidnext=3, modseq=3) + r"""
        C: c SEARCH RECENT
        S: * SEARCH 1 2
        S: c OK SEARCH completed
        C: d STORE 1 +FLAGS (\Seen)
        S: * 1 FETCH (FLAGS (\Recent \Seen))
        S: d OK STORE completed
        C: e SEARCH NEW
        S: * SEARCH 2
        S: e OK SEARCH completed
        C: f SEARCH OLD
        S: * SEARCH
        S: f OK SEARCH completed
    """)
    await second.run(_select("SELECT", 2, 0, uidnext=3, modseq=4, unseen=2) + r"""
        C: c FETCH 1:2 FLAGS
        S: * 1 FETCH (FLAGS (\Seen))
        S: * 2 FETCH (FLAGS ())
        S: c OK FETCH completed
        C: d SEARCH OLD
        S: * SEARCH 1 2
        S: d OK SEARCH completed
        C: e SEARCH RECENT
        S: * SEARCH
        S: e OK SEARCH completed
        C: f STATUS INBOX (RECENT)
        S: * STATUS INBOX (RECENT 0)
        S: f OK STATUS completed
    """)


async def test_mail_arriving_while_selected_is_recent_to_the_first_session_that_sees_it() -> None:
    backend = MemoryBackend(folders=("INBOX", "Archive"))
    selected, other = Transcript(backend), Transcript(backend)
    await selected.run(LOGIN + _select("SELECT", 0, 0, uidnext=1, modseq=1, unseen=None))
    await other.run(LOGIN + """
        C: b APPEND INBOX {40+}
        C: From: a@b.test
        C: Subject: hello
        C:
        C: body
        C:
        S: b OK [APPENDUID 1 1] APPEND completed
    """)
    await selected.run(r"""
        C: c NOOP
        S: * 1 EXISTS
        S: * 1 RECENT
        S: c OK NOOP completed
        C: d FETCH 1 FLAGS
        S: * 1 FETCH (FLAGS (\Recent))
        S: d OK FETCH completed
    """)
    # It was taken: the other session, selecting now, does not see it recent.
    await other.run(_select("SELECT", 1, 0, uidnext=2, modseq=2))
    backend.users["alice"].deliver(PLAIN)  # delivered meanwhile: the next to look takes it
    await other.run(r"""
        C: c NOOP
        S: * 2 EXISTS
        S: * 1 RECENT
        S: c OK NOOP completed
    """)
    await selected.run(r"""
        C: e NOOP
        S: * 2 EXISTS
        S: e OK NOOP completed
        C: f FETCH 2 FLAGS
        S: * 2 FETCH (FLAGS ())
        S: f OK FETCH completed
    """)


async def test_keywords_are_listed_in_flags_and_announced_when_new() -> None:
    backend = MemoryBackend()
    backend.users["alice"].deliver(PLAIN, flags=["$Label1", "\\Seen"])
    first, second = Transcript(backend), Transcript(backend)
    await first.run(LOGIN + _select("SELECT", 1, 1, uidnext=2, modseq=2, keywords="$Label1", unseen=None))
    await second.run(LOGIN + _select("SELECT", 1, 0, uidnext=2, modseq=2, keywords="$Label1", unseen=None))
    # RFC 3501 §7.2.6: a new keyword is announced in FLAGS before a FETCH carries it.
    await first.run(rf"""
        C: c STORE 1 +FLAGS ($Label2)
        S: * FLAGS ({SYSTEM} $Label1 $Label2)
        S: * OK [PERMANENTFLAGS ({SYSTEM} $Label1 $Label2 \*)] Limited
        S: * 1 FETCH (FLAGS (\Recent $Label1 $Label2 \Seen))
        S: c OK STORE completed
    """)
    await second.run(rf"""
        C: c NOOP
        S: * FLAGS ({SYSTEM} $Label1 $Label2)
        S: * OK [PERMANENTFLAGS ({SYSTEM} $Label1 $Label2 \*)] Limited
        S: * 1 FETCH (FLAGS ($Label1 $Label2 \Seen))
        S: c OK NOOP completed
    """)
    # Once announced, a keyword stays in the session's FLAGS.
    await first.run(rf"""
        C: d STORE 1 -FLAGS ($Label2)
        S: * 1 FETCH (FLAGS (\Recent $Label1 \Seen))
        S: d OK STORE completed
        C: e APPEND INBOX (Urgent) {{3+}}
        C: x
        C:
        S: * FLAGS ({SYSTEM} $Label1 $Label2 Urgent)
        S: * OK [PERMANENTFLAGS ({SYSTEM} $Label1 $Label2 Urgent \*)] Limited
        S: * 2 EXISTS
        S: * 2 RECENT
        S: e OK [APPENDUID 1 2] APPEND completed
    """)
    await second.run(rf"""
        C: d NOOP
        S: * FLAGS ({SYSTEM} $Label1 $Label2 Urgent)
        S: * OK [PERMANENTFLAGS ({SYSTEM} $Label1 $Label2 Urgent \*)] Limited
        S: * 1 FETCH (FLAGS ($Label1 \Seen))
        S: * 2 EXISTS
        S: d OK NOOP completed
    """)


async def test_esearch_return_options_and_modseq() -> None:
    # RFC 4731 §3.1 (imaptest's esearch, esearch-condstore): results in one ESEARCH response
    # naming the command's tag; nothing found: only COUNT 0 (when asked). RFC 7162 §3.1.5:
    # MODSEQ is the highest of the messages returned (of MIN / MAX only when ALL and COUNT
    # are not asked). A CONDSTORE-enabling FETCH sends HIGHESTMODSEQ first (RFC 7162 §3.1).
    backend = MemoryBackend()
    for flags in (["\\Seen"], [], ["\\Seen"], [], ["\\Seen"]):
        backend.users["alice"].deliver(PLAIN, flags=flags)
    await Transcript(backend).run(LOGIN + _select("SELECT", 5, 5, uidnext=6, modseq=6, unseen=2) + r"""
        C: c STORE 2 +FLAGS.SILENT (\Deleted)
        S: c OK STORE completed
        C: d EXPUNGE
        S: * 2 EXPUNGE
        S: d OK EXPUNGE completed
        C: e SEARCH RETURN () ALL
        S: * ESEARCH (TAG "e") ALL 1:4
        S: e OK SEARCH completed
        C: f UID SEARCH RETURN (COUNT MAX MIN ALL) ALL
        S: * ESEARCH (TAG "f") UID MIN 1 MAX 5 ALL 1,3:5 COUNT 4
        S: f OK SEARCH completed
        C: g SEARCH RETURN (MIN MAX COUNT) 1000:*
        S: * ESEARCH (TAG "g") MIN 4 MAX 4 COUNT 1
        S: g OK SEARCH completed
        C: h UID SEARCH RETURN (MIN MAX COUNT) UID 1000
        S: * ESEARCH (TAG "h") UID COUNT 0
        S: h OK SEARCH completed
        C: i FETCH 1 MODSEQ
        S: * OK [HIGHESTMODSEQ 8] Highest
        S: * 1 FETCH (MODSEQ (2))
        S: i OK FETCH completed
        C: j SEARCH RETURN (MIN MAX) SEEN MODSEQ 1
        S: * ESEARCH (TAG "j") MIN 1 MAX 4 MODSEQ 6
        S: j OK SEARCH completed
        C: k SEARCH RETURN (MIN) SEEN MODSEQ 1
        S: * ESEARCH (TAG "k") MIN 1 MODSEQ 2
        S: k OK SEARCH completed
        C: l SEARCH RETURN (COUNT) SEEN MODSEQ 7
        S: * ESEARCH (TAG "l") COUNT 0
        S: l OK SEARCH completed
    """)
