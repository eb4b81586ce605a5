"""SEARCHRES (RFC 5182) and CONTEXT=SEARCH (RFC 5267 §4) over :mod:`imap.testing`: the
saved result ``$`` and SEARCH updates, with several sessions of one user (imaptest's
search-context-update* and search-partial run against the live gateway in tests/imaptest).
One transcript is fed to the server one byte at a time."""

from __future__ import annotations

from imap.session import Session
from imap.state import State, capabilities
from imap.testing import MemoryBackend, Transcript

LOGIN = """
    S: * OK ...
    C: a LOGIN alice pw
    S: a OK ...
"""


def _message(n: int, body: str = "plain words") -> bytes:
    return f"From: a@example.test\r\nSubject: s{n}\r\n\r\n{body} {n}\r\n".encode()


def _backend(count: int, **bodies: str) -> MemoryBackend:
    backend = MemoryBackend()
    for n in range(1, count + 1):
        backend.users["alice"].deliver(_message(n, bodies.get(f"m{n}", "plain words")))
    return backend


def _select(exists: int, uidnext: int, modseq: int, *, recent: int | None = None, tag: str = "b") -> str:
    return f"""
        C: {tag} SELECT INBOX
        S: * FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)
        S: * {exists} EXISTS
        S: * {exists if recent is None else recent} RECENT
        S: * OK [UNSEEN 1] First unseen
        S: * OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Limited
        S: * OK [UIDVALIDITY 1] UIDs valid
        S: * OK [UIDNEXT {uidnext}] Predicted next UID
        S: * OK [HIGHESTMODSEQ {modseq}] Highest
        S: * OK [MAILBOXID (...)] Mailbox ID
        S: {tag} OK [READ-WRITE] SELECT completed
    """


def _one_byte_at_a_time(transcript: Transcript) -> Transcript:
    """The session gets the client's bytes one at a time (a command split everywhere)."""
    session: Session = transcript.session
    whole = session.data_received

    async def bytewise(data: bytes) -> None:
        for i in range(len(data)):
            await whole(data[i : i + 1])

    session.data_received = bytewise  # type: ignore[method-assign]
    return transcript


def test_offered_once_logged_in() -> None:
    ours = {"SEARCHRES", "CONTEXT=SEARCH"}
    assert ours <= set(capabilities(State.AUTHENTICATED, tls=True))
    assert not ours & set(capabilities(State.NOT_AUTHENTICATED, tls=True))


async def test_searchres_saves_messages_for_every_command() -> None:
    # RFC 5182 §2.4: SAVE alone answers no ESEARCH; with MIN / MAX only what they return is
    # saved. §2.1: "$" names messages (the same in FETCH and UID FETCH), loses expunged ones,
    # never gains new ones, and can be a SEARCH key (also "UID $"). Every sequence-set takes it.
    backend = _backend(5)
    await backend.users["alice"].create_folder("Archive")
    await Transcript(backend).run(LOGIN + _select(5, 6, 6) + r"""
        C: c SEARCH RETURN (SAVE) 2:4
        S: c OK SEARCH completed
        C: d FETCH $ (UID)
        S: * 2 FETCH (UID 2)
        S: * 3 FETCH (UID 3)
        S: * 4 FETCH (UID 4)
        S: d OK FETCH completed
        C: e UID STORE $ +FLAGS.SILENT (\Deleted)
        S: e OK STORE completed
        C: f UID SEARCH RETURN (ALL) DELETED
        S: * ESEARCH (TAG "f") UID ALL 2:4
        S: f OK SEARCH completed
        C: g STORE 2,4 -FLAGS.SILENT (\Deleted)
        S: g OK STORE completed
        C: h EXPUNGE
        S: * 3 EXPUNGE
        S: h OK EXPUNGE completed
        C: i SEARCH $
        S: * SEARCH 2 3
        S: i OK SEARCH completed
        C: j UID SEARCH RETURN (SAVE MAX) UID $
        S: * ESEARCH (TAG "j") UID MAX 4
        S: j OK SEARCH completed
        C: k COPY $ Archive
        S: k OK [COPYUID 2 4 1] COPY completed
        C: l SEARCH RETURN (SAVE MIN MAX) NOT $
        S: * ESEARCH (TAG "l") MIN 1 MAX 4
        S: l OK SEARCH completed
        C: m MOVE $ Archive
        S: * OK [COPYUID 2 1,5 2:3] Moved
        S: * 4 EXPUNGE
        S: * 1 EXPUNGE
        S: m OK MOVE completed
        C: n FETCH $ UID
        S: n OK FETCH completed
        C: o SEARCH RETURN (SAVE COUNT) ALL
        S: * ESEARCH (TAG "o") COUNT 2
        S: o OK SEARCH completed
        C: p UID FETCH $ FLAGS
        S: * 1 FETCH (FLAGS (\Recent) UID 2)
        S: * 2 FETCH (FLAGS (\Recent) UID 4)
        S: p OK FETCH completed
    """)


async def test_searchres_is_emptied_by_a_failed_save_and_by_select() -> None:
    # RFC 5182 §2.1: a SEARCH with SAVE that fails (NO or BAD, even a syntax error after the
    # RETURN options) leaves "$" empty; one without SAVE leaves it alone; SELECT empties it.
    await Transcript(_backend(3)).run(LOGIN + _select(3, 4, 4) + """
        C: c SEARCH RETURN (SAVE) 1:2
        S: c OK SEARCH completed
        C: d SEARCH RETURN (MIN) CHARSET KOI8-R ALL
        S: d NO [BADCHARSET (US-ASCII UTF-8)] Unsupported charset
        C: e SEARCH $
        S: * SEARCH 1 2
        S: e OK SEARCH completed
        C: f0 SEARCH RETURN (MIN SAVE SAVE) ALL
        S: f0 BAD Unknown SEARCH return option
        C: f1 SEARCH $
        S: * SEARCH
        S: f1 OK SEARCH completed
        C: f2 SEARCH RETURN (SAVE) 1:2
        S: f2 OK SEARCH completed
        C: f SEARCH RETURN (SAVE) NOSUCHKEY
        S: f BAD Unknown search key
        C: g FETCH $ UID
        S: g OK FETCH completed
        C: h SEARCH RETURN (SAVE) 3
        S: h OK SEARCH completed
        C: i SEARCH RETURN (SAVE) CHARSET KOI8-R ALL
        S: i NO [BADCHARSET (US-ASCII UTF-8)] Unsupported charset
        C: j SEARCH $
        S: * SEARCH
        S: j OK SEARCH completed
        C: k SEARCH RETURN (SAVE) 1
        S: k OK SEARCH completed
    """ + _select(3, 4, 4, recent=0, tag="l") + """
        C: m FETCH $ UID
        S: m OK FETCH completed
    """)


async def test_update_contexts_follow_own_and_other_sessions_changes() -> None:
    # RFC 5267 §4.2-4.3 (imaptest's search-context-update): ADDTO / REMOVEFROM with position 0
    # after STORE, APPEND, EXPUNGE (REMOVEFROM before the EXPUNGEs, with the numbers the
    # client knows) and, at NOOP and in IDLE, after another session's changes; a UID SEARCH
    # context speaks UIDs; CANCELUPDATE ends a context (NO for a tag without one).
    backend = _backend(5, m3="body text", m4="body text", m5="body text")
    me, other = Transcript(backend), Transcript(backend)
    await other.run(LOGIN + _select(5, 6, 6, recent=5))
    await me.run(LOGIN + _select(5, 6, 6, recent=0) + r"""
        C: c SEARCH RETURN (UPDATE) BODY body SEEN
        S: * ESEARCH (TAG "c")
        S: c OK SEARCH completed
        C: d UID SEARCH RETURN (UPDATE COUNT) UNSEEN
        S: * ESEARCH (TAG "d") UID COUNT 5
        S: d OK SEARCH completed
        C: e STORE 2:4 +FLAGS.SILENT (\Seen)
        S: * ESEARCH (TAG "c") ADDTO (0 3:4)
        S: * ESEARCH (TAG "d") UID REMOVEFROM (0 2:4)
        S: e OK STORE completed
        C: f STORE 4:5 +FLAGS.SILENT (\Deleted)
        S: f OK STORE completed
        C: g EXPUNGE
        S: * ESEARCH (TAG "c") REMOVEFROM (0 4)
        S: * ESEARCH (TAG "d") UID REMOVEFROM (0 5)
        S: * 5 EXPUNGE
        S: * 4 EXPUNGE
        S: g OK EXPUNGE completed
    """)
    await other.run(r"""
        C: c STORE 3 -FLAGS.SILENT (\Seen)
        S: * 2 FETCH (FLAGS (\Recent \Seen))
        S: c OK STORE completed
        C: d APPEND INBOX (\Seen) {23+}
        C: Subject: x
        C:
        C: body here
        S: * 5 EXPUNGE
        S: * 4 EXPUNGE
        S: * 4 EXISTS
        S: * 4 RECENT
        S: d OK [APPENDUID 1 6] APPEND completed
    """)
    await me.run(r"""
        C: h NOOP
        S: * 3 FETCH (FLAGS ())
        S: * 4 EXISTS
        S: * ESEARCH (TAG "c") REMOVEFROM (0 3)
        S: * ESEARCH (TAG "c") ADDTO (0 4)
        S: * ESEARCH (TAG "d") UID ADDTO (0 3)
        S: h OK NOOP completed
        C: i IDLE
        S: + idling
    """)
    await other.run(r"""
        C: e UID STORE 6 -FLAGS.SILENT (\Seen)
        S: e OK STORE completed
    """)
    await me.run(r"""
        S: * 4 FETCH (FLAGS ())
        S: * ESEARCH (TAG "c") REMOVEFROM (0 4)
        S: * ESEARCH (TAG "d") UID ADDTO (0 6)
        C: DONE
        S: i OK IDLE terminated
        C: j CANCELUPDATE "c" "nothing"
        S: j NO No SEARCH with UPDATE has that tag
        C: k CANCELUPDATE "c"
        S: k OK CANCELUPDATE completed
        C: l STORE 1:4 +FLAGS.SILENT (\Seen)
        S: * ESEARCH (TAG "d") UID REMOVEFROM (0 1,3,6)
        S: l OK STORE completed
        C: m CANCELUPDATE "d"
        S: m OK CANCELUPDATE completed
        C: n STORE 1:4 -FLAGS.SILENT (\Seen)
        S: n OK STORE completed
    """)


async def test_partial_and_update_limits_fed_one_byte_at_a_time() -> None:
    # RFC 5267 §4.4 (imaptest's search-partial): PARTIAL m:n gives the m-th to n-th results
    # (in either order; NIL when none), with UID SEARCH the UIDs; RFC 9394 -m:-n counts from
    # the end. RFC 5267 §4.2: past MAX_CONTEXTS updating searches, NOUPDATE.
    transcript = _one_byte_at_a_time(Transcript(_backend(5)))
    updates = "".join(f"""
        C: u{n} SEARCH RETURN (UPDATE) ALL
        S: * ESEARCH (TAG "u{n}")
        S: u{n} OK SEARCH completed
    """ for n in range(16))
    await transcript.run(LOGIN + _select(5, 6, 6) + r"""
        C: c SEARCH RETURN (PARTIAL 4:2) ALL
        S: * ESEARCH (TAG "c") PARTIAL (2:4 2:4)
        S: c OK SEARCH completed
        C: d SEARCH RETURN (PARTIAL 2:10 COUNT) 1:2,4:5
        S: * ESEARCH (TAG "d") PARTIAL (2:10 2,4:5) COUNT 4
        S: d OK SEARCH completed
        C: e SEARCH RETURN (PARTIAL 6:6) ALL
        S: * ESEARCH (TAG "e") PARTIAL (6:6 NIL)
        S: e OK SEARCH completed
        C: f UID SEARCH RETURN (PARTIAL -1:-2) ALL
        S: * ESEARCH (TAG "f") UID PARTIAL (-1:-2 4:5)
        S: f OK SEARCH completed
        C: g SEARCH RETURN (PARTIAL -3:-100 MIN) 2:5
        S: * ESEARCH (TAG "g") MIN 2 PARTIAL (-3:-100 2:3)
        S: g OK SEARCH completed
        C: h SEARCH RETURN (PARTIAL 1:*) ALL
        S: h BAD Syntax error
    """ + updates + r"""
        C: v SEARCH RETURN (UPDATE MIN) ALL
        S: * ESEARCH (TAG "v") MIN 1
        S: * OK [NOUPDATE "v"] Too many searches with UPDATE; no updates for this one
        S: v OK SEARCH completed
        C: w STORE 1 +FLAGS.SILENT (\Deleted)
        S: w OK STORE completed
        C: x EXPUNGE
    """ + "".join(f"""
        S: * ESEARCH (TAG "u{n}") REMOVEFROM (0 1)
    """ for n in range(16)) + """
        S: * 1 EXPUNGE
        S: x OK EXPUNGE completed
    """)
