"""The audit trail partitioned by subject, anchored in a global chain (issue 23).

Each partition is a chain of its own, so a partition cut short or forked (its tail replaced by
another well-formed chain) still verifies alone: the anchors find it. Tampering tests here
delete or replace entries after an anchor and expect ``audit.verify`` (and the CLI line) to
name the entry, the partition and the anchor.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

from sqlalchemy import delete, select, update

from gateway.accounts.jobs import JobConfig, run_job
from gateway.settings import JobSettings, PatientSettings
from gateway.store import audit, audit_export
from gateway.store.audit_retention import RetentionPolicy, prune
from gateway.store.models import AuditAnchor, AuditCheckpoint, AuditEntry
from gateway.store.partitions import AUDIT_PARTITIONS, SYSTEM_PARTITION, audit_partition
from gateway.testing.store import Store

NOW = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
SUBJECTS = [f"domain:d{i}.test" for i in range(12)]


def _fill(store: Store, *, at: datetime = NOW, rounds: int = 2) -> None:
    for r in range(rounds):
        with store.db.write() as s:
            for i, subject in enumerate(SUBJECTS):
                audit.record(s, actor="admin:cli:test", action="test.event", subject_ref=subject,
                             details={"r": r, "i": i}, now=at + timedelta(seconds=r))


def _rows(store: Store) -> list[AuditEntry]:
    with store.db.read() as s:
        return list(s.execute(select(AuditEntry).order_by(AuditEntry.id)).scalars())


def _verify(store: Store) -> audit.ChainReport:
    with store.db.read() as s:
        return audit.verify(s)


def _busy_partition(store: Store) -> int:
    """A partition other than the system one holding at least two entries."""
    counts: dict[int, int] = {}
    for r in _rows(store):
        counts[r.partition] = counts.get(r.partition, 0) + 1
    return max((p for p in counts if p != SYSTEM_PARTITION), key=lambda p: counts[p])


def _tail(store: Store, partition: int) -> AuditEntry:
    return [r for r in _rows(store) if r.partition == partition][-1]


def test_partition_follows_the_subject_and_each_partition_is_a_chain(store: Store) -> None:
    _fill(store)
    with store.db.write() as s:
        audit.record(s, actor="system", action="test.system")
        audit.record(s, actor="admin:cli", action="admin.patient.lookup", subject_ref="patient:4", keys=store.keys)
    rows = _rows(store)
    for row in rows[:-2]:
        assert row.partition == audit_partition(row.subject_ref)
    system, about_patient = rows[-2:]
    assert system.partition == SYSTEM_PARTITION
    assert about_patient.patient_index is not None and about_patient.subject_ref == "patient"  # sealed
    assert about_patient.partition == about_patient.patient_index[0] % AUDIT_PARTITIONS  # 5 bits of the keyed index
    assert len({r.partition for r in rows}) > 3  # spread
    for partition in {r.partition for r in rows}:
        chain = [r for r in rows if r.partition == partition]
        assert chain[0].prev_hash == audit.GENESIS
        assert all(b.prev_hash == a.hash for a, b in pairwise(chain))
    report = _verify(store)
    assert report.ok and report.entries == len(rows) and report.partitions == len({r.partition for r in rows})


def test_an_anchor_records_every_head_and_is_written_only_when_one_moved(store: Store) -> None:
    _fill(store)
    with store.db.write() as s:
        first = audit.anchor_heads(s, NOW)
        assert first is not None and first.prev_hash == audit.GENESIS
        recorded = audit.heads_of(first)
        assert set(recorded) == set(range(AUDIT_PARTITIONS))
        assert audit.anchor_heads(s, NOW) is None  # nothing moved
    busy = _busy_partition(store)
    assert recorded[busy] == (_tail(store, busy).id, _tail(store, busy).hash)
    _fill(store, rounds=1)
    with store.db.write() as s:
        second = audit.anchor_heads(s, NOW + timedelta(minutes=1))
        assert second is not None and second.prev_hash == first.hash
    report = _verify(store)
    assert report.ok and report.anchors == 2


def test_a_partition_cut_short_after_an_anchor_is_detected(store: Store) -> None:
    _fill(store)
    with store.db.write() as s:
        audit.anchor_heads(s, NOW)
    busy = _busy_partition(store)
    gone = _tail(store, busy)
    with store.db.write() as s:  # the chain left is well-formed: only the anchor knows
        s.execute(delete(AuditEntry).where(AuditEntry.partition == busy, AuditEntry.id == gone.id))
    report = _verify(store)
    assert not report.ok and report.partition == busy and report.first_bad_id == gone.id
    assert report.bad_anchor == 1 and "cut short or forked after the anchor" in (report.problem or "")


def test_a_forked_partition_is_detected(store: Store) -> None:
    """The tail replaced by another entry that follows the same predecessor, hash recomputed."""
    _fill(store)
    with store.db.write() as s:
        audit.anchor_heads(s, NOW)
    busy = _busy_partition(store)
    gone = _tail(store, busy)
    with store.db.write() as s:
        s.execute(delete(AuditEntry).where(AuditEntry.partition == busy, AuditEntry.id == gone.id))
    with store.db.write() as s:
        audit.record(s, actor="admin:cli:forger", action="test.event", subject_ref=gone.subject_ref)
    forged = _tail(store, busy)
    assert forged.prev_hash == gone.prev_hash and forged.id != gone.id
    report = _verify(store)
    assert not report.ok and report.partition == busy and report.first_bad_id == gone.id


def test_an_entry_replaced_in_place_under_its_anchored_id_is_detected(store: Store) -> None:
    _fill(store)
    with store.db.write() as s:
        audit.anchor_heads(s, NOW)
    busy = _busy_partition(store)
    tail = _tail(store, busy)
    forged = audit.entry_hash(tail.prev_hash, tail.at, "admin:cli:forger", tail.action, tail.subject_ref, tail.peer,
                              tail.details)
    with store.db.write() as s:
        s.execute(update(AuditEntry).where(AuditEntry.partition == busy, AuditEntry.id == tail.id)
                  .values(actor="admin:cli:forger", hash=forged))
    report = _verify(store)
    assert not report.ok and report.first_bad_id == tail.id and "forked after the anchor" in (report.problem or "")


def test_a_modified_or_removed_anchor_is_detected(store: Store) -> None:
    _fill(store)
    for minute in (0, 1):
        _fill(store, rounds=1)
        with store.db.write() as s:
            audit.anchor_heads(s, NOW + timedelta(minutes=minute))
    with store.db.write() as s:
        s.execute(update(AuditAnchor).where(AuditAnchor.id == 2).values(heads="{}"))
    report = _verify(store)
    assert not report.ok and report.bad_anchor == 2 and report.problem == "anchor #2: anchor was modified"
    with store.db.write() as s:
        s.execute(delete(AuditAnchor).where(AuditAnchor.id == 1))
    report = _verify(store)
    assert not report.ok and report.bad_anchor == 2 and "does not follow" in (report.problem or "")


def test_the_anchor_job_runs_hourly(store: Store) -> None:
    cfg = JobConfig(PatientSettings(), JobSettings())
    _fill(store)
    assert run_job(store.db, store.keys, cfg, "audit-anchor", NOW).counts == {"anchored": 1}
    assert run_job(store.db, store.keys, cfg, "audit-anchor", NOW + timedelta(minutes=5)).counts == {"anchored": 0}
    _fill(store, rounds=1)
    assert run_job(store.db, store.keys, cfg, "audit-anchor", NOW + timedelta(minutes=61)).counts == {"anchored": 1}
    report = _verify(store)
    assert report.ok and report.anchors == 2


def test_retention_prunes_each_partition_behind_its_own_checkpoints(store: Store, tmp_path: Path) -> None:
    old = NOW - timedelta(days=500)
    _fill(store, at=old)
    with store.db.write() as s:
        audit.anchor_heads(s, old + timedelta(minutes=1))  # anchored heads that will be pruned
    _fill(store, rounds=1)
    partitions = {r.partition for r in _rows(store) if r.at < NOW - timedelta(days=400)}
    result = prune(store.db, RetentionPolicy(400, tmp_path / "archive", 10), NOW, actor="admin:cli:test")
    assert {b.first_id for b in result.batches} and result.pruned == 2 * len(SUBJECTS)
    with store.db.read() as s:
        checkpoints = list(s.execute(select(AuditCheckpoint).order_by(AuditCheckpoint.id)).scalars())
        pruned_entries = list(s.execute(select(AuditEntry).where(AuditEntry.action == audit.PRUNED_ACTION)).scalars())
    assert {ck.partition for ck in checkpoints} == partitions
    assert sorted(e.partition for e in pruned_entries) == sorted(ck.partition for ck in checkpoints)
    for ck in checkpoints:
        assert ck.prev_hash == audit.GENESIS  # each partition's first checkpoint
    report = _verify(store)
    assert report.ok and report.pruned == 2 * len(SUBJECTS) and report.checkpoints == len(checkpoints)
    with store.db.read() as s:  # each file against its checkpoint (audit verify --export)
        for batch in result.batches:
            summary = audit_export.read_file(batch.file)
            assert audit_export.match_checkpoint(s, summary).id == batch.checkpoint
    other = next(b for b in result.batches if audit_export.read_file(b.file).partition != SYSTEM_PARTITION)
    partition = audit_export.read_file(other.file).partition
    other.file.write_bytes(other.file.read_bytes().replace(f'"partition":{partition},'.encode(), b'"partition":0,'))
    with store.db.read() as s:  # the same entries claimed for another partition: no checkpoint of it matches
        try:
            audit_export.match_checkpoint(s, audit_export.read_file(other.file))
        except audit_export.ExportError as exc:
            assert str(exc).startswith("no checkpoint of partition 0 starts at entry #"), exc
        else:
            raise AssertionError("a file moved to another partition matched a checkpoint")
