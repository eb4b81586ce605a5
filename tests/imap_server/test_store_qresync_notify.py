"""The store's side of QRESYNC and NOTIFY (issue 18), on SQLite and PostgreSQL: expunged UIDs
are remembered with the mod-sequence of their expunge (EXPUNGE, MOVE, RENAME of INBOX;
migration 0009 upgrades and downgrades); the change counter NOTIFY waits on moves for
every kind of change, and on PostgreSQL for another node's through LISTEN/NOTIFY."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from sqlalchemy import inspect

from gateway.accounts.pros import add_hosted_domain, add_pro
from gateway.imap_adapter.backend import StoreBackend, StoreMailboxes
from gateway.store import migrate
from gateway.store.changes import ChangeHub, PgChangeListener
from gateway.store.db import Database
from gateway.store.raw import dialect_name
from gateway.testing.store import Store
from imap.backend import Credentials
from imap.proto.commands import StoreMode
from tests.imap_server.kit import PLAIN

ADDRESS = "dr.resync@clinic.test"
SECRET = "resync test password"


@pytest.fixture
def backends(store: Store) -> tuple[StoreBackend, StoreBackend]:
    """Two backends on one database, each with its own change hub: two gateway nodes."""
    with store.db.write() as session:
        add_pro(session, store.keys, ADDRESS, add_hosted_domain(session, "clinic.test"), password=SECRET)
    return (StoreBackend(store.db, store.keys, ChangeHub(), poll_interval=0.1),
            StoreBackend(store.db, store.keys, ChangeHub(), poll_interval=0.1))


@pytest.fixture
async def listeners(store: Store, backends: tuple[StoreBackend, StoreBackend]) -> AsyncIterator[None]:
    """On PostgreSQL, each node LISTENs as ``gateway serve`` does (gateway.app.listeners)."""
    with store.db.read() as session:
        postgres = dialect_name(session) == "postgresql"
    running = [PgChangeListener(store.db.engine.url.render_as_string(hide_password=False), b.hub)
               for b in backends] if postgres else []
    for listener in running:
        listener.start()
    for listener in running:
        await asyncio.wait_for(listener.listening.wait(), 10)
    yield
    for listener in running:
        await listener.stop()


async def _login(backend: StoreBackend) -> StoreMailboxes:
    return await backend.authenticate(Credentials(ADDRESS, SECRET, "192.0.2.9", True))


async def test_expunged_uids_are_remembered_with_their_modseq(backends: tuple[StoreBackend, StoreBackend]) -> None:
    boxes = await _login(backends[0])
    for _ in range(5):
        await boxes.append("INBOX", PLAIN, [], None)
    await boxes.store_flags("INBOX", [2, 3], StoreMode.ADD, ["\\Deleted"])
    assert await boxes.expunge("INBOX") == [2, 3]
    after_expunge = (await boxes.folder_status("INBOX")).highestmodseq
    assert (await boxes.expunged_since("INBOX", 0)).uids() == [2, 3]
    assert (await boxes.expunged_since("INBOX", after_expunge - 1)).uids() == [2, 3]
    assert (await boxes.expunged_since("INBOX", after_expunge)).uids() == []
    moved = await boxes.move("INBOX", [5], "Archive")  # RFC 6851: an expunge from the source
    assert moved.mapping == ((5, 1),)
    assert (await boxes.expunged_since("INBOX", after_expunge)).uids() == [5]
    assert (await boxes.expunged_since("Archive", 0)).uids() == []
    await boxes.copy("INBOX", [1], "Archive")  # a copy expunges nothing
    assert (await boxes.expunged_since("INBOX", 0)).uids() == [2, 3, 5]
    before_rename = (await boxes.folder_status("INBOX")).highestmodseq
    await boxes.rename_folder("INBOX", "Old")  # RFC 3501 §6.3.5: INBOX's messages leave it
    assert (await boxes.expunged_since("INBOX", before_rename)).uids() == [1, 4]
    await boxes.create_folder("Gone")
    await boxes.append("Gone", PLAIN, ["\\Deleted"], None)
    await boxes.expunge("Gone")
    assert (await boxes.expunged_since("Gone", 0)).uids() == [1]
    await boxes.delete_folder("Gone")  # its rows go with it
    await boxes.create_folder("Gone")
    assert (await boxes.expunged_since("Gone", 0)).uids() == []


async def test_the_change_counter_moves_for_every_change_and_across_nodes(
        backends: tuple[StoreBackend, StoreBackend], listeners: None) -> None:
    one, two = await _login(backends[0]), await _login(backends[1])
    same_node = await _login(backends[0])
    seen = await two.wait_for_any_change(-1, 0.0)
    assert await two.wait_for_any_change(seen, 0.05) == seen  # nothing happened: the wait times out
    local = await same_node.wait_for_any_change(-1, 0.0)
    postgres = backends[0].db.engine.dialect.name == "postgresql"
    changes: list[Callable[[], Awaitable[object]]] = [
        lambda: one.append("INBOX", PLAIN, [], None),
        lambda: one.store_flags("INBOX", [1], StoreMode.ADD, ["\\Seen"]),
        lambda: one.create_folder("Projects"),
        lambda: one.set_subscribed("Projects", True),
        lambda: one.rename_folder("Projects", "Plans"),
        lambda: one.delete_folder("Plans"),
    ]
    for change in changes:
        waiter = asyncio.create_task(two.wait_for_any_change(seen, 5.0))
        local_waiter = asyncio.create_task(same_node.wait_for_any_change(local, 5.0))
        await asyncio.sleep(0.05)
        await change()
        local = await asyncio.wait_for(local_waiter, 2.0)  # this node: at once
        if postgres:  # the other node: woken through PostgreSQL LISTEN/NOTIFY, not by a poll
            start = asyncio.get_running_loop().time()
            assert await asyncio.wait_for(waiter, 2.0) != seen
            assert asyncio.get_running_loop().time() - start < 1.5
            seen = await two.wait_for_any_change(-1, 0.0)
        else:
            waiter.cancel()


def test_migration_0009_downgrades_and_upgrades_again(db_url: str) -> None:
    db = Database(db_url)
    try:
        migrate.upgrade(db.engine)
        assert "expunged_uids" in inspect(db.engine).get_table_names()
        migrate.downgrade(db.engine, "0008")
        assert "expunged_uids" not in inspect(db.engine).get_table_names()
        assert migrate.current_revision(db.engine) == "0008"
        migrate.upgrade(db.engine)
        assert "expunged_uids" in inspect(db.engine).get_table_names()
        assert migrate.current_revision(db.engine) == migrate.head_revision()
    finally:
        db.dispose()
