"""The IMAP backend over the encrypted store, on SQLite and on the real PostgreSQL
(issue 4 §3, §5): folders, UIDs and MODSEQ, sealed summaries, copy/move re-sealing,
expunge, IDLE wake-ups, audited and throttled logins."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from gateway.accounts.auth import Authenticator
from gateway.accounts.pros import add_hosted_domain, add_pro
from gateway.accounts.throttle import LoginThrottle, ThrottleConfig
from gateway.imap_adapter.backend import StoreBackend, StoreMailboxes
from gateway.store.changes import ChangeHub
from gateway.store.models import AuditEntry, Folder, Message
from gateway.testing.store import Store
from imap.backend import AuthenticationFailed, Credentials, MailboxExists, MailboxNotFound
from imap.proto.commands import StoreMode
from imap.proto.errors import CommandFailed
from tests.imap_server.kit import MESSAGES, MULTIPART, NON_ASCII, PLAIN

ADDRESS = "dr.imap@clinic.test"
SECRET = "backend test password"


@pytest.fixture
def backend(store: Store) -> StoreBackend:
    with store.db.write() as session:
        domain = add_hosted_domain(session, "clinic.test")
        add_pro(session, store.keys, ADDRESS, domain, password=SECRET)
    return StoreBackend(store.db, store.keys, ChangeHub(), poll_interval=0.1)


async def _login(backend: StoreBackend) -> StoreMailboxes:
    return await backend.authenticate(Credentials(ADDRESS, SECRET, "192.0.2.7", True))


async def test_login_is_audited_and_failures_are_generic(backend: StoreBackend, store: Store) -> None:
    with pytest.raises(AuthenticationFailed):
        await backend.authenticate(Credentials(ADDRESS, "wrong", "192.0.2.7", True))
    boxes = await _login(backend)
    assert boxes.username == ADDRESS
    await boxes.select_folder("INBOX", read_only=False)
    with store.db.read() as session:
        rows = session.execute(select(AuditEntry).order_by(AuditEntry.id)).scalars().all()
    mine = [(r.action, r.peer, r.details) for r in rows if r.actor == f"pro:{ADDRESS}"]
    assert [a for a, _, _ in mine] == ["imap.login", "imap.login", "imap.select"]
    assert '"result":"auth.failed"' in mine[0][2] and all(peer == "192.0.2.7" for _, peer, _ in mine)


async def test_failed_logins_are_throttled(backend: StoreBackend) -> None:
    fast = ThrottleConfig(base_delay=0.01, max_delay=0.01, delay_after=2, lockout_after=4)
    backend.authenticator = Authenticator(backend.db, LoginThrottle(backend.db, backend.keys, fast))
    outcome: CommandFailed | None = None
    for _ in range(6):
        try:
            await backend.authenticate(Credentials(ADDRESS, "wrong", "198.51.100.9", True))
        except CommandFailed as exc:
            outcome = exc
            if exc.code is not None and exc.code.value == "UNAVAILABLE":
                break
    assert outcome is not None and outcome.code is not None and outcome.code.value == "UNAVAILABLE"
    assert outcome.response("a1") == b"a1 NO [UNAVAILABLE] Too many failed logins; try again later\r\n"
    with pytest.raises(CommandFailed):  # locked for that network even with the right password
        await backend.authenticate(Credentials(ADDRESS, SECRET, "198.51.100.9", True))
    await _login(backend)  # issue 15 item 5: the owner, elsewhere, is not locked out


async def test_folders(backend: StoreBackend) -> None:
    boxes = await _login(backend)
    names = [f.name for f in await boxes.list_folders()]
    assert names == ["INBOX", "Archive", "Drafts", "Junk", "Sent", "Trash"]
    await boxes.create_folder("A/B/C")
    with pytest.raises(MailboxExists):
        await boxes.create_folder("A/B")
    infos = {f.name: f for f in await boxes.list_folders()}
    assert infos["A"].has_children and not infos["A/B/C"].has_children
    await boxes.rename_folder("A", "Z")
    assert {"Z", "Z/B", "Z/B/C"} <= {f.name for f in await boxes.list_folders()}
    await boxes.delete_folder("Z/B")
    infos = {f.name: f for f in await boxes.list_folders()}
    assert not infos["Z/B"].selectable and infos["Z/B/C"].selectable
    with pytest.raises(MailboxNotFound):
        await boxes.folder_status("Nope")
    await boxes.set_subscribed("Sent", False)
    assert not {f.name: f for f in await boxes.list_folders()}["Sent"].subscribed


async def test_append_fetch_and_sealed_summaries(backend: StoreBackend, store: Store) -> None:
    boxes = await _login(backend)
    results = [await boxes.append("INBOX", raw, ["\\Seen"] if i == 0 else [], None) for i, raw in enumerate(MESSAGES)]
    assert [r.uid for r in results] == [1, 2, 3]
    status = await boxes.folder_status("INBOX")
    assert (status.messages, status.unseen, status.uidnext) == (3, 2, 4)
    metas = await boxes.list_messages("INBOX")
    assert [m.size for m in metas] == [len(raw) for raw in MESSAGES] and metas[0].flags == {"\\Seen"}
    assert [await boxes.fetch_raw("INBOX", uid) for uid in (1, 2, 3)] == list(MESSAGES)
    summaries = await boxes.fetch_summaries("INBOX", [1, 2, 3, 99])
    assert sorted(summaries) == [1, 2, 3]
    assert summaries[3].envelope.subject == "=?utf-8?b?UsOpc3VsdGF0cyBkJ2FuYWx5c2Ugw6AgdsOpcmlmaWVy?="
    assert [p.subtype for p in summaries[2].bodystructure.parts] == ["PLAIN", "PDF"]
    with store.db.read() as session:
        blobs = session.execute(select(Message.sealed, Message.summary_sealed)).all()
    for sealed, summary in blobs:
        assert summary is not None
        for clear in (b"Compte rendu", b"labo@", b"hopital", b"Resultats"):
            assert clear not in sealed and clear not in summary


async def test_summary_is_computed_lazily_for_mail_stored_without_one(backend: StoreBackend, store: Store) -> None:
    from gateway.mailstore.messages import append_message

    boxes = await _login(backend)
    with store.db.write() as session:
        # as stored before summaries were made at delivery
        append_message(session, store.keys, boxes.mailbox_id, "INBOX", MULTIPART)
    summary = await boxes.fetch_summary("INBOX", 1)
    assert summary is not None and summary.envelope.message_id == "<multi-1@hopital.example>"
    with store.db.read() as session:
        assert session.execute(select(Message.summary_sealed)).scalar_one() is not None


async def test_flags_modseq_unchangedsince_and_expunge(backend: StoreBackend) -> None:
    boxes = await _login(backend)
    for raw in MESSAGES:
        await boxes.append("INBOX", raw, [], None)
    before = (await boxes.folder_status("INBOX")).highestmodseq
    result = await boxes.store_flags("INBOX", [1, 2], StoreMode.ADD, ["\\Deleted", "$Label"])
    assert {m.uid for m in result.updated} == {1, 2} and all(m.modseq == before + 1 for m in result.updated)
    again = await boxes.store_flags("INBOX", [1], StoreMode.ADD, ["\\Deleted"])
    assert again.updated == ()  # nothing changed, no new MODSEQ
    conflict = await boxes.store_flags("INBOX", [1, 3], StoreMode.REMOVE, ["$Label"], unchanged_since=before)
    assert conflict.conflicts == (1,) and conflict.updated == ()
    changed = await boxes.list_messages("INBOX", changed_since=before)
    assert [m.uid for m in changed] == [1, 2]
    assert list(await boxes.expunge("INBOX", [2])) == [2]
    assert list(await boxes.expunge("INBOX")) == [1]
    assert [m.uid for m in await boxes.list_messages("INBOX")] == [3]
    assert await boxes.fetch_raw("INBOX", 1) is None


async def test_copy_and_move_reseal_with_new_uuids(backend: StoreBackend, store: Store) -> None:
    boxes = await _login(backend)
    for raw in (PLAIN, NON_ASCII):
        await boxes.append("INBOX", raw, ["\\Flagged"], None)
    copied = await boxes.copy("INBOX", [1, 2, 7], "Archive")
    assert copied.mapping == ((1, 1), (2, 2))
    moved = await boxes.move("INBOX", [2], "Trash")
    assert moved.mapping == ((2, 1),)
    assert [m.uid for m in await boxes.list_messages("INBOX")] == [1]
    assert await boxes.fetch_raw("Trash", 1) == NON_ASCII and await boxes.fetch_raw("Archive", 2) == NON_ASCII
    assert (await boxes.list_messages("Trash"))[0].flags == {"\\Flagged"}
    with pytest.raises(MailboxNotFound):
        await boxes.copy("INBOX", [1], "Nowhere")
    with store.db.read() as session:
        uuids = session.execute(select(Message.uuid)).scalars().all()
        uidvalidity = session.execute(select(Folder.uidvalidity).where(Folder.name == "Archive")).scalar_one()
    assert len(uuids) == len(set(uuids)) == 4 and copied.uidvalidity == uidvalidity


async def test_wait_for_change_wakes_on_notify_and_on_polling(backend: StoreBackend, store: Store) -> None:
    from gateway.mailstore.messages import append_message

    boxes = await _login(backend)
    since = (await boxes.folder_status("INBOX")).highestmodseq
    assert not await boxes.wait_for_change("INBOX", since, 0.2)
    waiter = asyncio.create_task(boxes.wait_for_change("INBOX", since, 5))
    await asyncio.sleep(0.05)
    await boxes.append("INBOX", PLAIN, [], None)  # notifies the hub
    assert await asyncio.wait_for(waiter, 1)
    since = (await boxes.folder_status("INBOX")).highestmodseq
    waiter = asyncio.create_task(boxes.wait_for_change("INBOX", since, 5))

    def other_process() -> None:
        with store.db.write() as session:
            append_message(session, store.keys, boxes.mailbox_id, "INBOX", PLAIN)

    await asyncio.to_thread(other_process)  # no notify: found by polling
    assert await asyncio.wait_for(waiter, 1)
