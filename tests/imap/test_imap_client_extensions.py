"""The extensions clients use that imaptest does not cover (issue 18), over :mod:`imap.testing`:
LIST-STATUS (RFC 5819), STATUS=SIZE (RFC 8438), WITHIN (RFC 5032), OBJECTID (RFC 8474),
SAVEDATE (RFC 8514), PREVIEW (RFC 8970), LITERAL- (RFC 7888) and COMPRESS (RFC 4978) as the
session sees it (the deflated wire is in ``test_imap_compress``)."""

from __future__ import annotations

import datetime as dt

from imap.message import mime
from imap.message.preview import MAX_CHARS, preview
from imap.proto.receiver import LiteralMode
from imap.session import SessionConfig
from imap.testing import MemoryBackend, Transcript

LOGIN = """
    S: * OK ...
    C: a LOGIN alice pw
    S: a OK ...
"""
PLAIN = (b"From: Dr Martin <dr.martin@clinic.test>\r\nTo: alice@patients.test\r\nSubject: Compte rendu\r\n"
         b"Message-ID: <p1@clinic.test>\r\n\r\nBonjour,\r\n> quoted earlier text\r\nvoici le compte rendu.\r\n")
ALTERNATIVE = (
    b"From: labo@hopital.example\r\nTo: alice@patients.test\r\nSubject: Resultats\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/alternative; boundary="b1"\r\n\r\n--b1\r\n'
    b"Content-Type: text/html; charset=utf-8\r\n\r\n<html><head><style>p {}</style></head>"
    b"<body><p>HTML &amp; only</p></body></html>\r\n--b1\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    b"R=C3=A9sultats   normaux.\r\n--b1--\r\n"
)
HTML_ONLY = (b"From: a@clinic.test\r\nSubject: h\r\nMIME-Version: 1.0\r\nContent-Type: text/html\r\n\r\n"
             b"<div>Rendez-vous <b>lundi</b><script>x()</script></div>\r\n")
ATTACHMENT_ONLY = (
    b"From: a@clinic.test\r\nSubject: pdf\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b2"\r\n\r\n--b2\r\n'
    b'Content-Type: text/plain; name="notes.txt"\r\nContent-Disposition: attachment; filename="notes.txt"\r\n\r\n'
    b"not a preview\r\n--b2--\r\n"
)


def _lines(raw: bytes) -> str:
    """``raw`` as script lines sent in one write, then the CRLF that ends the command."""
    return "".join(f"C: {line}\n" for line in raw.decode().split("\r\n")[:-1]) + "C: \n"


def _backend(*raws: bytes, folders: tuple[str, ...] = ("INBOX", "Archive")) -> MemoryBackend:
    backend = MemoryBackend(folders=folders)
    for raw in raws:
        backend.users["alice"].deliver(raw)
    return backend


async def test_capability_lists_the_client_extensions() -> None:
    t = Transcript()
    await t.greet()
    caps = (await t.feed(b"a LOGIN alice pw\r\nb CAPABILITY\r\n")).split(b"\r\n")[1].split()
    for cap in (b"COMPRESS=DEFLATE", b"LIST-STATUS", b"STATUS=SIZE", b"WITHIN", b"OBJECTID", b"SAVEDATE",
                b"PREVIEW", b"LITERAL+"):
        assert cap in caps


async def test_list_status_and_status_size() -> None:
    size = len(PLAIN) + len(ALTERNATIVE)
    await Transcript(_backend(PLAIN, ALTERNATIVE)).run(LOGIN + rf"""
        C: a2 CREATE a/b
        S: a2 OK [MAILBOXID (F4)] CREATE completed
        C: b STATUS INBOX (MESSAGES SIZE UNSEEN)
        S: * STATUS INBOX (MESSAGES 2 SIZE {size} UNSEEN 2)
        S: b OK STATUS completed
        C: c DELETE a
        S: c OK DELETE completed
        C: d LIST "" * RETURN (STATUS (MESSAGES UNSEEN SIZE))
        S: * LIST (\HasNoChildren) "/" INBOX
        S: * STATUS INBOX (MESSAGES 2 UNSEEN 2 SIZE {size})
        S: * LIST (\HasNoChildren) "/" Archive
        S: * STATUS Archive (MESSAGES 0 UNSEEN 0 SIZE 0)
        S: * LIST (\Noselect \HasChildren) "/" a
        S: * LIST (\HasNoChildren) "/" a/b
        S: * STATUS a/b (MESSAGES 0 UNSEEN 0 SIZE 0)
        S: d OK LIST completed
        C: e LIST (SUBSCRIBED) "" % RETURN (CHILDREN STATUS (UIDNEXT))
        S: * LIST (\HasNoChildren \Subscribed) "/" INBOX
        S: * STATUS INBOX (UIDNEXT 3)
        S: * LIST (\HasNoChildren \Subscribed) "/" Archive
        S: * STATUS Archive (UIDNEXT 1)
        S: e OK LIST completed
        C: f LIST "" % RETURN (STATUS (BIGNESS))
        S: f BAD Unknown STATUS item
        C: g LIST "" % RETURN (STATUS ())
        S: g BAD Empty STATUS item list
    """)


def _date_time(when: dt.datetime) -> str:
    return when.strftime("%d-%b-%Y %H:%M:%S +0000")


async def test_within_older_and_younger_against_internaldate() -> None:
    now = dt.datetime.now(dt.UTC)
    recent = _date_time(now - dt.timedelta(minutes=10))
    await Transcript(_backend(PLAIN)).run(LOGIN + f"""
        C: b APPEND INBOX "{recent}" {{{len(PLAIN)}+}}
        {_lines(PLAIN)}
        S: b OK [APPENDUID 1 2] APPEND completed
        C: c SELECT INBOX
        S: * ...
        S: * ...
        S: * ...
        S: * ...
        S: * ...
        S: * ...
        S: * ...
        S: * ...
        S: * ...
        S: c OK [READ-WRITE] SELECT completed
        C: d SEARCH YOUNGER 3600
        S: * SEARCH 2
        S: d OK SEARCH completed
        C: e SEARCH OLDER 3600
        S: * SEARCH 1
        S: e OK SEARCH completed
        C: f UID SEARCH OR YOUNGER 60 OLDER 86400
        S: * SEARCH 1
        S: f OK SEARCH completed
        C: g SEARCH YOUNGER 0
        S: g BAD Invalid number
    """)


SELECT_INBOX = """
        S: * FLAGS (...)
        S: * ... EXISTS
        S: * ... RECENT
        S: * OK [UNSEEN 1] First unseen
        S: * OK [PERMANENTFLAGS (...)] Limited
        S: * OK [UIDVALIDITY ...] UIDs valid
        S: * OK [UIDNEXT ...] Predicted next UID
        S: * OK [HIGHESTMODSEQ ...] Highest
"""


async def test_objectid_mailboxid_emailid_threadid() -> None:
    await Transcript(_backend(PLAIN, ALTERNATIVE, HTML_ONLY)).run(LOGIN + "C: b SELECT INBOX" + SELECT_INBOX + r"""
        S: * OK [MAILBOXID (F1)] Mailbox ID
        S: b OK [READ-WRITE] SELECT completed
        C: c FETCH 1:3 (EMAILID THREADID)
        S: * 1 FETCH (EMAILID (M1) THREADID NIL)
        S: * 2 FETCH (EMAILID (M2) THREADID NIL)
        S: * 3 FETCH (EMAILID (M3) THREADID NIL)
        S: c OK FETCH completed
        C: d COPY 1 Archive
        S: d OK [COPYUID 2 1 1] COPY completed
        C: e MOVE 2 Archive
        S: * OK [COPYUID 2 2 2] Moved
        S: * 2 EXPUNGE
        S: e OK MOVE completed
        C: f STATUS Archive (MESSAGES MAILBOXID)
        S: * STATUS Archive (MESSAGES 2 MAILBOXID (F2))
        S: f OK STATUS completed
        C: g RENAME Archive Old
        S: g OK RENAME completed
        C: h LIST "" Old RETURN (STATUS (MAILBOXID))
        S: * LIST (\HasNoChildren) "/" Old
        S: * STATUS Old (MAILBOXID (F2))
        S: h OK LIST completed
        C: i EXAMINE Old
        S: * FLAGS (...)
        S: * 2 EXISTS
        S: * 2 RECENT
        S: * OK [UNSEEN 1] First unseen
        S: * OK [PERMANENTFLAGS ()] Limited
        S: * OK [UIDVALIDITY 2] UIDs valid
        S: * OK [UIDNEXT 3] Predicted next UID
        S: * OK [HIGHESTMODSEQ ...] Highest
        S: * OK [MAILBOXID (F2)] Mailbox ID
        S: i OK [READ-ONLY] EXAMINE completed
        C: j UID FETCH 1:* EMAILID
        S: * 1 FETCH (EMAILID (M1) UID 1)
        S: * 2 FETCH (EMAILID (M2) UID 2)
        S: j OK FETCH completed
        C: k SEARCH EMAILID M2
        S: * SEARCH 2
        S: k OK SEARCH completed
        C: l SEARCH OR EMAILID M3 THREADID T1
        S: * SEARCH
        S: l OK SEARCH completed
        C: m SEARCH EMAILID M!
        S: m BAD ...
    """)


async def test_savedate_fetch_and_search() -> None:
    today = dt.datetime.now(dt.UTC)
    day = today.strftime("%d-%b-%Y")
    await Transcript(_backend(PLAIN, ALTERNATIVE)).run(LOGIN + "C: b SELECT INBOX" + SELECT_INBOX + f"""
        S: * OK [MAILBOXID (F1)] Mailbox ID
        S: b OK [READ-WRITE] SELECT completed
        C: c FETCH 1 (SAVEDATE INTERNALDATE)
        S: * 1 FETCH (SAVEDATE "02-Mar-2026 09:00:00 +0000" INTERNALDATE "02-Mar-2026 09:00:00 +0000")
        S: c OK FETCH completed
        C: d COPY 2 Archive
        S: d OK [COPYUID 2 2 1] COPY completed
        C: e SEARCH SAVEDON 2-Mar-2026
        S: * SEARCH 1 2
        S: e OK SEARCH completed
        C: f SEARCH SAVEDATESUPPORTED SAVEDBEFORE 3-Mar-2026 SAVEDSINCE 1-Mar-2026
        S: * SEARCH 1 2
        S: f OK SEARCH completed
        C: g SELECT Archive
        S: * ...
        S: * ...
        S: * ...
        S: * ...
        S: * ...
        S: * ...
        S: * ...
        S: * ...
        S: * ...
        S: g OK [READ-WRITE] SELECT completed
        C: h FETCH 1 (INTERNALDATE SAVEDATE)
        S: * 1 FETCH (INTERNALDATE "02-Mar-2026 09:00:00 +0000" SAVEDATE "{day} ...")
        S: h OK FETCH completed
        C: i SEARCH SAVEDON {day.lstrip("0")}
        S: * SEARCH 1
        S: i OK SEARCH completed
        C: j SEARCH SAVEDBEFORE {day}
        S: * SEARCH
        S: j OK SEARCH completed
        C: k SEARCH SAVEDSINCE 32-Mar-2026
        S: k BAD Invalid date
    """)


async def test_preview_of_plain_alternative_html_and_attachment_only() -> None:
    await Transcript(_backend(PLAIN, ALTERNATIVE, HTML_ONLY, ATTACHMENT_ONLY)).run(
        LOGIN + "C: b SELECT INBOX" + SELECT_INBOX + """
        S: * OK [MAILBOXID (F1)] Mailbox ID
        S: b OK [READ-WRITE] SELECT completed
        C: c FETCH 1:4 (PREVIEW)
        S: * 1 FETCH (PREVIEW "Bonjour, voici le compte rendu.")
        S: * 2 FETCH (PREVIEW {19}
        S: Résultats normaux.)
        S: * 3 FETCH (PREVIEW "Rendez-vous lundi")
        S: * 4 FETCH (PREVIEW "")
        S: c OK FETCH completed
        C: d UID FETCH 1 (PREVIEW (LAZY) FLAGS)
        S: * 1 FETCH (PREVIEW "Bonjour, voici le compte rendu." FLAGS (...) UID 1)
        S: d OK FETCH completed
        C: e FETCH 1 (PREVIEW (FUZZY))
        S: e BAD ...
    """)


def test_preview_is_bounded_and_decodes_only_the_start_of_a_long_part() -> None:
    long = b"Subject: x\r\n\r\n" + b"word " * 100_000
    text = preview(mime.parse(long))
    assert len(text) == MAX_CHARS and text.startswith("word word")
    html = b"Content-Type: text/html\r\n\r\n<p>caf&eacute; &lt;ok&gt;</p>"
    assert preview(mime.parse(html)) == "caf\u00e9 <ok>"
    base64 = b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\nw6l0w6k=\r\n"
    assert preview(mime.parse(base64)) == "\u00e9t\u00e9"
    unknown = b"Content-Type: text/plain; charset=x-unknown\r\nContent-Transfer-Encoding: x-gzip\r\n\r\nzz"
    assert preview(mime.parse(unknown)) == ""


async def test_literal_minus_is_advertised_and_bounds_non_synchronizing_literals() -> None:
    config = SessionConfig(literal_mode=LiteralMode.MINUS, idle_poll=0.05)
    await Transcript(config=config).run(f"""
        S: * OK [CAPABILITY IMAP4rev1 IMAP4rev2 LITERAL- SASL-IR ID AUTH=PLAIN] IMAP4rev1 service ready
        C: a LOGIN {{5+}}
        C: alice pw
        S: a OK [CAPABILITY IMAP4rev1 IMAP4rev2 LITERAL- SASL-IR ID IDLE ...] Logged in
        C: b APPEND INBOX {{{len(PLAIN)}+}}
        {_lines(PLAIN)}
        S: b OK [APPENDUID 1 1] APPEND completed
        C: c APPEND INBOX {{4097+}}
        S: c BAD [TOOBIG] Literal too large
        S: * BYE Too many protocol errors
    """)
    # A synchronizing literal over 4096 octets is fine under LITERAL- (RFC 7888 §4).
    t = Transcript(config=config)
    await t.greet()
    await t.feed(b"a LOGIN alice pw\r\n")
    assert await t.feed(b"b APPEND INBOX {5000}\r\n") == b"+ Ready for literal data\r\n"
    out = await t.feed(b"Subject: big\r\n\r\n" + b"x" * (5000 - 16) + b"\r\n")
    assert out == b"b OK [APPENDUID 1 1] APPEND completed\r\n"


async def test_literal_none_refuses_non_synchronizing_literals() -> None:
    t = Transcript(config=SessionConfig(literal_mode=LiteralMode.NONE))
    greeting = await t.greet()
    assert b"LITERAL" not in greeting
    assert (await t.feed(b"a LOGIN {5+}\r\nalice pw\r\n")).startswith(b"a BAD Non-synchronizing literals")


async def test_compress_in_the_session() -> None:
    t = Transcript()
    await t.run("""
        S: * OK ...
        C: a COMPRESS DEFLATE
        S: a BAD Command not valid in this state
        C: b LOGIN alice pw
        S: b OK ...
        C: c COMPRESS LZW
        S: c BAD Unknown compression mechanism
        C: d COMPRESS DEFLATE
        S: d OK DEFLATE active
    """)
    assert t.session.compress_requested
    # The session reads nothing more until the shell switched: input after the OK waits.
    assert await t.feed(b"e NOOP\r\n") == b""
    assert t.session.compression_started() == b"e NOOP\r\n"  # the shell inflates and feeds it
    assert t.session.compressed and not t.session.compress_requested
    await t.run("""
        C: f COMPRESS DEFLATE
        S: f NO [COMPRESSIONACTIVE] Compression is already active
        C: g SELECT INBOX
        S: * ...
        S: * ...
        S: * ...
        S: * ...
        S: * ...
        S: * ...
        S: * ...
        S: * ...
        S: g OK [READ-WRITE] SELECT completed
        C: h COMPRESS DEFLATE
        S: h NO [COMPRESSIONACTIVE] Compression is already active
    """)
