"""QUOTA (RFC 9208) over :mod:`imap.testing`: GETQUOTAROOT, GETQUOTA, SETQUOTA refused,
STATUS DELETED / DELETED-STORAGE, APPEND / MULTIAPPEND / COPY over quota refused with
``NO [OVERQUOTA]`` and nothing stored, MOVE within the root allowed; one client fed byte by
byte. The live server over the real store: tests/imap_server/test_transcript_quota.py."""

from __future__ import annotations

from imap.proto import commands as c
from imap.proto.grammar import parse_command
from imap.state import State, capabilities
from imap.testing import MemoryBackend, Transcript

PLAIN = b"Subject: " + b"x" * 526  # 535 octets on one line (a script line holds the literal)
LOGIN = """
    S: * OK ...
    C: a LOGIN alice pw
    S: a OK ...
"""


def _backend(**limits: int) -> MemoryBackend:
    backend = MemoryBackend(folders=("INBOX", "Archive"))
    backend.users["alice"].quota_limits.update(limits)
    return backend


def test_capabilities_name_the_resources_and_not_quotaset() -> None:
    caps = capabilities(State.AUTHENTICATED, tls=True)
    assert {"QUOTA", "QUOTA=RES-STORAGE", "QUOTA=RES-MESSAGE"} <= set(caps)
    assert "QUOTASET" not in caps  # RFC 9208 §3.2: SETQUOTA is refused here
    assert "QUOTA" not in capabilities(State.NOT_AUTHENTICATED, tls=True)


def test_grammar() -> None:
    assert parse_command(b"a GETQUOTA \"\"") == c.GetQuota("a", "")
    assert parse_command(b"a GETQUOTAROOT inbox") == c.GetQuotaRoot("a", "INBOX")
    assert parse_command(b"a SETQUOTA \"\" (STORAGE 512 message 10)") == c.SetQuota(
        "a", "", (("STORAGE", 512), ("MESSAGE", 10)))
    assert parse_command(b"a SETQUOTA \"\" ()") == c.SetQuota("a", "", ())


async def test_no_limit_means_no_quota_root() -> None:
    await Transcript(_backend()).run(LOGIN + """
        C: b GETQUOTAROOT INBOX
        S: * QUOTAROOT INBOX
        S: b OK GETQUOTAROOT completed
        C: c GETQUOTA ""
        S: c NO No such quota root
    """)


async def test_getquotaroot_getquota_and_setquota_refused() -> None:
    backend = _backend(STORAGE=2, MESSAGE=3)
    backend.users["alice"].deliver(PLAIN)
    await Transcript(backend).run(LOGIN + """
        C: b GETQUOTAROOT inbox
        S: * QUOTAROOT INBOX ""
        S: * QUOTA "" (STORAGE 1 2 MESSAGE 1 3)
        S: b OK GETQUOTAROOT completed
        C: c GETQUOTA ""
        S: * QUOTA "" (STORAGE 1 2 MESSAGE 1 3)
        S: c OK GETQUOTA completed
        C: d GETQUOTA "User quota"
        S: d NO No such quota root
        C: e GETQUOTAROOT Nowhere
        S: e NO [NONEXISTENT] No such mailbox
        C: f SETQUOTA "" (STORAGE 100)
        S: f NO [NOPERM] Quotas are set by the administrators
        C: g SETQUOTA "" STORAGE 100
        S: g BAD Syntax error
        C: h SETQUOTA "" (STORAGE -1)
        S: h BAD Invalid number
    """)


async def test_append_and_copy_over_quota_store_nothing_move_is_free() -> None:
    backend = _backend(MESSAGE=2)
    backend.users["alice"].deliver(PLAIN)
    await Transcript(backend).run(LOGIN + f"""
        C: b APPEND INBOX {{{len(PLAIN)}+}}
        C: {PLAIN.decode()}
        S: b OK [APPENDUID 1 2] APPEND completed
        C: c APPEND INBOX {{{len(PLAIN)}+}}
        C: {PLAIN.decode()}
        S: c NO [OVERQUOTA] Quota exceeded
        C: d STATUS INBOX (MESSAGES)
        S: * STATUS INBOX (MESSAGES 2)
        S: d OK STATUS completed
        C: e SELECT INBOX
        S: * FLAGS ...
        S: * 2 EXISTS
        S: * 2 RECENT
        S: * OK [UNSEEN 1] First unseen
        S: * OK [PERMANENTFLAGS ...] Limited
        S: * OK [UIDVALIDITY 1] UIDs valid
        S: * OK [UIDNEXT 3] Predicted next UID
        S: * OK [HIGHESTMODSEQ ...] Highest
        S: * OK [MAILBOXID (...)] Mailbox ID
        S: e OK [READ-WRITE] SELECT completed
        C: f COPY 1 Archive
        S: f NO [OVERQUOTA] Quota exceeded
        C: g STATUS Archive (MESSAGES)
        S: * STATUS Archive (MESSAGES 0)
        S: g OK STATUS completed
        C: h MOVE 1 Archive
        S: * OK [COPYUID 2 1 1] Moved
        S: * 1 EXPUNGE
        S: h OK MOVE completed
        C: i GETQUOTAROOT Archive
        S: * QUOTAROOT Archive ""
        S: * QUOTA "" (MESSAGE 2 2)
        S: i OK GETQUOTAROOT completed
    """)


async def test_multiappend_over_quota_stores_none() -> None:
    backend = _backend(STORAGE=1)  # 1 KiB: one message of 535 octets fits, two do not
    await Transcript(backend).run(LOGIN + f"""
        C: b APPEND INBOX {{{len(PLAIN)}+}}
        C: {PLAIN.decode()} {{{len(PLAIN)}+}}
        C: {PLAIN.decode()}
        S: b NO [OVERQUOTA] Quota exceeded
        C: c STATUS INBOX (MESSAGES)
        S: * STATUS INBOX (MESSAGES 0)
        S: c OK STATUS completed
    """)


async def test_status_deleted_and_deleted_storage() -> None:
    backend = _backend()
    for _ in range(3):
        backend.users["alice"].deliver(PLAIN)
    backend.users["alice"].deliver(PLAIN + b"y" * 600, flags=["\\Deleted"])
    backend.users["alice"].deliver(PLAIN, flags=["\\Deleted", "\\Seen"])
    # RFC 9208 §4.2: DELETED counts the \Deleted messages, DELETED-STORAGE their size in KiB
    # (1135 + 535 octets: 2 KiB, a started KiB counting).
    await Transcript(backend).run(LOGIN + """
        C: b STATUS INBOX (MESSAGES DELETED DELETED-STORAGE)
        S: * STATUS INBOX (MESSAGES 5 DELETED 2 DELETED-STORAGE 2)
        S: b OK STATUS completed
    """)


async def test_getquotaroot_fed_byte_by_byte() -> None:
    backend = _backend(STORAGE=10)
    backend.users["alice"].deliver(PLAIN)
    t = Transcript(backend)
    assert (await t.greet()).startswith(b"* OK ")
    await t.feed(b"a LOGIN alice pw\r\n")
    out = b""
    for octet in b'b GETQUOTAROOT "INBOX"\r\nc GETQUOTA ""\r\nd SETQUOTA "" (STORAGE 1)\r\n':
        out += await t.feed(bytes([octet]))
    assert out == (b'* QUOTAROOT INBOX ""\r\n* QUOTA "" (STORAGE 1 10)\r\nb OK GETQUOTAROOT completed\r\n'
                   b'* QUOTA "" (STORAGE 1 10)\r\nc OK GETQUOTA completed\r\n'
                   b"d NO [NOPERM] Quotas are set by the administrators\r\n")
    await t.close()
