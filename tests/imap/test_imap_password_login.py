"""``[auth] password_login = false`` in the IMAP core (issue 19) over :mod:`imap.testing`:
CAPABILITY (and the greeting) says LOGINDISABLED with no AUTH=PLAIN (RFC 3501 §6.2.3), LOGIN
answers ``NO [CANNOT]`` and AUTHENTICATE PLAIN is an unsupported mechanism, without the
backend being asked; one client fed byte by byte. The default keeps both. The live gateway:
tests/gateway/test_password_login.py."""

from __future__ import annotations

import base64

from imap.backend import Credentials
from imap.session import SessionConfig
from imap.testing import MemoryBackend, MemoryMailboxes, Transcript

NO_PASSWORDS = SessionConfig(idle_poll=0.05, password_login=False)
PLAIN = base64.b64encode(b"\0alice\0pw").decode()


class CountingBackend(MemoryBackend):
    asked = 0

    async def authenticate(self, credentials: Credentials) -> MemoryMailboxes:
        CountingBackend.asked += 1
        return await super().authenticate(credentials)


async def test_no_passwords_offered_nor_taken() -> None:
    CountingBackend.asked = 0
    await Transcript(CountingBackend(), config=NO_PASSWORDS).run(f"""
        S: * OK [CAPABILITY IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID LOGINDISABLED] ...
        C: a CAPABILITY
        S: * CAPABILITY IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID LOGINDISABLED
        S: a OK CAPABILITY completed
        C: b LOGIN alice pw
        S: b NO [CANNOT] Passwords are not accepted here: use AUTHENTICATE
        C: c AUTHENTICATE PLAIN {PLAIN}
        S: c NO Unsupported authentication mechanism
        C: d AUTHENTICATE PLAIN
        S: d NO Unsupported authentication mechanism
        C: e SELECT INBOX
        S: e BAD Command not valid in this state
    """)
    assert CountingBackend.asked == 0


async def test_default_offers_and_takes_passwords() -> None:
    await Transcript(MemoryBackend()).run("""
        S: * OK [CAPABILITY IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID AUTH=PLAIN] ...
        C: a LOGIN alice pw
        S: a OK ...
    """)


async def test_no_passwords_fed_byte_by_byte() -> None:
    t = Transcript(MemoryBackend(), config=NO_PASSWORDS)
    assert b"LOGINDISABLED" in await t.greet()
    out = b""
    for octet in f"a LOGIN {{5+}}\r\nalice pw\r\nb AUTHENTICATE PLAIN {PLAIN}\r\n".encode():
        out += await t.feed(bytes([octet]))
    assert out == (b"a NO [CANNOT] Passwords are not accepted here: use AUTHENTICATE\r\n"
                   b"b NO Unsupported authentication mechanism\r\n")
    await t.close()
