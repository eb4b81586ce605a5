"""THREAD (RFC 5256): ORDEREDSUBJECT and REFERENCES on the cases of imaptest's thread tests
(their answers are Dovecot's), then over :mod:`imap.testing`."""

from __future__ import annotations

import datetime as dt

from imap.message.sortkeys import subject_info
from imap.message.threads import ThreadInput, message_ids, ordered_subject, references
from imap.testing import MemoryBackend, Transcript

T0 = dt.datetime(2008, 2, 22, 15, 6, 23, tzinfo=dt.UTC)


def _msg(number: int, msgid: str | None = None, refs: str | None = None, subject: str = "",
         minutes: int = 0) -> ThreadInput:
    base, reply = subject_info(subject)
    ids = message_ids(msgid)
    return ThreadInput(number, T0 + dt.timedelta(minutes=minutes), base, reply, ids[0] if ids else None,
                       tuple(message_ids(refs)))


def test_references_links_and_loops() -> None:
    # imaptest "thread": message 3's own References win over a link guessed from message 2's,
    # but would make a loop: 3 becomes a root.
    msgs = [_msg(1, "<a@b>", minutes=120), _msg(2, "<b@b>", "<a@b> <c@b>"), _msg(3, "<c@b>", "<b@b>", minutes=60)]
    assert references(msgs) == "(3 2)(1)"
    assert references([_msg(1, "<b@b>", "<a@b> <c@b>"), _msg(2, "<c@b>", "<b@b>", minutes=60)]) == "(2 1)"


def test_references_duplicates_and_dummies() -> None:
    assert references([_msg(1, "<a@b>"), _msg(2, "<a@b>")]) == "(1)(2)"  # thread2
    assert references([_msg(1, "<a@b>", subject="foo"), _msg(2, "<a@b>", subject="Re: foo", minutes=1)]) == "(1 2)"
    thread4 = [_msg(1, "<a@b>", subject="foo"), _msg(2, "<b@b>", "<c@b>", "Re: foo", minutes=1)]
    assert references(thread4) == "(1 2)"  # a dummy at the root with one child is replaced by it
    assert references([_msg(1, refs="<a@b>"), _msg(2, refs="<a@b>", minutes=1)]) == "((1)(2))"  # thread6
    thread7 = [_msg(1, "<a@b>"), _msg(2, "<b@b>", "<a@b>"), _msg(3, "<c@b>", "<b@b>"), _msg(4, "<b@b>", "<a@b>")]
    assert references(thread7) == "(1 (2 3)(4))"
    assert references([_msg(1, "<a@b>"), _msg(2, "<c@b>", "<b@b>"), _msg(3, "<b@b>", "<a@b>")]) == "(1 3 2)"
    assert references([]) == ""


def test_references_gathers_subjects() -> None:
    # RFC 5256 §2.2 (E): same base subject at the root; a reply goes under the original, two
    # originals under a new dummy.
    msgs = [_msg(1, "<1@x>", subject="Lab"), _msg(2, "<2@x>", subject="Re: lab", minutes=1),
            _msg(3, "<3@x>", subject="lab", minutes=2), _msg(4, "<4@x>", subject="other", minutes=3)]
    assert references(msgs) == "((1 2)(3))(4)"


def test_ordered_subject() -> None:
    subjects = ["a", "C", "b", "_", "[foo] Fwd: [bar] Re: fw: b (fWd)  (fwd)", "b (a)", "Re: [FWD: c]", "[xyz]", "",
                "=?iso-8859-1?q?_?=", "Re: =?utf-8?q?b?=", "=?iso-8859-1?q?RE:_C?=", "=?us-ascii?b?UmU6IGM=?=",
                "Ad: Re: Ad: Re: Ad: x", "re: [fwd: [fwd: re: [fwd: babylon]]]"]
    msgs = [_msg(i, subject=subject) for i, subject in enumerate(subjects, 1)]
    assert ordered_subject(msgs) == "(1)(2 (7)(12)(13))(3 (5)(11))(4)(6)(8)(9 10)(14)(15)"
    assert subject_info("Re: [FWD: c]") == ("C", True) and subject_info("[xyz]") == ("[XYZ]", False)
    assert subject_info("c (fwd)") == ("C", True) and subject_info("c ") == ("C", False)


async def test_thread_exchanges() -> None:
    backend = MemoryBackend()
    for raw in (b"Message-ID: <a@x.example>\r\nSubject: lab\r\nDate: Mon, 02 Mar 2026 10:00:00 +0000\r\n\r\nx",
                b"Message-ID: <b@x.example>\r\nIn-Reply-To: <a@x.example>\r\nSubject: Re: lab\r\n"
                b"Date: Mon, 02 Mar 2026 11:00:00 +0000\r\n\r\nx",
                b"Message-ID: <c@x.example>\r\nSubject: other\r\nDate: Mon, 02 Mar 2026 09:00:00 +0000\r\n\r\nx"):
        backend.users["alice"].deliver(raw)
    await Transcript(backend).run(r"""
        S: * OK ...
        C: a LOGIN alice pw
        S: a OK ...
        C: b EXAMINE INBOX
        S: * FLAGS ...
        S: * 3 EXISTS
        S: * 3 RECENT
        S: * OK [UNSEEN 1] First unseen
        S: * OK [PERMANENTFLAGS ()] Limited
        S: * OK [UIDVALIDITY 1] UIDs valid
        S: * OK [UIDNEXT 4] Predicted next UID
        S: * OK [HIGHESTMODSEQ 4] Highest
        S: * OK [MAILBOXID (...)] Mailbox ID
        S: b OK [READ-ONLY] EXAMINE completed
        C: c THREAD REFERENCES UTF-8 ALL
        S: * THREAD (3)(1 2)
        S: c OK THREAD completed
        C: d UID THREAD ORDEREDSUBJECT US-ASCII 1:2
        S: * THREAD (1 2)
        S: d OK THREAD completed
        C: e THREAD REFERENCES UTF-8 SUBJECT nothing
        S: * THREAD
        S: e OK THREAD completed
        C: f THREAD REFS UTF-8 ALL
        S: f BAD Unknown THREAD algorithm
    """)
