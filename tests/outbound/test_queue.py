"""The persistent queue on SQLite and PostgreSQL: sealing, claims, leases, transitions, backoff."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from gateway.outbound import queue
from gateway.outbound.queue import ClaimedEntry, QueuedRecipient
from gateway.outbound.values import Envelope, RecipientResult
from gateway.store.models import AuditEntry, QueueEntry
from gateway.testing.store import Store

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
LEASE = timedelta(minutes=15)
MESSAGE = b"From: dr@clinic.test\r\nSubject: secret subject\r\n\r\nsecret body\r\n"
SCHEDULE = (5, 15, 60)


def _enqueue(store: Store, n: int = 1, *, now: datetime = T0, domain: str = "remote.test") -> list[str]:
    ids = []
    with store.db.write() as s:
        for i in range(n):
            entry = queue.enqueue(
                s, store.keys, domain=domain, mail_from="dr@clinic.test",
                recipients=[QueuedRecipient(f"a{i}@remote.test", ("FAILURE", "DELAY"), f"rfc822;a{i}@remote.test")],
                message=MESSAGE, ret="HDRS", envid=f"env{i}", now=now, max_age=timedelta(hours=120))
            ids.append(entry.uuid)
    return ids


def _claim(store: Store, owner: str = "w1", *, now: datetime = T0, limit: int = 10) -> list[ClaimedEntry]:
    with store.db.write() as s:
        return queue.claim_due(s, store.keys, owner=owner, now=now, lease=LEASE, limit=limit)


def _ok(entry: ClaimedEntry) -> list[RecipientResult]:
    return [RecipientResult(r, "delivered", 250, "2.0.0", "smtp; 250 ok", "dns; mx.remote.test")
            for r in entry.envelope.recipients]


def test_enqueue_seals_and_claim_opens(store: Store) -> None:
    [entry_id] = _enqueue(store)
    with store.db.read() as s:
        row = queue.entry(s, entry_id)
        assert row is not None and row.status == "pending" and row.size == len(MESSAGE)
        assert row.expires_at == T0 + timedelta(hours=120)
        assert b"secret" not in row.message_sealed and b"dr@clinic.test" not in row.envelope_sealed
    [claimed] = _claim(store)
    assert claimed.message == MESSAGE and claimed.attempts == 1 and claimed.owner.startswith("w1/")
    assert claimed.envelope == Envelope("dr@clinic.test", (QueuedRecipient(
        "a0@remote.test", ("FAILURE", "DELAY"), "rfc822;a0@remote.test"),), "HDRS", "env0")
    assert _claim(store, "w2") == []  # leased


def test_sealed_rows_cannot_be_swapped(store: Store) -> None:
    a, b = _enqueue(store, 2)
    with store.db.write() as s:
        ra, rb = queue.entry(s, a), queue.entry(s, b)
        assert ra is not None and rb is not None
        ra.message_sealed, rb.message_sealed = rb.message_sealed, ra.message_sealed
    store.keys.forget()
    assert _claim(store) == []  # both unreadable (AAD binds each to its uuid), closed
    with store.db.read() as s:
        assert {r.status for r in s.execute(select(QueueEntry)).scalars()} == {"bounced"}


def test_complete_marks_sent_and_audits_without_addresses(store: Store) -> None:
    _enqueue(store)
    [claimed] = _claim(store)
    with store.db.write() as s:
        assert queue.complete(s, store.keys, claimed.uuid, claimed.owner, _ok(claimed), now=T0)
    with store.db.read() as s:
        row = queue.entry(s, claimed.uuid)
        assert row is not None and row.status == "sent" and row.finished_at == T0 and row.lease_owner is None
        [audit] = s.execute(select(AuditEntry)).scalars().all()
        assert audit.actor == "system:queue" and audit.action == "queue.delivered"
        assert audit.subject_ref == f"queue:{claimed.uuid}" and "remote.test" in audit.details
        assert "a0@" not in audit.details and "dr@" not in audit.details
    assert _claim(store, now=T0 + timedelta(days=1)) == []


def test_only_the_lease_holder_writes_results(store: Store) -> None:
    _enqueue(store)
    [first] = _claim(store, "w1")
    later = T0 + LEASE + timedelta(seconds=1)
    [second] = _claim(store, "w2", now=later)  # w1 died (or stalled): lease ran out
    assert second.id == first.id and second.attempts == 2
    with store.db.write() as s:
        assert not queue.complete(s, store.keys, first.uuid, first.owner, _ok(first), now=later)
        assert queue.fail(s, store.keys, first.uuid, first.owner, error="x", now=later) is False
    with store.db.write() as s:
        assert queue.complete(s, store.keys, second.uuid, second.owner, _ok(second), now=later)
        # no second transition
        assert not queue.complete(s, store.keys, second.uuid, second.owner, _ok(second), now=later)


def test_same_owner_name_gets_a_new_lease_token(store: Store) -> None:
    _enqueue(store)
    [first] = _claim(store, "w1")
    [again] = _claim(store, "w1", now=T0 + LEASE)  # e.g. restarted with the same id
    assert first.owner != again.owner
    with store.db.write() as s:
        assert not queue.complete(s, store.keys, first.uuid, first.owner, _ok(first), now=T0 + LEASE)


def test_reschedule_follows_the_backoff_and_keeps_remaining_recipients(store: Store) -> None:
    with store.db.write() as s:
        queue.enqueue(s, store.keys, domain="remote.test", mail_from="dr@clinic.test",
                      recipients=[QueuedRecipient("a@remote.test"), QueuedRecipient("b@remote.test")],
                      message=MESSAGE, now=T0, max_age=timedelta(hours=120))
    now = T0
    expected = [5, 15, 60, 60]
    for attempt, minutes in enumerate(expected, start=1):
        [claimed] = _claim(store, now=now)
        assert claimed.attempts == attempt
        a, b = claimed.envelope.recipients[0], claimed.envelope.recipients[-1]
        results = [RecipientResult(b, "temporary", 451, "4.3.0",
                                   "smtp; 451 4.3.0 <b@remote.test>: user 253072A07300443 try later")]
        if attempt == 1:
            results.insert(0, RecipientResult(a, "delivered", 250, "2.0.0", "smtp; 250 ok"))
        with store.db.write() as s:
            nxt = queue.reschedule(s, store.keys, claimed.uuid, claimed.owner,
                                   envelope=claimed.envelope.with_recipients((b,)), results=results,
                                   now=now, retry_schedule_minutes=SCHEDULE)
        assert nxt == now + timedelta(minutes=minutes)
        assert _claim(store, now=nxt - timedelta(seconds=1)) == []  # not due yet
        now = nxt
    [claimed] = _claim(store, now=now)
    assert [r.address for r in claimed.envelope.recipients] == ["b@remote.test"]
    with store.db.read() as s:
        row = queue.entry(s, claimed.uuid)
        # Issue 20: a reply can quote an address or an identifier; only the codes stay in clear.
        assert row is not None and row.last_error == "451 4.3.0 451 4.3.0" and row.last_error_sealed is not None
        opened = queue.open_error(s, store.keys, row)
        assert opened is not None and opened.startswith("451 4.3.0") and "try later" in opened
        assert "253072A07300443" in opened and "b@remote.test" not in opened  # addresses redacted as before
        actions = [a.action for a in s.execute(select(AuditEntry).order_by(AuditEntry.id)).scalars()]
    assert actions[:2] == ["queue.delivered", "queue.deferred"] and actions.count("queue.deferred") == 4


def test_retry_delay_repeats_the_last_step() -> None:
    assert [queue.retry_delay(n, SCHEDULE).total_seconds() // 60 for n in range(1, 6)] == [5, 15, 60, 60, 60]
    with pytest.raises(ValueError):
        queue.retry_delay(1, ())


def test_reschedule_never_goes_past_expiry_and_expired_entries_are_due(store: Store) -> None:
    with store.db.write() as s:
        queue.enqueue(s, store.keys, domain="remote.test", mail_from="dr@clinic.test",
                      recipients=[QueuedRecipient("a@remote.test")], message=MESSAGE, now=T0,
                      max_age=timedelta(minutes=10))
    [claimed] = _claim(store)
    with store.db.write() as s:
        nxt = queue.reschedule(s, store.keys, claimed.uuid, claimed.owner, envelope=claimed.envelope, results=[],
                               now=T0, retry_schedule_minutes=(60,))
    assert nxt == T0 + timedelta(minutes=10)
    [again] = _claim(store, now=T0 + timedelta(minutes=10))
    with store.db.write() as s:
        assert queue.fail(s, store.keys, again.uuid, again.owner, error="4.4.7 expired", now=again.expires_at,
                          expired=True)
    with store.db.read() as s:
        row = queue.entry(s, again.uuid)
        assert row is not None and row.status == "expired"
        assert s.execute(select(AuditEntry.action).order_by(AuditEntry.id.desc()).limit(1)).scalar() == "queue.expired"


def test_enqueue_validates(store: Store) -> None:
    with store.db.write() as s:
        bads: list[dict[str, object]] = [{"recipients": []}, {"kind": "spam"}, {"ret": "ALL"}]
        for bad in bads:
            args = {"recipients": [QueuedRecipient("a@remote.test")], "kind": "message", "ret": None, **bad}
            with pytest.raises(ValueError):
                queue.enqueue(s, store.keys, domain="remote.test", mail_from=None, message=b"x", now=T0,
                              max_age=timedelta(hours=1), **args)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        QueuedRecipient("a@remote.test", ("NEVER", "SUCCESS"))


def test_two_concurrent_claimers_never_share_an_entry(store: Store) -> None:
    _enqueue(store, 40)
    got: dict[str, list[int]] = {"a": [], "b": []}
    errors: list[BaseException] = []
    start = threading.Barrier(2, timeout=30)

    def worker(name: str) -> None:
        try:
            start.wait()
            for _ in range(40):
                batch = _claim(store, name, limit=3)
                got[name] += [e.id for e in batch]
                if not batch:
                    break
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in got]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and not any(t.is_alive() for t in threads)
    assert not set(got["a"]) & set(got["b"])
    assert len(got["a"]) + len(got["b"]) == 40 == len(set(got["a"]) | set(got["b"]))


def test_stats(store: Store) -> None:
    _enqueue(store, 2)
    [claimed, _other] = _claim(store)
    with store.db.write() as s:
        queue.complete(s, store.keys, claimed.uuid, claimed.owner, _ok(claimed), now=T0)
    with store.db.read() as s:
        assert queue.stats(s) == {"pending": 1, "sent": 1}
