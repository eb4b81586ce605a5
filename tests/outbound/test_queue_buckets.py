"""The outbound queue claimed bucket by bucket (issue 23): every statement of a claim and of an
entry's outcome has an equality on the bucket, claims start from the bucket they are given,
and every due entry is still claimed whatever its bucket."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event

from gateway.outbound import queue
from gateway.outbound.values import QueuedRecipient, RecipientResult
from gateway.store.partitions import QUEUE_BUCKETS, queue_bucket
from gateway.testing.store import Store

T0 = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
LEASE = timedelta(minutes=5)


def _enqueue(store: Store, n: int) -> list[str]:
    with store.db.write() as s:
        return [queue.enqueue(s, store.keys, domain="remote.test", mail_from="dr@clinic.test",
                              recipients=[QueuedRecipient(f"a{i}@remote.test")], message=b"Subject: x\r\n\r\nx\r\n",
                              now=T0, max_age=timedelta(hours=1)).uuid for i in range(n)]


class _Statements:
    def __init__(self, store: Store) -> None:
        self.engine = store.db.engine
        self.seen: list[str] = []

    def __enter__(self) -> _Statements:
        event.listen(self.engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *_: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._record)

    def _record(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "outbound_queue" in statement:
            self.seen.append(" ".join(statement.split()))


def test_each_entry_has_the_bucket_of_its_uuid_and_every_bucket_is_claimed(store: Store) -> None:
    uuids = _enqueue(store, 40)
    with store.db.read() as s:
        rows = [queue.entry(s, u) for u in uuids]
    assert all(r is not None and r.bucket == queue_bucket(r.uuid) for r in rows)
    assert len({queue_bucket(u) for u in uuids}) > 10
    with store.db.write() as s:
        claimed = queue.claim_due(s, store.keys, owner="w1", now=T0, lease=LEASE, limit=100)
    assert sorted(c.uuid for c in claimed) == sorted(uuids)


def test_a_claim_starts_at_its_bucket_and_wraps(store: Store) -> None:
    uuids = _enqueue(store, 40)
    start = queue_bucket(uuids[7])
    with store.db.write() as s:
        [first] = queue.claim_due(s, store.keys, owner="w1", now=T0, lease=LEASE, limit=1, start=start)
    assert queue_bucket(first.uuid) == start
    later = (start + 1) % QUEUE_BUCKETS
    with store.db.write() as s:
        rest = queue.claim_due(s, store.keys, owner="w2", now=T0, lease=LEASE, limit=100, start=later)
    order = queue.bucket_order(later)
    assert [order.index(queue_bucket(c.uuid)) for c in rest] == sorted(order.index(queue_bucket(c.uuid)) for c in rest)
    assert len(rest) == len(uuids) - 1


def test_claim_and_outcome_statements_name_the_bucket(store: Store) -> None:
    _enqueue(store, 3)
    with _Statements(store) as claim, store.db.write() as s:
        claimed = queue.claim_due(s, store.keys, owner="w1", now=T0, lease=LEASE, limit=10)
    with _Statements(store) as outcome, store.db.write() as s:
        for c in claimed:
            results = [RecipientResult(r, "delivered", 250, "2.0.0", "smtp; 250 ok", "dns; mx.remote.test")
                       for r in c.envelope.recipients]
            assert queue.complete(s, store.keys, c.uuid, c.owner, results, now=T0)
    selects = [q for q in claim.seen if q.startswith("SELECT")]
    assert len(selects) == QUEUE_BUCKETS  # one per bucket, each on one bucket
    for statement in claim.seen + outcome.seen:
        assert "outbound_queue.bucket = " in statement, statement
    if store.db.engine.dialect.name == "postgresql":
        assert all(q.endswith("FOR UPDATE SKIP LOCKED") for q in selects)


def test_shredding_a_key_nulls_the_queue_rows_that_name_it_first(store: Store) -> None:
    """No foreign key does it any more (no ON DELETE SET NULL, issue 23): ``shred`` nulls the
    references itself, then destroys the key; the row stays, unreadable, and is closed."""
    [uuid] = _enqueue(store, 1)
    with store.db.write() as s:
        mk = store.keys.create_mailbox(s, "pro")
        row = queue.entry(s, uuid)
        assert row is not None
        row.data_key_id = mk.data_key_id
    with store.db.write() as s:
        assert store.keys.shred(s, mk.mailbox_id) == 1
    with store.db.read() as s:
        row = queue.entry(s, uuid)
        assert row is not None and row.data_key_id is None
    with store.db.write() as s:
        assert queue.claim_due(s, store.keys, owner="w1", now=T0, lease=LEASE, limit=10) == []
    with store.db.read() as s:
        row = queue.entry(s, uuid)
        assert row is not None and row.status == "bounced"
