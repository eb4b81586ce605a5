"""QUOTA (RFC 9208) on the live server over the real store (both stores with
GATEWAY_TEST_STORE): a client fed byte by byte reads its quota root; APPEND and COPY over a
limit answer ``NO [OVERQUOTA]`` and store nothing; MOVE stays free; STATUS DELETED /
DELETED-STORAGE; and the store's own checks (MULTIAPPEND, usage across folders, an admin
limit of 0 meaning none, back to the default)."""

from __future__ import annotations

import pytest

from gateway.accounts.pros import add_hosted_domain, add_pro, pro_by_address
from gateway.imap_adapter.backend import StoreBackend
from gateway.mailstore import quota
from gateway.store.changes import ChangeHub
from gateway.testing.store import Store
from imap.backend import Credentials, NewMessage, OverQuota
from imap.proto.commands import StoreMode
from tests.imap_server.kit import PLAIN, ImapEnv, Wire, tagged, wire_tls

ADDRESS = "dr.quota@clinic.test"
SECRET = "quota test password 42"


def set_quota(env: ImapEnv, address: str, **limits: int | None) -> None:
    svc = env.live.services
    with svc.db.write() as session:
        account = pro_by_address(session, address)
        assert account is not None
        quota.set_limits(session, account.mailbox_id, **limits)


def send_bytewise(wire: Wire, data: bytes) -> None:
    for i in range(len(data)):
        wire.send(data[i : i + 1])


def test_quota_root_fed_byte_by_byte_and_overquota(env: ImapEnv, account: str) -> None:
    env.deliver(account, PLAIN)
    kib = -(-len(PLAIN) // 1024)
    set_quota(env, account, storage_kib=kib + 1, messages=2)
    wire = wire_tls(env, account)
    send_bytewise(wire, b"q1 GETQUOTAROOT inbox\r\n")
    assert wire.until("q1") == [b'* QUOTAROOT INBOX ""\r\n', b'* QUOTA "" (STORAGE %d %d MESSAGE 1 2)\r\n'
                                % (kib, kib + 1), b"q1 OK GETQUOTAROOT completed\r\n"]
    send_bytewise(wire, b'q2 SETQUOTA "" (STORAGE 99999)\r\n')
    assert wire.until("q2") == [b"q2 NO [NOPERM] Quotas are set by the administrators\r\n"]
    big = b"Subject: big\r\n\r\n" + b"z" * 2048 + b"\r\n"  # more than the one KiB left
    assert tagged(wire.cmd(b"APPEND INBOX {%d+}\r\n" % len(big) + big)) == b"NO [OVERQUOTA] Quota exceeded\r\n"
    wire.ok(b"APPEND Drafts (\\Deleted) {%d+}\r\n" % len(PLAIN) + PLAIN)  # the second message: fits
    assert tagged(wire.cmd(b"APPEND INBOX {%d+}\r\n" % len(PLAIN) + PLAIN)) == b"NO [OVERQUOTA] Quota exceeded\r\n"
    status = wire.ok("STATUS Drafts (MESSAGES DELETED DELETED-STORAGE)")[0]
    assert status == b"* STATUS Drafts (MESSAGES 1 DELETED 1 DELETED-STORAGE %d)\r\n" % kib
    wire.ok("SELECT INBOX")
    assert tagged(wire.cmd("COPY 1 Drafts")) == b"NO [OVERQUOTA] Quota exceeded\r\n"
    assert wire.ok("STATUS Drafts (MESSAGES)")[0] == b"* STATUS Drafts (MESSAGES 1)\r\n"
    moved = wire.ok("MOVE 1 Archive")  # RFC 9208: a MOVE within the quota root adds no usage
    assert moved[-1].endswith(b"MOVE completed\r\n")
    set_quota(env, account, messages=0)  # 0: no limit on MESSAGE, STORAGE still limited
    assert wire.ok("GETQUOTA \"\"")[0] == b'* QUOTA "" (STORAGE %d %d)\r\n' % (-(-2 * len(PLAIN) // 1024), kib + 1)
    set_quota(env, account, storage_kib=None, messages=None)  # the default: none configured here
    assert wire.ok("GETQUOTAROOT INBOX")[0] == b"* QUOTAROOT INBOX\r\n"
    wire.close()


@pytest.fixture
def backend(store: Store) -> StoreBackend:
    with store.db.write() as session:
        add_pro(session, store.keys, ADDRESS, add_hosted_domain(session, "clinic.test"), password=SECRET)
    return StoreBackend(store.db, store.keys, ChangeHub(), poll_interval=0.1,
                        quota_defaults=quota.QuotaDefaults(storage_kib=0, messages=3))


async def test_store_quota_counts_every_folder_and_multiappend_is_all_or_nothing(backend: StoreBackend,
                                                                                 store: Store) -> None:
    boxes = await backend.authenticate(Credentials(ADDRESS, SECRET, "192.0.2.7", True))
    root = await boxes.quota("")
    assert root is not None and [(r.name, r.usage, r.limit) for r in root.resources] == [("MESSAGE", 0, 3)]
    await boxes.append("INBOX", PLAIN, (), None)
    await boxes.append("Sent", PLAIN, (), None)
    with pytest.raises(OverQuota):
        await boxes.append_many("Drafts", [NewMessage(PLAIN), NewMessage(PLAIN)])
    assert (await boxes.folder_status("Drafts")).messages == 0  # neither of the two
    with store.db.read() as session:
        mailbox_id = boxes.mailbox_id
        found = quota.current(session, mailbox_id, backend.quota_defaults)
    assert (found.usage.messages, found.usage.octets, found.limits.messages) == (2, 2 * len(PLAIN), 3)
    assert not found.full and found.exceeded_by(len(PLAIN), 2) == "MESSAGE"
    with store.db.write() as session:
        quota.set_limits(session, mailbox_id, messages=0)  # the admin's 0: no limit, whatever the default
    await boxes.append_many("Drafts", [NewMessage(PLAIN), NewMessage(PLAIN)])
    assert await boxes.quota("") is None
    assert await boxes.quota_roots("INBOX") == ()
    with store.db.write() as session:
        quota.set_limits(session, mailbox_id, messages=None, storage_kib=1)
    with pytest.raises(OverQuota):
        await boxes.copy("INBOX", [1], "Archive")
    # the usage follows deletions, with no counter to keep
    await boxes.store_flags("Drafts", [1, 2], StoreMode.ADD, ["\\Deleted"])
    await boxes.expunge("Drafts")
    with store.db.read() as session:
        assert quota.usage(session, mailbox_id).messages == 2
