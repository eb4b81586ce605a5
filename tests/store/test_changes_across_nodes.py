"""A change committed through one node wakes waiters on another (PostgreSQL LISTEN/NOTIFY)."""

from __future__ import annotations

import asyncio
import time

import pytest

from gateway.store.changes import ChangeHub, PgChangeListener, announce
from gateway.testing import pg
from gateway.testing.store import open_store


@pytest.mark.postgres
async def test_notify_reaches_the_other_node_within_a_second(pg_admin: str) -> None:
    with pg.temporary_database() as url:
        store = open_store(url)
        hub_b = ChangeHub()
        listener = PgChangeListener(url, hub_b)
        listener.start()
        try:
            await asyncio.wait_for(listener.listening.wait(), 10)
            waiter = asyncio.create_task(hub_b.wait(42, timeout=5))
            await asyncio.sleep(0.05)
            started = time.monotonic()

            def commit_on_node_a() -> None:
                with store.db.write() as session:
                    announce(session, 42)

            await asyncio.to_thread(commit_on_node_a)
            assert await waiter, "node B was not woken"
            assert time.monotonic() - started < 1.0
            # A waiter for another mailbox is not woken.
            assert not await hub_b.wait(43, timeout=0.3)
        finally:
            await listener.stop()
            store.close()


async def test_local_hub_wakes_from_another_thread() -> None:
    hub = ChangeHub()
    hub.bind(asyncio.get_running_loop())
    waiter = asyncio.create_task(hub.wait(7, timeout=5))
    await asyncio.sleep(0.01)
    await asyncio.to_thread(hub.notify, 7)
    assert await waiter
