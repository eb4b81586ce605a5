"""An account suspended or removed while its sessions are open (as Dovecot kicks the user):
over :mod:`imap.testing`, the session asks :meth:`~imap.backend.Mailboxes.still_open` before
each command of the authenticated states and answers an untagged ``* BYE`` then closes
(RFC 9051 §7.1.5), with nothing of the command carried out; an IDLE or NOTIFY session ends
within ``access_check`` seconds without a command; a session of another user goes on. The
store's side (status read, bounded staleness, audit): tests/imap_server/test_suspended.py."""

from __future__ import annotations

import asyncio

from imap.proto import replies
from imap.session import SessionConfig
from imap.testing import MemoryBackend, Transcript

BYE = replies.ACCOUNT_DISABLED.line().decode().rstrip("\r\n")
PLAIN = b"From: a@example.test\r\nSubject: s\r\n\r\nbody\r\n"
FAST = SessionConfig(idle_poll=30.0, access_check=0.05)


async def test_next_command_after_suspension_is_bye_and_close() -> None:
    backend = MemoryBackend({"alice": "pw", "bob": "pw2"})
    alice = Transcript(backend)
    bob = Transcript(backend)
    await alice.run("""
        S: * OK ...
        C: a LOGIN alice pw
        S: a OK ...
        C: b SELECT INBOX
        S: * ...
        S: * ...
        S: * ...
        S: * ...
        S: * ...
        S: * ...
        S: * ...
        S: * ...
        S: b OK ...
    """)
    await bob.run("""
        S: * OK ...
        C: a LOGIN bob pw2
        S: a OK ...
    """)
    backend.users["alice"].suspended = True
    before = len(backend.users["alice"].folders["INBOX"].messages)
    answer = await alice.feed(b"c APPEND INBOX {%d+}\r\n" % len(PLAIN) + PLAIN + b"\r\n")
    assert answer == replies.ACCOUNT_DISABLED.line() == (
        b"* BYE Account disabled by the administrator; closing connection\r\n")
    assert alice.session.closed
    assert len(backend.users["alice"].folders["INBOX"].messages) == before  # nothing appended
    assert await alice.feed(b"d NOOP\r\n") == b""  # closed: nothing more is read
    await bob.run("""
        C: b NOOP
        S: b OK NOOP completed
    """)


async def test_no_check_before_login() -> None:
    backend = MemoryBackend()
    backend.users["alice"].suspended = True
    await Transcript(backend).run("""
        S: * OK ...
        C: a CAPABILITY
        S: * CAPABILITY ...
        S: a OK CAPABILITY completed
    """)
    assert backend.users["alice"].access_checks == 0


async def test_idle_session_ends_within_the_check_interval() -> None:
    backend = MemoryBackend()
    t = Transcript(backend, config=FAST)
    await t.run("""
        S: * OK ...
        C: a LOGIN alice pw
        S: a OK ...
        C: b SELECT INBOX
        S: * ...
        S: * ...
        S: * ...
        S: * ...
        S: * ...
        S: * ...
        S: * ...
        S: * ...
        S: b OK ...
        C: c IDLE
        S: + idling
    """)
    backend.users["alice"].suspended = True
    await t.run(f"S: {BYE}", wait=1.0)  # idle_poll is 30 s: only the access check ends it
    for _ in range(100):
        if t.session.closed:
            break
        await asyncio.sleep(0.01)
    assert t.session.closed


async def test_idle_without_selected_mailbox_ends_too() -> None:
    backend = MemoryBackend()
    t = Transcript(backend, config=FAST)
    await t.run("""
        S: * OK ...
        C: a LOGIN alice pw
        S: a OK ...
        C: c IDLE
        S: + idling
    """)
    backend.users["alice"].suspended = True
    await t.run(f"S: {BYE}", wait=1.0)


async def test_notify_session_ends_without_a_command() -> None:
    backend = MemoryBackend()
    t = Transcript(backend, config=SessionConfig(idle_poll=0.05))
    await t.run("""
        S: * OK ...
        C: a LOGIN alice pw
        S: a OK ...
        C: b NOTIFY SET (personal (MessageNew MessageExpunge))
        S: b OK ...
    """)
    backend.users["alice"].suspended = True
    await t.run(f"S: {BYE}", wait=1.0)
    assert t.session.closed
