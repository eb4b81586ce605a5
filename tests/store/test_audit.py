"""The audit trail is hash-chained and its verification finds tampering (SPEC §9)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from gateway.store import audit
from gateway.store.models import AuditEntry
from gateway.testing.store import Store


def _fill(store: Store, n: int, *, spread: bool = True) -> None:
    """``n`` entries; ``spread``: each with a subject of its own (so over several partitions),
    else none (all in the system partition, one chain)."""
    for i in range(n):
        with store.db.write() as s:
            audit.record(s, actor="admin:cli:test", action="test.event", subject_ref=f"pro:{i}" if spread else None,
                         peer="127.0.0.1", details={"i": i})


def test_chain_verifies(store: Store) -> None:
    _fill(store, 5)
    with store.db.read() as s:
        report = audit.verify(s)
    assert report.ok and report.entries == 5


def test_modified_entry_detected(store: Store) -> None:
    _fill(store, 5, spread=False)
    with store.db.write() as s:
        third = s.execute(select(AuditEntry.id).order_by(AuditEntry.id).offset(2).limit(1)).scalar_one()
        s.execute(update(AuditEntry).where(AuditEntry.id == third).values(actor="admin:cli:someone-else"))
    with store.db.read() as s:
        report = audit.verify(s)
    assert not report.ok and report.first_bad_id == third and report.entries == 2


def test_deleted_entry_detected(store: Store) -> None:
    _fill(store, 5, spread=False)
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


def test_one_transaction_mixing_orm_work_and_entries_keeps_one_chain(store: Store) -> None:
    """``record`` is the one writer: entries of one transaction, between ORM reads and writes and
    after a rolled-back transaction in the same session, chain on each other."""
    _fill(store, 2)
    with store.db.write() as s:
        hashes = [audit.record(s, actor="admin:cli:test", action="test.batch", details={"i": i}) for i in range(3)]
        s.execute(update(AuditEntry).where(AuditEntry.id < 0).values(actor="x"))  # ORM statement between
        assert len(s.execute(select(AuditEntry)).scalars().all()) == 5  # the inserted rows are visible
        hashes.append(audit.record(s, actor="system", action="test.batch", subject_ref="patient:9", keys=store.keys))
    rows = _rows(store)
    assert [r.hash for r in rows[2:]] == hashes
    for partition in {r.partition for r in rows}:  # one chain per partition
        chain = [r for r in rows if r.partition == partition]
        assert chain[0].prev_hash == audit.GENESIS and all(b.prev_hash == a.hash for a, b in pairwise(chain))
    with Session(store.db.engine) as session:  # one session, two transactions
        audit.record(session, actor="system", action="test.rolled_back")
        session.rollback()
        audit.record(session, actor="system", action="test.after_rollback")
        session.commit()
    with store.db.read() as s:
        report = audit.verify(s)
    assert report.ok and report.entries == 7


def test_record_is_the_only_writer() -> None:
    """No second way in (``audit.append`` was one): the module's public functions are these."""
    public = {name for name, value in vars(audit).items()
              if callable(value) and not name.startswith("_") and getattr(value, "__module__", "") == audit.__name__}
    assert public == {"record", "verify", "entry_hash", "row_hash", "ChainReport",  # one writer; readers
                      "anchor_heads", "heads", "heads_of",  # and the anchors' writer (issue 23)
                      "subject_of"}  # a subject as stored (a pure function: no way in)


def _rows(store: Store) -> list[AuditEntry]:
    with store.db.read() as s:
        return list(s.execute(select(AuditEntry).order_by(AuditEntry.id)).scalars())


def test_a_long_professional_address_is_recorded_and_found(store: Store) -> None:
    """Addresses of French hospitals run long; ``subject_ref`` is 64 characters and PostgreSQL
    refused ``pro:<address>`` beyond that (`value too long for type character varying(64)`), so
    adding or disabling such an account failed there. The subject is kept to its first 64
    characters, and the console's search by subject finds it by the whole address too."""
    from gateway.operations.audit_trail import AuditQuery, search

    address = "jean-christophe.dupont-lefebvre@ch-saint-jean-de-maurienne.mssante.test"
    with store.db.write() as session:
        audit.record(session, actor="admin:cli", action="pro.add", subject_ref=f"pro:{address}")
    with store.db.read() as session:
        found = search(session, store.keys, AuditQuery(subject=f"pro:{address}"))
        assert audit.verify(session).ok
    assert [e["action"] for e in found] == ["pro.add"]
    assert found[0]["subject"] == f"pro:{address}"[:64]
