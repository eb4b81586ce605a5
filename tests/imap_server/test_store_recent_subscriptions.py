"""The store's side of \\Recent and of subscriptions (issue 18), on SQLite and PostgreSQL:
the recent mark is taken once across sessions and across nodes (two backends on one
database); a subscription outlives its folder (RFC 3501 §6.3.6)."""

from __future__ import annotations

import asyncio

import pytest

from gateway.accounts.pros import add_hosted_domain, add_pro
from gateway.imap_adapter.backend import StoreBackend, StoreMailboxes
from gateway.store.changes import ChangeHub
from gateway.testing.store import Store
from imap.backend import Credentials, MailboxNotFound
from tests.imap_server.kit import PLAIN

ADDRESS = "dr.recent@clinic.test"
SECRET = "recent test password"


@pytest.fixture
def nodes(store: Store) -> tuple[StoreBackend, StoreBackend]:
    """Two backends on one database: two gateway nodes, each with its own caches."""
    with store.db.write() as session:
        add_pro(session, store.keys, ADDRESS, add_hosted_domain(session, "clinic.test"), password=SECRET)
    return (StoreBackend(store.db, store.keys, ChangeHub(), poll_interval=0.1),
            StoreBackend(store.db, store.keys, ChangeHub(), poll_interval=0.1))


async def _login(backend: StoreBackend) -> StoreMailboxes:
    return await backend.authenticate(Credentials(ADDRESS, SECRET, "192.0.2.7", True))


async def test_recent_mark_is_taken_once_across_nodes(nodes: tuple[StoreBackend, StoreBackend]) -> None:
    one, two = await _login(nodes[0]), await _login(nodes[1])
    for _ in range(3):
        await one.append("INBOX", PLAIN, [], None)
    status = await two.folder_status("INBOX")
    assert (status.recent, status.recent_uid) == (3, 0)
    # Sessions on both nodes race for the same messages: exactly one gets each (RFC 3501 §2.3.2).
    previous = await asyncio.gather(*(boxes.claim_recent("INBOX", 3) for boxes in (one, two, one, two)))
    assert sorted(previous) == [0, 3, 3, 3]
    assert await one.claim_recent("INBOX", 2) == 3  # the mark never goes down
    for boxes in (one, two):  # each node's cached listing follows the mark
        status = await boxes.select_folder("INBOX", read_only=True)
        assert (status.messages, status.recent, status.recent_uid) == (3, 0, 3)
    await two.append("INBOX", PLAIN, [], None)
    assert (await one.folder_status("INBOX")).recent == 1
    assert await one.claim_recent("INBOX", 4) == 3
    with pytest.raises(MailboxNotFound):
        await one.claim_recent("Nowhere", 1)


async def test_a_renamed_inbox_brings_its_messages_as_recent(nodes: tuple[StoreBackend, StoreBackend]) -> None:
    boxes = await _login(nodes[0])
    await boxes.append("INBOX", PLAIN, [], None)
    await boxes.claim_recent("INBOX", 1)
    await boxes.rename_folder("INBOX", "Old")  # RFC 3501 §6.3.5: new UIDs in a new folder
    assert (await boxes.folder_status("Old")).recent == 1


async def test_subscriptions_outlive_their_folder(nodes: tuple[StoreBackend, StoreBackend]) -> None:
    boxes = await _login(nodes[0])
    standard = ["Archive", "Drafts", "INBOX", "Junk", "Sent", "Trash"]
    assert list(await boxes.list_subscriptions()) == standard  # an account's folders are subscribed
    await boxes.create_folder("A/B")
    assert list(await boxes.list_subscriptions()) == standard  # CREATE subscribes nothing
    await boxes.set_subscribed("A/B", True)
    await boxes.delete_folder("A/B")
    assert "A/B" in await boxes.list_subscriptions()  # RFC 3501 §6.3.6
    assert "A/B" not in {f.name for f in await boxes.list_folders()}
    with pytest.raises(MailboxNotFound):
        await boxes.set_subscribed("A/B", True)  # SUBSCRIBE needs the mailbox
    await boxes.create_folder("A/B")  # made again: subscribed again
    infos = {f.name: f for f in await boxes.list_folders()}
    assert infos["A/B"].subscribed and not infos["A"].subscribed
    await boxes.delete_folder("A/B")
    await boxes.set_subscribed("A/B", False)  # UNSUBSCRIBE takes the kept name
    assert "A/B" not in await boxes.list_subscriptions()
    with pytest.raises(MailboxNotFound):
        await boxes.set_subscribed("A/B", False)
    await boxes.create_folder("C")
    await boxes.set_subscribed("C", True)
    await boxes.create_folder("D")
    await boxes.set_subscribed("D", True)
    await boxes.delete_folder("D")
    await boxes.rename_folder("C", "D")  # the folder's subscription follows it; D's kept one merges
    subscribed = set(await boxes.list_subscriptions())
    assert "D" in subscribed and "C" not in subscribed
    assert {f.name: f for f in await boxes.list_folders()}["D"].subscribed
