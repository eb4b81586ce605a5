"""A message the queue delivers to a local patient mailbox that refuses it for a health
document (issue 21): bounced at once with the refusal's own status and words, not retried,
and the sender gets the DSN."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta

from sqlalchemy import select

from gateway.delivery.documents import DocumentsRefused
from gateway.outbound import queue
from gateway.outbound.queue import QueuedRecipient
from gateway.store.models import QueueEntry
from routing import reasons
from routing.decide import verdict
from tests.outbound.test_worker import MESSAGE, T0, Rig, rig  # noqa: F401 (the fixture)


class _Refusing:
    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, mail_from: str | None, recipients: Sequence[str], message: bytes) -> None:
        self.calls += 1
        raise DocumentsRefused(verdict(reasons.DATA_DOCUMENT_OTHER_PATIENT))


async def test_local_delivery_refused_for_a_document_bounces_with_its_status(rig: Rig) -> None:  # noqa: F811
    refusing = _Refusing()
    rig.worker.ctx = replace(rig.worker.ctx, submit=refusing)
    with rig.store.db.write() as s:
        entry = queue.enqueue(s, rig.store.keys, domain="patients.gateway.test", mail_from="dr@clinic.test",
                              recipients=[QueuedRecipient("p@patients.gateway.test")], message=MESSAGE,
                              kind="message", now=T0, max_age=timedelta(hours=1)).uuid
    outcomes = await asyncio.wait_for(rig.worker.drain(), 30)
    assert outcomes[0] == "bounced"  # at the first attempt: permanent, not retried
    with rig.store.db.read() as s:
        row = queue.entry(s, entry)
        assert row is not None and row.status == "bounced" and row.last_error is not None
        error = queue.open_error(s, rig.store.keys, row)  # the reply text is sealed (issue 20)
        assert "5.7.1" in row.last_error and "another patient" not in row.last_error  # codes only in clear
        assert error is not None and "5.7.1" in error and "another patient" in error
        dsn = s.execute(select(QueueEntry).where(QueueEntry.kind == "dsn")).scalars().one()
        assert dsn.domain == "clinic.test"  # the sender's DSN (then tried in the same drain: this rig's peer)
