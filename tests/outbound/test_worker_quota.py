"""A notice the queue delivers to a local mailbox that is full (issue 18): kept and retried,
recorded as ``4.2.2 mailbox full``, not the generic local failure."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta

from gateway.delivery.pipeline import MailboxFull
from gateway.outbound import queue
from gateway.outbound.queue import QueuedRecipient
from tests.outbound.test_worker import MESSAGE, T0, Rig, rig  # noqa: F401 (the fixture)


class _Full:
    """The pipeline refusing every recipient: their mailboxes are at their quota."""

    def __init__(self) -> None:
        self.full = True
        self.calls = 0

    async def __call__(self, mail_from: str | None, recipients: Sequence[str], message: bytes) -> None:
        if self.full:
            raise MailboxFull([7])
        self.calls += 1


async def test_local_notice_to_a_full_mailbox_is_retried_as_mailbox_full(rig: Rig) -> None:  # noqa: F811
    full = _Full()
    rig.worker.ctx = replace(rig.worker.ctx, submit=full)
    with rig.store.db.write() as s:
        entry = queue.enqueue(s, rig.store.keys, domain="clinic.test", mail_from=None,
                              recipients=[QueuedRecipient("dr@clinic.test")], message=MESSAGE, kind="dsn",
                              now=T0, max_age=timedelta(hours=1)).uuid
    assert await asyncio.wait_for(rig.worker.drain(), 30) == ["deferred"]
    with rig.store.db.read() as s:
        row = queue.entry(s, entry)
        assert row is not None and row.status == "pending" and row.last_error is not None
        error = queue.open_error(s, rig.store.keys, row)
        assert error is not None and "4.2.2" in error and "mailbox full" in error and "mailbox" not in row.last_error
    full.full = False
    rig.clock.now = T0 + timedelta(minutes=5)
    assert await asyncio.wait_for(rig.worker.drain(), 30) == ["delivered"]
    assert rig.row(entry)[0] == "sent" and full.calls == 1
