"""ENABLE and the session mode (RFC 5161): CONDSTORE's implicit \\Seen (RFC 7162 §3.1.4.1),
UTF8=ACCEPT (RFC 6855) and IMAP4rev2 (RFC 9051) over :mod:`imap.testing`."""

from __future__ import annotations

import base64
from email.header import decode_header, make_header

from imap.proto.commands import StoreMode
from imap.proto.encoder import encoded_words
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
        S: * OK [MAILBOXID (...)] Mailbox ID
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
        S: c1 OK [MAILBOXID (...)] CREATE completed
        C: e ENABLE UTF8=ACCEPT utf8=accept X-UNKNOWN
        S: * ENABLED UTF8=ACCEPT
        S: e OK ENABLE completed
        C: c2 CREATE "Réponses"
        S: c2 OK [MAILBOXID (...)] CREATE completed
        C: c3 CREATE "a&b"
        S: c3 OK [MAILBOXID (...)] CREATE completed
        C: c4 CREATE "Re\u0301ponses"
        S: c4 NO [CANNOT] Invalid mailbox name
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
    assert await t.feed('c5 CREATE "a\u2028b"\r\n'.encode()) == b"c5 NO [CANNOT] Invalid mailbox name\r\n"
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
        S: * OK [MAILBOXID (...)] Mailbox ID
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
        S: d OK [MAILBOXID (...)] CREATE completed
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


def _two_messages() -> MemoryBackend:
    backend = MemoryBackend()
    backend.users["alice"].deliver(PLAIN)
    backend.users["alice"].deliver(PLAIN, flags=["\\Seen"])
    return backend


REV2_SELECT_INBOX = r"""
        C: b SELECT INBOX
        S: * FLAGS (\Answered \Flagged \Deleted \Seen \Draft)
        S: * 2 EXISTS
        S: * LIST (\HasNoChildren) "/" INBOX
        S: * OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft \*)] Limited
        S: * OK [UIDVALIDITY 1] UIDs valid
        S: * OK [UIDNEXT 3] Predicted next UID
        S: * OK [HIGHESTMODSEQ 3] Highest
        S: * OK [MAILBOXID (...)] Mailbox ID
        S: b OK [READ-WRITE] SELECT completed
"""


async def test_imap4rev2_session() -> None:
    # RFC 9051 Appendix A: ENABLE IMAP4rev2 switches the session; Appendix E: no RECENT or
    # \Recent (item 12), no [UNSEEN] (11), a LIST response with accurate attributes at SELECT (10), [CLOSED] when a
    # SELECT replaces one (9), ESEARCH for every SEARCH (4), UID in unsolicited FETCH (21),
    # UTF-8 mailbox names (16), STATUS DELETED (3).
    backend = _two_messages()
    rev2, rev1 = Transcript(backend), Transcript(backend)
    await rev2.run(LOGIN + r"""
        C: e ENABLE IMAP4rev2
        S: * ENABLED IMAP4rev2
        S: e OK ENABLE completed
        C: c CREATE "Répertoire"
        S: c OK [MAILBOXID (...)] CREATE completed
    """ + REV2_SELECT_INBOX + r"""
        C: f FETCH 1:2 (FLAGS)
        S: * 1 FETCH (FLAGS ())
        S: * 2 FETCH (FLAGS (\Seen))
        S: f OK FETCH completed
        C: s SEARCH UNSEEN
        S: * ESEARCH (TAG "s") ALL 1
        S: s OK SEARCH completed
        C: u UID SEARCH DELETED
        S: * ESEARCH (TAG "u") UID
        S: u OK SEARCH completed
        C: r SEARCH RETURN (COUNT) ALL
        S: * ESEARCH (TAG "r") COUNT 2
        S: r OK SEARCH completed
    """)
    # A rev1 session of the same user still gets \Recent: the rev2 one took none.
    await rev1.run(LOGIN + r"""
        C: b EXAMINE INBOX
        S: * FLAGS (...)
        S: * 2 EXISTS
        S: * 2 RECENT
        S: * OK [UNSEEN 1] First unseen
        S: * OK [PERMANENTFLAGS ()] Limited
        S: * OK [UIDVALIDITY 1] UIDs valid
        S: * OK [UIDNEXT 3] Predicted next UID
        S: * OK [HIGHESTMODSEQ 3] Highest
        S: * OK [MAILBOXID (...)] Mailbox ID
        S: b OK [READ-ONLY] EXAMINE completed
    """)
    backend.users["alice"].deliver(PLAIN)
    await backend.users["alice"].store_flags("INBOX", [1], StoreMode.ADD, ["\\Flagged"])
    await rev2.run(r"""
        C: n NOOP
        S: * 1 FETCH (UID 1 FLAGS (\Flagged))
        S: * 3 EXISTS
        S: n OK NOOP completed
        C: d STORE 2 +FLAGS.SILENT (\Deleted)
        S: d OK STORE completed
        C: t0 STATUS INBOX (MESSAGES DELETED)
        S: * STATUS INBOX (MESSAGES 3 DELETED 1)
        S: t0 OK STATUS completed
        C: x SELECT "Répertoire"
        S: * OK [CLOSED] Previous mailbox closed
        S: * FLAGS (\Answered \Flagged \Deleted \Seen \Draft)
        S: * 0 EXISTS
        S: * LIST (\HasNoChildren) "/" "Répertoire"
        S: * OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft \*)] Limited
        S: * OK [UIDVALIDITY 2] UIDs valid
        S: * OK [UIDNEXT 1] Predicted next UID
        S: * OK [HIGHESTMODSEQ 1] Highest
        S: * OK [MAILBOXID (...)] Mailbox ID
        S: x OK [READ-WRITE] SELECT completed
        C: l LIST "" "R*"
        S: * LIST (\HasNoChildren) "/" "Répertoire"
        S: l OK LIST completed
        C: t STATUS "Répertoire" (MESSAGES UIDNEXT)
        S: * STATUS "Répertoire" (MESSAGES 0 UIDNEXT 1)
        S: t OK STATUS completed
    """)


async def test_imap4rev2_fed_byte_by_byte() -> None:
    # The same commands, one write each or one octet per write (a UTF-8 name split inside a
    # character, a literal split anywhere), get the same answer.
    commands = ("a LOGIN alice pw\r\ne ENABLE IMAP4rev2 UTF8=ACCEPT\r\n"
                'c CREATE "Ünïcødé/日本"\r\nl LIST "" *\r\nb SELECT "Ünïcødé/日本"\r\n'
                f"p APPEND \"Ünïcødé/日本\" {{{len(UTF8_MESSAGE)}+}}\r\n").encode() + UTF8_MESSAGE + (
                "\r\nn NOOP\r\ns SEARCH SUBJECT \"résumé\"\r\nf FETCH 1 (ENVELOPE)\r\nz LOGOUT\r\n").encode()
    whole, bytewise = Transcript(MemoryBackend()), Transcript(MemoryBackend())
    await whole.greet()
    await bytewise.greet()
    expected = await whole.feed(commands)
    got = bytearray()
    for i in range(len(commands)):
        got += await bytewise.feed(commands[i : i + 1])
    assert bytes(got) == expected
    assert b'* ENABLED IMAP4rev2 UTF8=ACCEPT\r\n' in expected
    assert expected.count('* LIST (\\HasNoChildren) "/" "Ünïcødé/日本"\r\n'.encode()) == 2  # LIST, SELECT
    assert b'* ESEARCH (TAG "s") ALL 1\r\n' in expected
    assert "* 1 FETCH (ENVELOPE (NIL \"Résumé\" ((\"José\" NIL \"jose\" \"b.test\"))".encode() in expected
    assert b"RECENT" not in expected and b"z OK LOGOUT completed\r\n" in expected


def _b(text: str) -> str:
    return "=?utf-8?b?" + base64.b64encode(text.encode()).decode() + "?="


async def test_smtputf8_message_to_legacy_and_utf8_clients() -> None:
    # RFC 6855 §5 (our choice, docs/architecture.md step 5): a client that did not enable UTF-8 gets the
    # message as stored, and a 7-bit ENVELOPE (RFC 2047 words; a non-ASCII address as an
    # empty group named by it); one that did gets the ENVELOPE in UTF-8 quoted strings.
    raw = "From: Jörg <jörg@bü.test>\r\nTo: bob@b.test\r\nSubject: Grüße\r\n\r\nhi\r\n".encode()
    backend = MemoryBackend()
    backend.users["alice"].deliver(raw)
    select = r"""
        C: b EXAMINE INBOX
        S: * FLAGS (...)
        S: * 1 EXISTS
        S: * 1 RECENT
        S: * OK [UNSEEN 1] First unseen
        S: * OK [PERMANENTFLAGS ()] Limited
        S: * OK [UIDVALIDITY 1] UIDs valid
        S: * OK [UIDNEXT 2] Predicted next UID
        S: * OK [HIGHESTMODSEQ 2] Highest
        S: * OK [MAILBOXID (...)] Mailbox ID
        S: b OK [READ-ONLY] EXAMINE completed
    """
    group = f'((NIL NIL "{_b("Jörg <jörg@bü.test>")}" NIL)(NIL NIL NIL NIL))'
    await Transcript(backend).run(LOGIN + select + f"""
        C: f FETCH 1 (ENVELOPE)
        S: * 1 FETCH (ENVELOPE (NIL "{_b("Grüße")}" {group} {group} {group} ((NIL NIL "bob" "b.test")) NIL NIL NIL NIL))
        S: f OK FETCH completed
        C: g FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])
        S: * 1 FETCH (BODY[HEADER.FIELDS (SUBJECT)] {{{len("Subject: Grüße".encode()) + 4}}}
        S: Subject: Grüße
        S:
        S: )
        S: g OK FETCH completed
    """)
    sender = '(("Jörg" NIL "jörg" "bü.test"))'
    await Transcript(backend).run(LOGIN + """
        C: e ENABLE UTF8=ACCEPT
        S: * ENABLED UTF8=ACCEPT
        S: e OK ENABLE completed
    """ + select + f"""
        C: f FETCH 1 (ENVELOPE)
        S: * 1 FETCH (ENVELOPE (NIL "Grüße" {sender} {sender} {sender} ((NIL NIL "bob" "b.test")) NIL NIL NIL NIL))
        S: f OK FETCH completed
    """)


def test_encoded_words_are_short_and_decode_back() -> None:
    # RFC 2047 §2: an encoded-word is at most 75 characters; characters are never split.
    text = "Überweisung an die Kardiologie – Befund vom 3. März für Jörg Müller 日本語テキスト" * 2
    words = encoded_words(text).split(" ")
    assert len(words) > 2 and all(len(w) <= 75 for w in words)
    assert str(make_header(decode_header(encoded_words(text)))) == text
