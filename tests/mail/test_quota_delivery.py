"""Quotas in the delivery pipeline (issue 18): checked exactly in the write transaction,
within a group commit a delivery refused for quota leaves the others of its group to commit,
and nothing of it is stored; both stores (GATEWAY_TEST_STORE)."""

from __future__ import annotations

from dataclasses import replace
from typing import cast

import pytest
from sqlalchemy import select

from gateway.delivery.directory import LocalTarget, RemoteTarget
from gateway.delivery.pipeline import Delivered, MailboxFull, Pipeline, Rcpt
from gateway.mailstore import adoption, quota
from gateway.store import audit
from gateway.store.changes import ChangeHub
from gateway.store.models import DailyStat
from gateway.testing.store import Store
from routing.address import parse_address
from tests.mail.test_group_commit import Slowed, message, patient_inbound, run_concurrently, stored


def test_group_commit_stores_up_to_the_limit_exactly(store: Store) -> None:
    inbound = patient_inbound(store)
    pipeline = Pipeline(store.db, store.keys, ChangeHub(), hostname="mx.test", notification_interval=None,
                        quota=quota.QuotaDefaults(messages=3))
    slowed = Slowed(pipeline, waiting=5)
    pipeline._writer._commit = slowed
    results = run_concurrently(pipeline, inbound, [message(i) for i in range(6)])
    assert sum(isinstance(r, Delivered) for r in results) == 3, results
    assert sum(isinstance(r, MailboxFull) for r in results) == 3
    assert max(slowed.groups) > 1 and sum(slowed.groups) == 6  # refused in place: no group retried one by one
    assert len(stored(store)) == 3
    with store.db.read() as s:
        assert audit.verify(s).ok
        stats = dict(s.execute(select(DailyStat.metric, DailyStat.value)).tuples().all())
    assert stats[adoption.MESSAGES] == 3


def test_a_remote_recipient_takes_it_so_the_full_mailbox_gets_it_too(store: Store) -> None:
    inbound = patient_inbound(store)
    target = cast(LocalTarget, inbound.recipients[0].target)
    with store.db.write() as s:
        quota.set_limits(s, target.mailbox_id, messages=1)
    pipeline = Pipeline(store.db, store.keys, ChangeHub(), hostname="mx.test", notification_interval=None)
    assert isinstance(pipeline.deliver_sync(inbound, message(1)), Delivered)
    with pytest.raises(MailboxFull) as full:
        pipeline.deliver_sync(inbound, message(2))
    assert full.value.mailboxes == (target.mailbox_id,)
    both = replace(inbound, recipients=(*inbound.recipients, Rcpt(parse_address("dr@peer.test"),
                                                                    RemoteTarget("peer.test"))))
    done = pipeline.deliver_sync(both, message(3))
    assert (done.local, done.queued) == (1, 1)  # over the limit by this message (see _check_quota)
    assert len(stored(store)) == 2
    with store.db.read() as s:
        assert quota.current(s, target.mailbox_id, pipeline.quota).full
