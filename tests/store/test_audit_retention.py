"""Audit retention: old entries exported, pruned behind a checkpoint, the rest still verifies.

On SQLite and PostgreSQL (the ``store`` fixture): the export format byte for byte, the
chain after prunes, tampering with a checkpoint, a file or the remaining trail, crashes
between export and delete, leases, and two nodes pruning at once.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select, update

from gateway.store import audit, audit_export, audit_retention
from gateway.store.audit_checkpoints import checkpoint_hash
from gateway.store.audit_retention import RetentionError, RetentionPolicy, plan, prune
from gateway.store.db import Database
from gateway.store.models import AuditCheckpoint, AuditEntry
from gateway.testing.store import Store, open_store

NOW = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=500)
RECENT = NOW - timedelta(days=30)
GENESIS = "0" * 64


def _fill(db: Database, n: int, start: datetime, *, subject: str = "domain:hopital.test") -> None:
    for i in range(n):
        with db.write() as s:
            audit.record(s, actor="pro:dr.a@hopital.test", action="mail.delivered", subject_ref=subject,
                         peer="192.0.2.7", details={"i": i}, now=start + timedelta(minutes=i))


def _policy(tmp_path: Path, batch: int = 10) -> RetentionPolicy:
    return RetentionPolicy(400, tmp_path / "archive", batch)


def _count(db: Database) -> int:
    with db.read() as s:
        return int(s.execute(select(func.count()).select_from(AuditEntry)).scalar_one())


def _verify(db: Database) -> audit.ChainReport:
    with db.read() as s:
        return audit.verify(s)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_export_file_byte_for_byte(store: Store, tmp_path: Path) -> None:
    """Every stored column, keys sorted, compact, ASCII, one line per entry; the file is 0600.
    (Both entries without subject: one partition, 0, one batch.)"""
    with store.db.write() as s:
        audit.record(s, actor="admin:cli:zoé", action="test.event", subject_ref=None, peer=None,
                     details={"n": 1}, now=datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC))
        audit.record(s, actor="system:jobs", action="jobs.x", details={}, now=datetime(2025, 1, 2, 3, 4, 6, tzinfo=UTC))
    _fill(store.db, 1, RECENT)
    result = prune(store.db, _policy(tmp_path), NOW, actor="admin:cli:test")
    assert result.pruned == 2 and len(result.batches) == 1
    with store.db.read() as s:
        first, second = s.execute(select(AuditCheckpoint.first_id, AuditCheckpoint.last_id)).one()
    # The hashes, recomputed here from the documented canonical form.
    c1 = ('{"action":"test.event","actor":"admin:cli:zo\\u00e9","at":"2025-01-02T03:04:05.678901+00:00",'
          '"details":"{\\"n\\":1}","peer":null,"subject":null}')
    h1 = hashlib.sha256(GENESIS.encode() + c1.encode()).hexdigest()
    c2 = ('{"action":"jobs.x","actor":"system:jobs","at":"2025-01-02T03:04:06.000000+00:00",'
          '"details":"{}","peer":null,"subject":null}')
    h2 = hashlib.sha256(h1.encode() + c2.encode()).hexdigest()
    expected = (
        '{"action":"test.event","actor":"admin:cli:zo\\u00e9","at":"2025-01-02T03:04:05.678901+00:00",'
        f'"details":"{{\\"n\\":1}}","hash":"{h1}","hash_form":null,"id":{first},"partition":0,"patient_data_key_id":null,'
        '"patient_index":null,"patient_index_version":null,"patient_sealed":null,"peer":null,'
        f'"prev_hash":"{GENESIS}","subject_ref":null}}\n'
        '{"action":"jobs.x","actor":"system:jobs","at":"2025-01-02T03:04:06.000000+00:00",'
        f'"details":"{{}}","hash":"{h2}","hash_form":null,"id":{second},"partition":0,"patient_data_key_id":null,'
        '"patient_index":null,"patient_index_version":null,"patient_sealed":null,"peer":null,'
        f'"prev_hash":"{h1}","subject_ref":null}}\n'
    ).encode("ascii")
    path = tmp_path / "archive" / f"audit-{first:012d}-{second:012d}.jsonl"
    assert path.read_bytes() == expected
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left
    assert result.batches[0].sha256 == hashlib.sha256(expected).hexdigest()


def test_binary_columns_are_exported_as_stored_bytes() -> None:
    """Sealed parts stay sealed: the stored bytes, base64, never a decoded view."""
    line = audit_export.encode_line({"id": 3, "sealed": b"\x00\xffsealed", "at": datetime(2025, 1, 1, tzinfo=UTC)})
    assert line == b'{"at":"2025-01-01T00:00:00.000000+00:00","id":3,"sealed":{"base64":"AP9zZWFsZWQ="}}\n'


def test_prune_in_batches_then_the_remaining_trail_verifies(store: Store, tmp_path: Path) -> None:
    _fill(store.db, 25, OLD)
    _fill(store.db, 5, RECENT)
    policy = _policy(tmp_path)
    result = prune(store.db, policy, NOW, actor="system:jobs")
    assert [b.entries for b in result.batches] == [10, 10, 5] and result.pruned == 25
    assert _count(store.db) == 5 + 3  # the recent entries and one audit.pruned entry per batch
    report = _verify(store.db)
    assert report.ok, report
    assert (report.entries, report.checkpoints, report.pruned) == (8, 3, 25)
    assert report.pruned_until == OLD + timedelta(minutes=24)
    with store.db.read() as s:
        first_left = s.execute(select(func.min(AuditEntry.id))).scalar_one()
        checkpoints = s.execute(select(AuditCheckpoint).order_by(AuditCheckpoint.id)).scalars().all()
        assert report.start_id == first_left and first_left > checkpoints[-1].last_id
        assert all(ck.status == "done" for ck in checkpoints)
        for batch in result.batches:
            ck = audit_export.match_checkpoint(s, audit_export.read_file(batch.file))
            assert ck.id == batch.checkpoint
        pruned = s.execute(select(AuditEntry.details).where(AuditEntry.action == "audit.pruned")
                           .order_by(AuditEntry.id)).scalars().all()
    assert [json.loads(d)["entries"] for d in pruned] == [10, 10, 5]
    lines = [line for b in result.batches for line in b.file.read_bytes().splitlines()]
    assert [json.loads(line)["details"] for line in lines] == [f"{{\"i\":{i}}}" for i in range(25)]
    assert prune(store.db, policy, NOW, actor="system:jobs").batches == []  # nothing left to do
    _fill(store.db, 2, RECENT + timedelta(days=1))  # appends go on after the anchor
    assert _verify(store.db).ok


def test_a_second_prune_joins_the_first(store: Store, tmp_path: Path) -> None:
    """Later, the recent entries (and the first prune's own entries) age out behind a second checkpoint."""
    _fill(store.db, 4, OLD)
    _fill(store.db, 3, RECENT)
    policy = _policy(tmp_path, batch=100)
    assert prune(store.db, policy, NOW, actor="system:jobs").pruned == 4
    later = NOW + timedelta(days=500)
    second = prune(store.db, policy, later, actor="system:jobs")
    assert second.pruned == 3 + 1  # the recent entries and the first audit.pruned entry
    report = _verify(store.db)
    assert report.ok and (report.entries, report.checkpoints, report.pruned) == (1, 2, 8)


def test_dry_run_plan_changes_nothing(store: Store, tmp_path: Path) -> None:
    _fill(store.db, 12, OLD)
    _fill(store.db, 2, RECENT)
    with store.db.read() as s:
        found = plan(s, _policy(tmp_path), NOW)
        first = s.execute(select(func.min(AuditEntry.id))).scalar_one()
    assert (found.due, found.first_id, found.last_id, found.batches, found.pending) == (12, first, first + 11, 2, None)
    assert _count(store.db) == 14 and not (tmp_path / "archive").exists()


def test_only_the_head_of_the_trail_is_due(store: Store, tmp_path: Path) -> None:
    """An old timestamp after a recent one (a clock step back) waits: prunes cut a prefix, never a hole."""
    _fill(store.db, 3, OLD)
    _fill(store.db, 1, RECENT)
    _fill(store.db, 2, OLD + timedelta(days=1))
    assert prune(store.db, _policy(tmp_path), NOW, actor="system:jobs").pruned == 3
    assert _verify(store.db).ok


def test_crash_between_export_and_delete_is_completed_by_the_next_run(
        store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fill(store.db, 15, OLD)
    _fill(store.db, 1, RECENT)
    policy = _policy(tmp_path)
    real_finish = audit_retention._finish

    def crash(*args: object, **kwargs: object) -> None:
        raise OSError("power cut")

    monkeypatch.setattr(audit_retention, "_finish", crash)
    with pytest.raises(OSError):
        prune(store.db, policy, NOW, actor="system:jobs", owner="node-a")
    files = sorted((tmp_path / "archive").iterdir())
    assert len(files) == 1  # exported, not deleted
    first_bytes = files[0].read_bytes()
    assert _count(store.db) == 16
    report = _verify(store.db)
    assert report.ok and report.prune_pending and report.checkpoints == 0
    with store.db.read() as s:
        assert plan(s, policy, NOW).pending is not None

    monkeypatch.setattr(audit_retention, "_finish", real_finish)
    # Another node waits for the crashed node's lease, then finishes the same range.
    assert not prune(store.db, policy, NOW + timedelta(minutes=1), actor="system:jobs", owner="node-b").ran
    result = prune(store.db, policy, NOW + audit_retention.LEASE + timedelta(seconds=1), actor="system:jobs",
                   owner="node-b")
    assert [b.entries for b in result.batches] == [10, 5]
    assert result.batches[0].file == files[0] and files[0].read_bytes() == first_bytes  # same range, same bytes
    exported = [json.loads(line)["id"] for b in result.batches for line in b.file.read_bytes().splitlines()]
    assert len(exported) == len(set(exported)) == 15  # nothing lost, nothing twice
    report = _verify(store.db)
    assert report.ok and report.pruned == 15 and not report.prune_pending


def test_crash_while_writing_the_file_leaves_no_file_and_no_change(
        store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fill(store.db, 5, OLD)
    policy = _policy(tmp_path)
    written: list[dict[str, object]] = []

    def encode_then_crash(row: dict[str, object]) -> bytes:
        if len(written) == 3:
            raise OSError("disk full")
        written.append(row)
        return audit_export.encode_line(row)

    monkeypatch.setattr(audit_retention, "encode_line", encode_then_crash)
    with pytest.raises(RetentionError, match="cannot write the export"):
        prune(store.db, policy, NOW, actor="system:jobs")
    assert list((tmp_path / "archive").iterdir()) == [] and _count(store.db) == 5
    monkeypatch.undo()
    assert prune(store.db, policy, NOW, actor="system:jobs").pruned == 5
    assert _verify(store.db).ok


def test_a_broken_chain_is_never_pruned(store: Store, tmp_path: Path) -> None:
    _fill(store.db, 5, OLD)
    with store.db.write() as s:
        third = s.execute(select(AuditEntry.id).order_by(AuditEntry.id).offset(2).limit(1)).scalar_one()
        s.execute(update(AuditEntry).where(AuditEntry.id == third).values(actor="pro:someone-else@x.test"))
    with pytest.raises(RetentionError, match=f"entry #{third} was modified"):
        prune(store.db, _policy(tmp_path), NOW, actor="system:jobs")
    assert _count(store.db) == 5 and list((tmp_path / "archive").iterdir()) == []


def test_tampering_after_a_prune_is_found(store: Store, tmp_path: Path) -> None:
    _fill(store.db, 10, OLD)
    _fill(store.db, 3, RECENT)
    policy = _policy(tmp_path, batch=5)
    result = prune(store.db, policy, NOW, actor="system:jobs")
    assert _verify(store.db).ok
    # A checkpoint edited (say, to hide a file): its own hash no longer matches.
    with store.db.write() as s:
        s.execute(update(AuditCheckpoint).where(AuditCheckpoint.id == result.batches[0].checkpoint)
                  .values(export_sha256=_sha("other")))
    report = _verify(store.db)
    assert not report.ok and report.bad_checkpoint == result.batches[0].checkpoint
    with store.db.write() as s:
        s.execute(update(AuditCheckpoint).where(AuditCheckpoint.id == result.batches[0].checkpoint)
                  .values(export_sha256=result.batches[0].sha256))
    assert _verify(store.db).ok
    # The first remaining entry deleted: the trail no longer follows the last checkpoint.
    with store.db.write() as s:
        first = s.execute(select(func.min(AuditEntry.id))).scalar_one()
        s.execute(delete(AuditEntry).where(AuditEntry.id == first))
    report = _verify(store.db)
    assert not report.ok and report.problem == "entry does not follow the previous one"


def test_an_export_file_edited_or_cut_does_not_verify(store: Store, tmp_path: Path) -> None:
    _fill(store.db, 6, OLD)
    batch = prune(store.db, _policy(tmp_path), NOW, actor="system:jobs").batches[0]
    text = batch.file.read_text()
    batch.file.write_text(text.replace('"i\\":2', '"i\\":7'))
    with pytest.raises(audit_export.ExportError, match=r"line 3: entry #\d+ was modified"):
        audit_export.read_file(batch.file)
    lines = text.splitlines(keepends=True)
    batch.file.write_text("".join(lines[:-1]))  # the last entry dropped: the chain inside is intact
    with store.db.read() as s, pytest.raises(audit_export.ExportError, match="last entry differs"):
        audit_export.match_checkpoint(s, audit_export.read_file(batch.file))
    batch.file.write_text(text)
    with store.db.read() as s:
        assert audit_export.match_checkpoint(s, audit_export.read_file(batch.file)).id == batch.checkpoint


def test_a_forged_checkpoint_does_not_match_the_prune_entry(store: Store, tmp_path: Path) -> None:
    """The ``audit.pruned`` entry is in the chain: a rewritten checkpoint (hash recomputed) disagrees with it."""
    _fill(store.db, 6, OLD)
    _fill(store.db, 1, RECENT)
    batch = prune(store.db, _policy(tmp_path), NOW, actor="system:jobs").batches[0]
    with store.db.write() as s:
        ck = s.get(AuditCheckpoint, batch.checkpoint)
        assert ck is not None
        ck.export_sha256 = _sha("a file that was never written")
        ck.hash = checkpoint_hash(GENESIS, ck)
    report = _verify(store.db)
    assert not report.ok and report.problem == f"prune entry does not match checkpoint #{batch.checkpoint}"


def test_two_nodes_prune_at_once_without_losing_or_doubling_entries(db_url: str, tmp_path: Path) -> None:
    """Two processes on one database: one claims each batch; every entry lands in exactly one file."""
    first, second = open_store(db_url), open_store(db_url)
    try:
        _fill(first.db, 40, OLD)
        _fill(first.db, 1, RECENT)
        policies = [RetentionPolicy(400, tmp_path / name, 5) for name in ("a", "b")]

        def node(i: int) -> int:
            db = (first, second)[i].db
            total = 0
            for _ in range(20):
                total += prune(db, policies[i], NOW, actor="system:jobs", owner=f"node-{i}").pruned
            return total

        with ThreadPoolExecutor(max_workers=2) as pool:
            totals = list(pool.map(node, range(2)))
        assert sum(totals) == 40
        ids = [json.loads(line)["id"] for folder in ("a", "b") if (tmp_path / folder).exists()
               for f in (tmp_path / folder).iterdir() for line in f.read_bytes().splitlines()]
        assert len(ids) == len(set(ids)) == 40
        report = _verify(first.db)
        assert report.ok and report.pruned == 40 and report.checkpoints == 8
    finally:
        first.close()
        second.close()


def test_export_folder_is_created_private(store: Store, tmp_path: Path) -> None:
    _fill(store.db, 2, OLD)
    folder = tmp_path / "deep" / "archive"
    prune(store.db, RetentionPolicy(400, folder, 10), NOW, actor="system:jobs")
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_an_earlier_export_is_never_overwritten_with_other_bytes(
        store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After a crash, the range's rows change (tampering): the next run refuses, the first file stays."""
    _fill(store.db, 4, OLD)
    policy = _policy(tmp_path)

    def crash(*args: object, **kwargs: object) -> None:
        raise OSError("power cut")

    monkeypatch.setattr(audit_retention, "_finish", crash)
    with pytest.raises(OSError):
        prune(store.db, policy, NOW, actor="system:jobs")
    monkeypatch.undo()
    [exported] = (tmp_path / "archive").iterdir()
    first_bytes = exported.read_bytes()
    with store.db.write() as s:  # the last entry removed: the chain of the rest is intact
        s.execute(delete(AuditEntry).where(AuditEntry.id == s.execute(select(func.max(AuditEntry.id))).scalar_one()))
    with pytest.raises(RetentionError, match="already exists with other contents"):
        prune(store.db, policy, NOW, actor="system:jobs")
    assert exported.read_bytes() == first_bytes and _count(store.db) == 3
    assert [p.name for p in (tmp_path / "archive").iterdir()] == [exported.name]
