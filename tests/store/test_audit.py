"""The audit trail is hash-chained and its verification finds tampering (SPEC §9)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import delete, select, update

from gateway.store import audit
from gateway.store.models import AuditEntry
from gateway.testing.store import Store


def _fill(store: Store, n: int) -> None:
    for i in range(n):
        with store.db.write() as s:
            audit.record(s, actor="admin:cli:test", action="test.event", subject_ref=f"patient:{i}",
                         peer="127.0.0.1", details={"i": i})


def test_chain_verifies(store: Store) -> None:
    _fill(store, 5)
    with store.db.read() as s:
        report = audit.verify(s)
    assert report.ok and report.entries == 5


def test_modified_entry_detected(store: Store) -> None:
    _fill(store, 5)
    with store.db.write() as s:
        third = s.execute(select(AuditEntry.id).order_by(AuditEntry.id).offset(2).limit(1)).scalar_one()
        s.execute(update(AuditEntry).where(AuditEntry.id == third).values(actor="admin:cli:someone-else"))
    with store.db.read() as s:
        report = audit.verify(s)
    assert not report.ok and report.first_bad_id == third and report.entries == 2


def test_deleted_entry_detected(store: Store) -> None:
    _fill(store, 5)
    with store.db.write() as s:
        second = s.execute(select(AuditEntry.id).order_by(AuditEntry.id).offset(1).limit(1)).scalar_one()
        s.execute(delete(AuditEntry).where(AuditEntry.id == second))
    with store.db.read() as s:
        report = audit.verify(s)
    assert not report.ok and report.entries == 1


def test_concurrent_writers_keep_one_chain(store: Store) -> None:
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda _: _fill(store, 5), range(4)))
    with store.db.read() as s:
        report = audit.verify(s)
    assert report.ok and report.entries == 20
