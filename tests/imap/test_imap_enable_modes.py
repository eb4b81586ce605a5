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


UTF8_MESSAGE = "From: José <jose@b.test>\r\nSubject: Résumé\r\n\r\nbody\r\n".encode()


async def test_utf8_accept_names_and_append() -> None:
    # RFC 6855 §3: after ENABLE UTF8=ACCEPT, mailbox names go both ways as UTF-8 quoted
    # strings (no modified UTF-7); §4: APPEND takes UTF8 (literal8) and 8-bit headers.
    size = len(UTF8_MESSAGE)
    t = Transcript()
    await t.run(LOGIN + """
        C: c1 CREATE Entw&APw-rfe
        S: c1 OK CREATE completed
        C: e ENABLE UTF8=ACCEPT utf8=accept X-UNKNOWN
        S: * ENABLED UTF8=ACCEPT
        S: e OK ENABLE completed
        C: c2 CREATE "Réponses"
        S: c2 OK CREATE completed
        C: c3 CREATE "a&b"
        S: c3 OK CREATE completed
        C: l LIST "" *
        S: * LIST (\\HasNoChildren) "/" INBOX
        S: * LIST (\\HasNoChildren) "/" "Entwürfe"
        S: * LIST (\\HasNoChildren) "/" "Réponses"
        S: * LIST (\\HasNoChildren) "/" a&b
        S: l OK LIST completed
        C: s STATUS "Entwürfe" (MESSAGES)
        S: * STATUS "Entwürfe" (MESSAGES 0)
        S: s OK STATUS completed
    """)
    # The UTF8 item, as Python 3.14's imaplib sends it (a synchronizing literal8 inside).
    out = await t.feed(f'p APPEND "Réponses" UTF8 (~{{{size}}}\r\n'.encode())
    assert out == b"+ Ready for literal data\r\n"
    out = await t.feed(UTF8_MESSAGE + b")\r\n")
    assert out == b"p OK [APPENDUID 3 1] APPEND completed\r\n"
    out = await t.feed(f'q APPEND "Entwürfe" {{{size}+}}\r\n'.encode() + UTF8_MESSAGE + b"\r\n")
    assert out == b"q OK [APPENDUID 2 1] APPEND completed\r\n"
    out = await t.feed(f"r APPEND Entw&APw-rfe {{{size}+}}\r\n".encode() + UTF8_MESSAGE + b"\r\n")
    assert out == b"r NO [TRYCREATE] Destination mailbox does not exist\r\n"  # a name, not modified UTF-7
    await t.run("""
        C: x SELECT "Réponses"
        S: * FLAGS (...)
        S: * 1 EXISTS
        S: * 1 RECENT
        S: * OK [UNSEEN 1] First unseen
        S: * OK [PERMANENTFLAGS (...)] Limited
        S: * OK [UIDVALIDITY 3] UIDs valid
        S: * OK [UIDNEXT 2] Predicted next UID
        S: * OK [HIGHESTMODSEQ 2] Highest
        S: x OK [READ-WRITE] SELECT completed
        C: f FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])
        S: * 1 FETCH (BODY[HEADER.FIELDS (SUBJECT)] {21}
        S: Subject: Résumé
        S:
        S: )
        S: f OK FETCH completed
        C: g SEARCH CHARSET UTF-8 SUBJECT "Résumé"
        S: g BAD No SEARCH CHARSET once UTF8=ACCEPT is enabled
        C: h SEARCH SUBJECT "Résumé"
        S: * SEARCH 1
        S: h OK SEARCH completed
        C: i SELECT "Entw&APw-rfe"
        S: i NO [NONEXISTENT] No such mailbox
    """)


async def test_without_utf8_accept_names_stay_modified_utf7() -> None:
    # RFC 6855 §3: no UTF-8 in quoted strings to a client that did not enable it (a UTF-8
    # name is not modified UTF-7: NO); §4: its APPEND with 8-bit header fields is refused
    # with NO; the UTF8 item is not its syntax (BAD).
    size = len(UTF8_MESSAGE)
    t = Transcript()
    await t.run(LOGIN + """
        C: c CREATE "Réponses"
        S: c NO Mailbox name is not valid modified UTF-7
        C: d CREATE R&AOk-ponses
        S: d OK CREATE completed
        C: l LIST "" R*
        S: * LIST (\\HasNoChildren) "/" R&AOk-ponses
        S: l OK LIST completed
    """)
    out = await t.feed(f"p APPEND INBOX {{{size}+}}\r\n".encode() + UTF8_MESSAGE + b"\r\n")
    assert out == b"p NO [CANNOT] 8-bit header fields need ENABLE UTF8=ACCEPT\r\n"
    out = await t.feed(b"q APPEND INBOX UTF8 (~{4+}\r\nab\r\n)\r\n")
    assert out.startswith(b"q BAD ")
    body_only = b"Subject: plain\r\n\r\nR\xc3\xa9sum\xc3\xa9 in the body\r\n"  # 8-bit body: fine
    out = await t.feed(b"r APPEND INBOX {%d+}\r\n" % len(body_only) + body_only + b"\r\n")
    assert out == b"r OK [APPENDUID 1 1] APPEND completed\r\n"
