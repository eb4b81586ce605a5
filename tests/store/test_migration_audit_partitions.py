"""Migration 0018_audit_partitions_queue_buckets converts a populated database in place, on
SQLite and PostgreSQL: the existing audit chain becomes partition 0's history with every hash
kept (and keeps verifying, with its retention checkpoint and export file), queue entries get
the bucket of their uuid; the downgrade is refused while an entry lies outside partition 0
and restores the previous schema otherwise."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import inspect, select, text

from gateway.outbound import queue
from gateway.store import audit, migrate
from gateway.store.audit_retention import RetentionPolicy, prune
from gateway.store.db import Database
from gateway.store.models import AuditEntry, QueueEntry
from gateway.store.partitions import SYSTEM_PARTITION, queue_bucket
from gateway.testing.store import open_store

NOW = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
AT = "2027-01-01 00:00:00"


def _move(db: Database, revision: str, *, up: bool = False) -> None:
    (migrate.upgrade if up else migrate.downgrade)(db.engine, revision)


def _old_chain(db: Database, n: int) -> list[tuple[int, str, str]]:
    """``n`` entries as release 0016 wrote them (one chain), some with subjects; (id, prev, hash)."""
    prev = audit.GENESIS
    with db.engine.begin() as conn:
        for i in range(n):
            at = NOW - timedelta(days=600 - i)
            subject = f"domain:d{i}.test" if i % 2 else None
            digest = audit.entry_hash(prev, at, "admin:cli", "test.event", subject, None, "{}")
            conn.execute(text("INSERT INTO audit_log (at, actor, action, subject_ref, peer, details, prev_hash, hash)"
                              " VALUES (:at, 'admin:cli', 'test.event', :sub, NULL, '{}', :prev, :hash)"),
                         {"at": at.replace(tzinfo=None) if db.is_sqlite else at, "sub": subject, "prev": prev,
                          "hash": digest})
            prev = digest
        return [tuple(r) for r in conn.execute(text("SELECT id, prev_hash, hash FROM audit_log ORDER BY id"))]


def _old_queue(db: Database, uuids: list[str]) -> None:
    with db.engine.begin() as conn:
        key = conn.execute(text("INSERT INTO mailboxes (uid, kind, created_at) VALUES ('sys', 'system', :at)"
                                " RETURNING id"), {"at": AT}).scalar_one()
        data_key = conn.execute(text("INSERT INTO data_keys (mailbox_id, master_version, wrapped, created_at)"
                                     " VALUES (:m, 1, :w, :at) RETURNING id"), {"m": key, "w": b"k", "at": AT}
                                ).scalar_one()
        for uuid in uuids:
            conn.execute(text("INSERT INTO outbound_queue (uuid, data_key_id, domain, kind, envelope_sealed,"
                              " message_sealed, size, status, attempts, created_at, next_attempt_at, expires_at)"
                              " VALUES (:u, :k, 'remote.test', 'message', :b, :b, 1, 'pending', 0, :at, :at, :at)"),
                         {"u": uuid, "k": data_key, "b": b"x", "at": AT})


def test_upgrade_keeps_the_chain_as_partition_0_and_buckets_the_queue(db_url: str, tmp_path: Path) -> None:
    db = Database(db_url, pool_size=2)
    try:
        migrate.upgrade(db.engine, "0016")
        before = _old_chain(db, 9)
        uuids = [f"{i:032x}" for i in range(20)]
        _old_queue(db, uuids)
        migrate.upgrade(db.engine)
        with db.engine.connect() as conn:
            after = [tuple(r) for r in conn.execute(text("SELECT id, prev_hash, hash FROM audit_log ORDER BY id"))]
            partitions = set(conn.execute(text("SELECT partition FROM audit_log")).scalars())
            buckets = dict(conn.execute(text("SELECT uuid, bucket FROM outbound_queue")).tuples().all())
        assert after == before and partitions == {SYSTEM_PARTITION}
        assert buckets == {u: queue_bucket(u) for u in uuids} and len(set(buckets.values())) > 5
        assert not inspect(db.engine).get_foreign_keys("outbound_queue")
    finally:
        db.dispose()
    store = open_store(db_url)
    try:
        with store.db.read() as s:
            report = audit.verify(s)
            assert report.ok and report.entries == 9
            assert queue.entry(s, uuids[3]) is not None
        with store.db.write() as s:  # a system entry follows the old tail; one with a subject starts its partition
            audit.record(s, actor="system", action="test.after")
            audit.record(s, actor="admin:cli", action="test.after", subject_ref="domain:new.test")
            audit.anchor_heads(s, NOW)
            rows = list(s.execute(select(AuditEntry).order_by(AuditEntry.id)).scalars())
        assert rows[-2].partition == SYSTEM_PARTITION and rows[-2].prev_hash == before[-1][2]
        assert rows[-1].partition != SYSTEM_PARTITION and rows[-1].prev_hash == audit.GENESIS
        result = prune(store.db, RetentionPolicy(400, tmp_path / "archive", 4), NOW, actor="admin:cli:test")
        assert result.pruned == 9 and all(b.file.exists() for b in result.batches)
        with store.db.read() as s:
            report = audit.verify(s)
            assert report.ok and report.pruned == 9 and report.anchors == 1
            assert s.execute(select(QueueEntry.bucket).where(QueueEntry.uuid == uuids[0])).scalar_one() \
                == queue_bucket(uuids[0])
    finally:
        store.db.dispose()


def test_downgrade_refused_outside_partition_0_and_restores_the_schema_otherwise(db_url: str) -> None:
    store = open_store(db_url)
    try:
        with store.db.write() as s:
            audit.record(s, actor="system", action="test.system")
            audit.anchor_heads(s, NOW)
            queue.enqueue(s, store.keys, domain="remote.test", mail_from=None,
                          recipients=[queue.QueuedRecipient("a@remote.test")], message=b"x", now=NOW,
                          max_age=timedelta(hours=1))
        with store.db.write() as s:
            audit.record(s, actor="admin:cli", action="test.subject", subject_ref="domain:elsewhere.test")
        refused = r"1 audit entr\(y/ies\) and 0 checkpoint\(s\) lie outside partition 0"
        with pytest.raises(RuntimeError, match=refused):
            _move(store.db, "0016")
        assert migrate.current_revision(store.db.engine) == migrate.head_revision()
        with store.db.write() as s:
            s.execute(text("DELETE FROM audit_log WHERE partition <> 0"))
        _move(store.db, "0016")
        names = inspect(store.db.engine)
        assert "partition" not in {c["name"] for c in names.get_columns("audit_log")}
        assert "bucket" not in {c["name"] for c in names.get_columns("outbound_queue")}
        assert "audit_anchors" not in names.get_table_names()
        assert [fk["referred_table"] for fk in names.get_foreign_keys("outbound_queue")] == ["data_keys"]
        with store.db.engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM outbound_queue")).scalar_one() == 1
            assert conn.execute(text("SELECT count(*) FROM audit_log")).scalar_one() >= 1
        _move(store.db, "head", up=True)
        with store.db.read() as s:
            assert audit.verify(s).ok
    finally:
        store.db.dispose()
