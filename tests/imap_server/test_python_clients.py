"""Real Python clients against the live server: imaplib (STARTTLS and IMAPS), aioimaplib,
imap-tools. Each fetches the mailbox byte-for-byte; flags set by one are seen by another;
APPEND to Sent and MOVE to Trash work from a client."""

from __future__ import annotations

import asyncio
import base64
import imaplib
import re
from collections.abc import Sequence

from aioimaplib import aioimaplib
from imap_tools import MailBox, MailMessage
from imap_tools.consts import MailMessageFlags

from tests.imap_server.kit import MESSAGES, PASSWORD, PLAIN, ImapEnv


def _bodies(data: Sequence[object]) -> list[bytes]:
    return [item[1] for item in data if isinstance(item, tuple) and isinstance(item[1], bytes)]


def test_imaplib_starttls_and_imaps_fetch_identical_bytes(env: ImapEnv, filled: str) -> None:
    for client in (env.starttls(filled), env.imaps(filled)):
        typ, count = client.select("INBOX", readonly=True)
        assert typ == "OK" and count == [b"3"]
        typ, data = client.uid("FETCH", "1:*", "(BODY.PEEK[])")
        assert typ == "OK" and _bodies(data) == list(MESSAGES)
        typ, data = client.fetch("1:*", "(RFC822)")
        assert _bodies(data) == list(MESSAGES)
        client.logout()


def test_imaplib_flags_are_seen_by_another_client(env: ImapEnv, filled: str) -> None:
    one, two = env.imaps(filled), env.starttls(filled)
    one.select("INBOX")
    two.select("INBOX")
    one.uid("STORE", "2", "+FLAGS", "(\\Flagged \\Answered)")
    typ, data = two.uid("FETCH", "2", "(FLAGS)")
    assert typ == "OK" and b"\\Flagged" in data[-1] and b"\\Answered" in data[-1]
    two.noop()
    one.logout()
    two.logout()


def test_imaplib_append_to_sent_and_move_to_trash(env: ImapEnv, filled: str) -> None:
    client = env.imaps(filled)
    typ, data = client.append("Sent", "(\\Seen)", imaplib.Time2Internaldate(1767225600), PLAIN)
    assert typ == "OK" and re.search(rb"\[APPENDUID \d+ 1\]", data[0])
    client.select("INBOX")
    typ, data = client.uid("MOVE", "1", "Trash")
    assert typ == "OK"
    assert client.select("INBOX")[1] == [b"2"]
    client.select("Trash")
    assert _bodies(client.uid("FETCH", "1", "(BODY.PEEK[])")[1]) == [MESSAGES[0]]
    client.select("Sent")
    assert _bodies(client.uid("FETCH", "1", "(BODY.PEEK[])")[1]) == [PLAIN]
    client.logout()


async def _aio_session(env: ImapEnv, account: str) -> tuple[list[bytes], bytes]:
    client = aioimaplib.IMAP4_SSL(env.host, env.imaps_port, ssl_context=env.client_context(), timeout=15)
    await client.wait_hello_from_server()
    assert (await client.login(account, PASSWORD)).result == "OK"
    assert (await client.select("INBOX")).result == "OK"
    response = await client.uid("fetch", "1:*", "(BODY.PEEK[])")
    assert response.result == "OK"
    bodies = [bytes(line) for line in response.lines if isinstance(line, bytearray)]
    # IDLE through aioimaplib: another client's APPEND arrives as a server push.
    idle = await client.idle_start(timeout=10)
    other = env.imaps(account)
    other.append("INBOX", None, None, PLAIN)
    other.logout()
    pushed = await client.wait_server_push(timeout=5)
    client.idle_done()
    await asyncio.wait_for(idle, 5)
    await client.logout()
    return bodies, b" ".join(pushed if isinstance(pushed, list) else [])


def test_aioimaplib_fetch_and_idle(env: ImapEnv, filled: str) -> None:
    bodies, pushed = asyncio.run(_aio_session(env, filled))
    assert bodies == list(MESSAGES)
    assert b"4 EXISTS" in pushed


class RawMessage(MailMessage):
    """imap-tools' message that also keeps the octets the server sent."""

    def __init__(self, fetch_data: list) -> None:  # type: ignore[type-arg]
        super().__init__(fetch_data)
        self.raw = self._get_message_data_parts(fetch_data)[0]


def test_imap_tools_fetch_flag_append_move(env: ImapEnv, filled: str) -> None:
    with MailBox(env.host, env.imaps_port, ssl_context=env.client_context()) as mailbox:
        mailbox.email_message_class = RawMessage
        mailbox.login(filled, PASSWORD, "INBOX")
        messages = list(mailbox.fetch(mark_seen=False))
        assert [m.raw for m in messages] == list(MESSAGES)  # type: ignore[attr-defined]
        assert messages[2].subject == "Résultats d'analyse à vérifier"
        assert messages[2].from_values is not None and messages[2].from_values.name == "Françoise Hébert"
        assert [a.filename for a in messages[1].attachments] == ["resultats.pdf"]
        mailbox.flag([messages[0].uid or ""], MailMessageFlags.SEEN, True)
        mailbox.append(PLAIN, "Sent", flag_set=[MailMessageFlags.SEEN])
        mailbox.move([messages[2].uid or ""], "Trash")
        assert [m.uid for m in mailbox.fetch(mark_seen=False)] == ["1", "2"]
        mailbox.folder.set("Trash")
        assert [m.raw for m in mailbox.fetch(mark_seen=False)] == [MESSAGES[2]]  # type: ignore[attr-defined]
    other = env.imaps(filled)
    other.select("INBOX")
    assert b"\\Seen" in other.uid("FETCH", "1", "(FLAGS)")[1][0]
    other.select("Sent")
    assert _bodies(other.uid("FETCH", "1:*", "(BODY.PEEK[])")[1]) == [PLAIN]
    other.logout()


def _after_login_capabilities(client: imaplib.IMAP4) -> imaplib.IMAP4:
    """imaplib keeps the capabilities seen before login (where ENABLE is not listed)."""
    client.capabilities = tuple(client.capability()[1][-1].decode().upper().split())
    return client


def test_imaplib_utf8_accept_and_imap4rev2(env: ImapEnv, filled: str) -> None:
    # RFC 6855: imaplib's enable("UTF8=ACCEPT") sends mailbox names as UTF-8 quoted strings
    # from then on; the live server answers in UTF-8 (no modified UTF-7).
    client = _after_login_capabilities(env.imaps(filled))
    assert client.enable("UTF8=ACCEPT")[0] == "OK" and client.utf8_enabled
    assert client.response("ENABLED")[1] == [b"UTF8=ACCEPT"]
    assert client.create('"Befunde Überweisung"')[0] == "OK"
    typ, data = client.list('""', '"Befunde*"')
    assert typ == "OK" and data == ['(\\HasNoChildren) "/" "Befunde Überweisung"'.encode()]
    assert client.select('"Befunde Überweisung"')[1] == [b"0"]
    client.logout()
    # RFC 9051: after ENABLE IMAP4rev2, SEARCH answers ESEARCH and SELECT sends no RECENT.
    rev2 = _after_login_capabilities(env.imaps(filled))
    assert rev2.enable("IMAP4rev2")[0] == "OK" and rev2.response("ENABLED")[1] == [b"IMAP4rev2"]
    typ, count = rev2.select("INBOX", readonly=True)
    assert typ == "OK" and count == [b"3"] and rev2.response("RECENT")[1] == [None]
    assert rev2.status("INBOX", "(MESSAGES DELETED)")[1] == [b"INBOX (MESSAGES 3 DELETED 0)"]
    typ, data = rev2.search(None, "ALL")
    assert typ == "OK" and rev2.response("ESEARCH")[1][0].endswith(b" ALL 1:3")
    rev2.logout()


def test_imaplib_smtputf8_message_with_and_without_utf8(env: ImapEnv, account: str) -> None:
    # RFC 6855 §5, the gateway's choice: the stored octets to everyone; the ENVELOPE in UTF-8
    # once UTF8=ACCEPT is enabled, 7-bit (RFC 2047) otherwise.
    raw = "From: Jörg <joerg@b.test>\r\nTo: x@b.test\r\nSubject: Befund für Jörg\r\n\r\nHallo\r\n".encode()
    env.deliver(account, raw)
    legacy = env.imaps(account)
    legacy.select("INBOX", readonly=True)
    typ, data = legacy.uid("FETCH", "1", "(ENVELOPE BODY.PEEK[])")
    assert typ == "OK" and _bodies(data) == [raw]
    assert b'"=?utf-8?b?' + base64.b64encode("Befund für Jörg".encode()) + b'?="' in data[0][0]
    legacy.logout()
    modern = _after_login_capabilities(env.imaps(account))
    modern.enable("UTF8=ACCEPT")
    modern.select("INBOX", readonly=True)
    typ, data = modern.uid("FETCH", "1", "(ENVELOPE)")
    assert typ == "OK" and '"Befund für Jörg" (("Jörg" NIL "joerg" "b.test"))'.encode() in data[0]
    modern.logout()
