"""Lifecycle jobs with an injected clock: each moves exactly the rows that are due, once."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from crypto.envelope import DecryptionError
from gateway.accounts.jobs import JOBS, JobConfig, run_job
from gateway.accounts.patients import provision
from gateway.accounts.pros import add_hosted_domain, add_pro
from gateway.mailstore.messages import append_message, read_message
from gateway.settings import JobSettings, PatientSettings
from gateway.store.keys import KeyUnavailable
from gateway.store.models import (
    AuditEntry,
    DataKey,
    Folder,
    Message,
    MessageChunk,
    Patient,
    ProAccount,
    QueueEntry,
)
from gateway.store.partitions import queue_bucket
from gateway.testing.store import Store, by_id
from routing.ins import synthetic_ins

T0 = datetime(2025, 1, 1, 12, tzinfo=UTC)
CFG = JobConfig(PatientSettings(), JobSettings())


def _patients(store: Store, n: int, *, seed: int = 3) -> list[int]:
    rng = random.Random(seed)
    ids = []
    with store.db.write() as session:
        for _ in range(n):
            done = provision(session, store.keys, synthetic_ins(rng), email="p@perso.example", now=T0,
                             opposition_window=timedelta(days=42), code_validity=timedelta(days=30))
            ids.append(done.patient.id)
    return ids


def _state(store: Store, pid: int) -> Patient:
    with store.db.read() as session:
        patient = by_id(session, Patient, pid)
        assert patient is not None
        return patient


def _run(store: Store, name: str, now: datetime) -> dict[str, int]:
    result = run_job(store.db, store.keys, CFG, name, now)
    assert result.ran
    return result.counts


def test_open_after_opposition_window_and_code_expiry(store: Store) -> None:
    early, late, opposed = _patients(store, 3)
    with store.db.write() as session:
        p = by_id(session, Patient, late)
        assert p is not None
        p.opposition_deadline = T0 + timedelta(days=60)
        o = by_id(session, Patient, opposed)
        assert o is not None
        o.state = "opposed"
    assert _run(store, "open-mailboxes", T0 + timedelta(days=41)) == {"opened": 0}
    assert _run(store, "open-mailboxes", T0 + timedelta(days=42)) == {"opened": 1}
    assert _run(store, "open-mailboxes", T0 + timedelta(days=42)) == {"opened": 0}
    assert [_state(store, i).state for i in (early, late, opposed)] == ["open", "provisioned", "opposed"]
    assert _state(store, early).opened_at == T0 + timedelta(days=42)
    assert _run(store, "expire-codes", T0 + timedelta(days=29)) == {"expired": 0}
    assert _run(store, "expire-codes", T0 + timedelta(days=30)) == {"expired": 3}
    assert all(_state(store, i).activation_code_hash is None for i in (early, late, opposed))


def test_closed_spaces_archived_then_purged_and_messages_no_longer_decrypt(store: Store) -> None:
    closed, kept, deleting, other = _patients(store, 4)
    with store.db.write() as session:
        for pid in (closed, kept):
            p = by_id(session, Patient, pid)
            assert p is not None
            p.state, p.closed_at = "closed", T0 + timedelta(days=1 if pid == closed else 100)
        d = by_id(session, Patient, deleting)
        assert d is not None and d.mailbox_id is not None
        d.deletion_requested_at = T0
        mailbox = by_id(session, Patient, closed).mailbox_id  # type: ignore[union-attr]
        assert mailbox is not None
        stored = append_message(session, store.keys, mailbox, "INBOX", b"Subject: secret\r\n\r\nbody\r\n")
        sealed = by_id(session, Message, stored.message_id).sealed  # type: ignore[union-attr]
        key_id = store.keys.for_mailbox(session, mailbox).data_key_id
    with store.db.read() as session:
        assert read_message(session, store.keys, mailbox, stored.message_id).endswith(b"body\r\n")
    retention = timedelta(days=PatientSettings().archive_retention_days)
    assert _run(store, "closed-spaces", T0 + timedelta(days=2)) == {"archived": 2, "purged": 0}
    assert _state(store, closed).purge_after == T0 + timedelta(days=1) + retention
    assert _run(store, "closed-spaces", T0 + timedelta(days=1) + retention) == {"archived": 0, "purged": 1}
    assert _run(store, "closed-spaces", T0 + timedelta(days=1) + retention) == {"archived": 0, "purged": 0}
    purged = _state(store, closed)
    assert purged.state == "purged" and purged.ins and purged.email_sealed is None and purged.purged_at
    assert _state(store, kept).state == "closed"
    store.keys.forget()
    with store.db.read() as session:
        with pytest.raises(LookupError):
            read_message(session, store.keys, mailbox, stored.message_id)
        with pytest.raises(KeyUnavailable):
            store.keys.by_id(session, key_id, mailbox_id=mailbox)
        assert session.execute(select(func.count()).select_from(Folder)
                               .where(Folder.mailbox_id == purged.mailbox_id)).scalar_one() == 0
    with store.db.read() as session, pytest.raises((KeyUnavailable, DecryptionError)):
        # the copied ciphertext is unreadable
        store.keys.by_id(session, key_id, mailbox_id=mailbox).open("msg", "x", sealed)
    assert _run(store, "deletion-requests", T0 + timedelta(days=5)) == {"purged": 1, "past_deadline": 0}
    assert _run(store, "deletion-requests", T0 + timedelta(days=5)) == {"purged": 0, "past_deadline": 0}
    assert _state(store, deleting).state == "purged" and _state(store, other).state == "provisioned"
    with store.db.read() as session:
        assert session.execute(select(func.count()).select_from(DataKey)).scalar_one() == 2  # kept + other


def test_pro_inactivity_warns_then_disables(store: Store) -> None:
    with store.db.write() as session:
        domain = add_hosted_domain(session, "cabinet.example")
        for name in ("idle", "active", "back"):
            add_pro(session, store.keys, f"{name}@cabinet.example", domain, name=None, password=None)
        for pro in session.execute(select(ProAccount)).scalars():
            pro.created_at = T0 - timedelta(days=400)
            pro.last_login_at = T0 - timedelta(days=10) if pro.address.startswith("active") else None
    warned = _run(store, "pro-inactivity", T0)
    assert warned == {"warned": 2, "disabled": 0, "warning_cleared": 0}
    assert _run(store, "pro-inactivity", T0) == {"warned": 0, "disabled": 0, "warning_cleared": 0}
    with store.db.write() as session:
        back = session.execute(select(ProAccount).where(ProAccount.address == "back@cabinet.example")).scalar_one()
        back.last_login_at = T0 + timedelta(days=3)
    assert _run(store, "pro-inactivity", T0 + timedelta(days=30)) == {"warned": 0, "disabled": 1,
                                                                       "warning_cleared": 1}
    with store.db.read() as session:
        status = dict(session.execute(select(ProAccount.address, ProAccount.status)).tuples().all())
    assert status == {"idle@cabinet.example": "disabled", "active@cabinet.example": "active",
                      "back@cabinet.example": "active"}


def test_queue_expiry_hands_entries_to_the_worker(store: Store) -> None:
    with store.db.write() as session:
        for i, (expires, lease) in enumerate([(T0 - timedelta(hours=1), None), (T0 + timedelta(hours=1), None),
                                              (T0 - timedelta(hours=1), T0 + timedelta(minutes=5))]):
            uuid = f"{i:032x}"
            session.add(QueueEntry(bucket=queue_bucket(uuid), uuid=uuid, domain="ets.example", envelope_sealed=b"e",
                                   message_sealed=b"m",
                                   size=1, status="pending", attempts=1, created_at=T0 - timedelta(days=5),
                                   next_attempt_at=T0 + timedelta(hours=2), expires_at=expires, lease_until=lease))
    assert _run(store, "queue-expiry", T0) == {"marked_due": 1}
    assert _run(store, "queue-expiry", T0) == {"marked_due": 0}
    with store.db.read() as session:
        due = session.execute(select(QueueEntry.uuid).where(QueueEntry.next_attempt_at <= T0)).scalars().all()
        statuses = set(session.execute(select(QueueEntry.status)).scalars())
    assert due == [f"{0:032x}"] and statuses == {"pending"}


def test_every_job_is_audited_once_per_run_that_changes_something(store: Store) -> None:
    _patients(store, 2)
    with store.db.read() as session:
        before = session.execute(select(func.count()).select_from(AuditEntry)).scalar_one()
    later = T0 + timedelta(days=50)
    for name in JOBS:
        run_job(store.db, store.keys, CFG, name, later)
    with store.db.read() as session:
        rows = session.execute(select(AuditEntry).where(AuditEntry.id > before)).scalars().all()
    assert sorted(r.action for r in rows) == ["jobs.audit-anchor", "jobs.expire-codes", "jobs.open-mailboxes"]
    assert all(r.actor == "system:jobs" for r in rows)
    assert all('"opened":2' in r.details or '"expired":2' in r.details or r.details == '{"anchored":1}' for r in rows)


def test_a_purge_removes_the_pieces_of_large_messages_at_once(store: Store) -> None:
    """A purged space keeps no sealed byte: the pieces of its large messages go in the purge's own
    transaction, as a professional account's removal does (one way to empty a mailbox)."""
    (pid,) = _patients(store, 1, seed=11)
    with store.db.write() as session:
        patient = by_id(session, Patient, pid)
        assert patient is not None and patient.mailbox_id is not None
        mailbox = patient.mailbox_id
        stored = append_message(session, store.keys, mailbox, "INBOX", b"Subject: large\r\n\r\nbody\r\n")
        uuid = by_id(session, Message, stored.message_id).uuid  # type: ignore[union-attr]
        session.add(MessageChunk(message_uuid=uuid, seq=0, mailbox_id=mailbox, created_at=T0, data=b"sealed"))
        patient.deletion_requested_at = T0
    assert _run(store, "deletion-requests", T0 + timedelta(days=1)) == {"purged": 1, "past_deadline": 0}
    with store.db.read() as session:
        assert session.execute(select(func.count()).select_from(MessageChunk)
                               .where(MessageChunk.mailbox_id == mailbox)).scalar_one() == 0
