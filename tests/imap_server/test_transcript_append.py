"""Transcripts: MULTIAPPEND (RFC 3502), CATENATE (RFC 4469) and BINARY's literal8 APPEND
(RFC 3516) over IMAPS against the real store, one client feeding its commands one byte at a
time; and the store's MULTIAPPEND as one transaction (a failure on a later message leaves no
earlier one behind)."""

from __future__ import annotations

import re

import pytest

from gateway.accounts.pros import add_hosted_domain, add_pro
from gateway.imap_adapter.backend import StoreBackend
from gateway.mailstore import message_ops
from gateway.store.changes import ChangeHub
from gateway.testing.store import Store
from imap.backend import Credentials, MailboxNotFound, NewMessage
from tests.imap_server.kit import PLAIN, ImapEnv, Wire, tagged, wire_tls

ADDRESS = "dr.multi@clinic.test"
SECRET = "multiappend test password"


@pytest.fixture
def backend(store: Store) -> StoreBackend:
    with store.db.write() as session:
        add_pro(session, store.keys, ADDRESS, add_hosted_domain(session, "clinic.test"), password=SECRET)
    return StoreBackend(store.db, store.keys, ChangeHub(), poll_interval=0.1)


def send_bytewise(wire: Wire, data: bytes) -> None:
    """Send ``data`` one octet per write (each a TCP/TLS record of its own)."""
    for i in range(len(data)):
        wire.send(data[i : i + 1])


def test_multiappend_fed_byte_by_byte(env: ImapEnv, account: str) -> None:
    wire = wire_tls(env, account)
    second = b"From: b@clinic.test\r\nSubject: two\r\n\r\nsecond\r\n"
    send_bytewise(wire, b"m1 APPEND Sent (\\Seen) {%d}\r\n" % len(PLAIN))
    assert wire.response() == b"+ Ready for literal data\r\n"  # RFC 3501 §7.5, per literal
    send_bytewise(wire, PLAIN + b' (\\Flagged) " 5-Mar-2026 10:11:12 +0100" {%d}\r\n' % len(second))
    assert wire.response() == b"+ Ready for literal data\r\n"
    send_bytewise(wire, second + b" {3+}\r\nabc\r\n")
    ok = wire.until("m1")[-1]
    match = re.fullmatch(rb"m1 OK \[APPENDUID (\d+) 1:3\] APPEND completed\r\n", ok)  # RFC 4315 §3
    assert match is not None
    wire.ok("SELECT Sent")
    fetched = wire.ok("FETCH 1:3 (UID FLAGS BODY.PEEK[])")
    assert fetched[0].startswith(b"* 1 FETCH (UID 1 FLAGS (\\Recent \\Seen) BODY[] {%d}\r\n" % len(PLAIN) + PLAIN)
    assert fetched[1].startswith(b"* 2 FETCH (UID 2 FLAGS (\\Recent \\Flagged) BODY[] {%d}\r\n" % len(second))
    assert fetched[2] == b"* 3 FETCH (UID 3 FLAGS (\\Recent) BODY[] {3}\r\nabc)\r\n"
    wire.close()


def test_catenate_fed_byte_by_byte(env: ImapEnv, account: str) -> None:
    wire = wire_tls(env, account)
    wire.ok(b"APPEND INBOX {%d+}\r\n" % len(PLAIN) + PLAIN)
    uidvalidity = wire.ok("STATUS INBOX (UIDVALIDITY)")[0].split()[-1].rstrip(b")")
    reply = b"Merci.\r\n"
    send_bytewise(wire, b'c1 APPEND Drafts (\\Draft) CATENATE (URL "/INBOX;UIDVALIDITY=%s/;UID=1/;SECTION=HEADER"'
                        b" TEXT {%d}\r\n" % (uidvalidity, len(reply)))
    assert wire.response() == b"+ Ready for literal data\r\n"
    send_bytewise(wire, reply + b' URL "/INBOX/;UID=1/;SECTION=TEXT/;PARTIAL=0.9")\r\n')
    assert re.fullmatch(rb"c1 OK \[APPENDUID \d+ 1\] APPEND completed\r\n", wire.until("c1")[-1])
    bad = wire.cmd('APPEND Drafts CATENATE (URL "/INBOX;UIDVALIDITY=1234567/;UID=1")')
    assert tagged(bad) == b"NO [BADURL /INBOX;UIDVALIDITY=1234567/;UID=1] Invalid or unknown CATENATE URL\r\n"
    wire.ok("SELECT Drafts")
    fetched = wire.ok("FETCH 1:* BODY.PEEK[]")
    header = PLAIN[: PLAIN.index(b"\r\n\r\n") + 4]
    expected = header + reply + b"Bonjour,\r"
    assert fetched == [b"* 1 FETCH (BODY[] {%d}\r\n" % len(expected) + expected + b")\r\n", fetched[-1]]
    wire.close()


def test_literal8_append_fed_byte_by_byte_then_binary_fetch(env: ImapEnv, account: str) -> None:
    wire = wire_tls(env, account)
    content = b"\x00\x01\xfe\xff\r\n\n\x00"
    message = (b"From: a@clinic.test\r\nMIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\n"
               b"Content-Transfer-Encoding: binary\r\n\r\n" + content)
    send_bytewise(wire, b"b1 APPEND INBOX ~{%d}\r\n" % len(message))  # RFC 3516 §4.2 literal8
    assert wire.response() == b"+ Ready for literal data\r\n"
    send_bytewise(wire, message + b"\r\n")
    assert re.fullmatch(rb"b1 OK \[APPENDUID \d+ 1\] APPEND completed\r\n", wire.until("b1")[-1])
    wire.ok("SELECT INBOX")
    body = wire.ok("FETCH 1 BODY.PEEK[1]")[0]
    assert b"\x00" not in body and b"AAH+/w0KCgA=" in body  # stored in base64
    fetched = wire.ok("FETCH 1 (BINARY.SIZE[1] BINARY.PEEK[1])")[0]
    assert fetched == b"* 1 FETCH (BINARY.SIZE[1] 8 BINARY[1] ~{8}\r\n" + content + b")\r\n"
    wire.close()


async def test_append_many_is_one_transaction(backend: StoreBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    boxes = await backend.authenticate(Credentials(ADDRESS, SECRET, "192.0.2.7", True))
    real = message_ops._append_one
    calls: list[bytes] = []

    def failing_on_the_second(*args: object, **kwargs: object) -> object:
        calls.append(args[4])  # type: ignore[arg-type]
        if len(calls) == 2:
            raise RuntimeError("disk full on the second message")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(message_ops, "_append_one", failing_on_the_second)
    with pytest.raises(RuntimeError):
        await boxes.append_many("INBOX", [NewMessage(PLAIN), NewMessage(b"Subject: 2\r\n\r\nx\r\n")])
    status = await boxes.folder_status("INBOX")
    assert (status.messages, status.uidnext) == (0, 1)  # RFC 3502: none of them, not the first alone
    monkeypatch.setattr(message_ops, "_append_one", real)
    result = await boxes.append_many("INBOX", [NewMessage(PLAIN, ("\\Seen",)), NewMessage(b"Subject: 2\r\n\r\nx\r\n")])
    assert result.uids == (1, 2) and result.uidvalidity == status.uidvalidity
    metas = await boxes.list_messages("INBOX")
    assert [m.flags for m in metas] == [{"\\Seen"}, set()]
    with pytest.raises(MailboxNotFound):
        await boxes.append_many("Nowhere", [NewMessage(PLAIN)])

