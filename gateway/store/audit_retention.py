"""Audit retention: export the oldest entries to a file, then prune them behind a checkpoint.

MSSanté asks for functional traces kept 6 months; the patient's access history covers at
least 12, so ``[audit] retention_days`` is at least 365 (0: keep everything). Entries older
than that, at the head of the trail, go by batches of ``prune_batch_size``; each batch is
never half-done:

1. *claim* (short write transaction): a ``pending`` checkpoint row fixes the batch's id
   range and names its file, under a lease (``lease_owner`` / ``lease_until``). On
   PostgreSQL a transaction-scoped ``pg_try_advisory_xact_lock`` and ``FOR UPDATE`` make
   one node claim at a time; the others see the live lease and skip. An unfinished
   checkpoint (a crash, a lost lease) is resumed with the same range.
2. *export* (read transaction): the range's stored rows, chain checked from the anchor
   (a broken chain is never pruned: the evidence stays), are written to
   ``<export_dir>/audit-<first>-<last>.jsonl`` atomically (``audit_export``). Writing it
   again after a crash gives the same bytes.
3. *finish* (one write transaction): the lease is still ours and the rows are the ones
   exported; an ``audit.pruned`` entry naming the checkpoint is appended, the range is
   deleted, the checkpoint becomes ``done`` with the count, both chain ends, the file's
   SHA-256 and its own chained hash. A crash before the commit changes nothing: the next
   run exports the same range again (same file, same bytes) and finishes.

The trail is partitioned (issue 23): a batch is a prefix of one partition's chain, its
checkpoint carries the partition, and its ``audit.pruned`` entry is appended to that
partition (so the partition's chain goes on from the pruned range, never empty). Each
statement names the partition; the partitions are visited one after the other.
"""

from __future__ import annotations

import math
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

from sqlalchemy import delete, func, select, text
from sqlalchemy.orm import Session

from gateway.store import audit
from gateway.store.audit_checkpoints import GENESIS, anchor, checkpoint_hash, done_checkpoints
from gateway.store.audit_export import (
    ChainWalk,
    ExportError,
    ExportSummary,
    encode_line,
    export_name,
    stored_rows,
    write_atomically,
)
from gateway.store.db import Database
from gateway.store.models import AuditCheckpoint, AuditEntry
from gateway.store.partitions import AUDIT_PARTITIONS

RETENTION_LOCK = 0x4155444954_01  # "AUDIT" << 8 | 1: one claimer at a time across a cluster
LEASE = timedelta(minutes=15)
BUSY: Literal["busy"] = "busy"
ACTION = audit.PRUNED_ACTION


class RetentionError(Exception):
    """A prune that must not go on (broken chain, lost lease, unwritable folder); for the operator."""


@dataclass(frozen=True)
class RetentionPolicy:
    days: int  # 0: keep everything
    export_dir: Path
    batch_size: int = 10000

    def cutoff(self, now: datetime) -> datetime:
        return now - timedelta(days=self.days)


def default_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:64]


@dataclass(frozen=True)
class PrunePlan:
    """What a prune at ``now`` would do (``gateway audit prune --dry-run``)."""

    cutoff: datetime
    due: int  # entries older than the cutoff at the head of the trail
    first_id: int | None
    last_id: int | None
    batches: int
    pending: int | None  # an unfinished checkpoint the next run completes


@dataclass(frozen=True)
class PrunedBatch:
    checkpoint: int
    first_id: int
    last_id: int
    entries: int
    file: Path
    sha256: str


@dataclass(frozen=True)
class PruneResult:
    ran: bool  # False: another process holds the lease
    cutoff: datetime
    batches: list[PrunedBatch] = field(default_factory=list)

    @property
    def pruned(self) -> int:
        return sum(b.entries for b in self.batches)


@dataclass(frozen=True)
class _Claim:
    partition: int
    checkpoint: int
    first_id: int
    last_id: int
    name: str


def _due_bound(session: Session, partition: int, cutoff: datetime) -> int | None:
    """The partition's first entry at or after the cutoff: only the entries before it (a prefix) are due."""
    value = session.execute(select(func.min(AuditEntry.id)).where(AuditEntry.partition == partition,
                                                                  AuditEntry.at >= cutoff)).scalar()
    return None if value is None else int(value)


def plan(session: Session, policy: RetentionPolicy, now: datetime) -> PrunePlan:
    cutoff = policy.cutoff(now)
    pending = session.execute(select(AuditCheckpoint.id).where(AuditCheckpoint.status == "pending")
                              .order_by(AuditCheckpoint.id).limit(1)).scalar()
    if policy.days == 0:
        return PrunePlan(cutoff, 0, None, None, 0, pending)
    due, batches, firsts, lasts = 0, 0, [], []
    for partition in range(AUDIT_PARTITIONS):
        query = select(func.count(), func.min(AuditEntry.id), func.max(AuditEntry.id)).where(
            AuditEntry.partition == partition, AuditEntry.at < cutoff)
        bound = _due_bound(session, partition, cutoff)
        if bound is not None:
            query = query.where(AuditEntry.id < bound)
        count, first, last = session.execute(query).one()
        due += int(count)
        batches += math.ceil(int(count) / policy.batch_size)
        firsts += [first] if first is not None else []
        lasts += [last] if last is not None else []
    return PrunePlan(cutoff, due, min(firsts, default=None), max(lasts, default=None), batches, pending)


def _try_lock(db: Database, session: Session) -> bool:
    if db.is_sqlite:
        return True  # BEGIN IMMEDIATE: write transactions are serialised already
    return bool(session.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": RETENTION_LOCK}).scalar_one())


def _claim(db: Database, policy: RetentionPolicy, now: datetime, owner: str) -> _Claim | Literal["busy"] | None:
    """The batch to work on (resumed or new); None: nothing due; BUSY: another process is on it."""
    with db.write() as session:
        if not _try_lock(db, session):
            return BUSY
        pending = session.execute(select(AuditCheckpoint).where(AuditCheckpoint.status == "pending")
                                  .order_by(AuditCheckpoint.id).limit(1).with_for_update()).scalar()
        if pending is not None:
            live = pending.lease_until is not None and pending.lease_until > now
            if live and pending.lease_owner != owner:
                return BUSY
            pending.lease_owner, pending.lease_until = owner, now + LEASE
            return _Claim(pending.partition, pending.id, pending.first_id, pending.last_id, pending.export_name)
        cutoff = policy.cutoff(now)
        for partition in range(AUDIT_PARTITIONS):
            ids = _due_head(session, partition, cutoff, policy.batch_size)
            if ids:
                name = export_name(ids[0], ids[-1])
                ck = AuditCheckpoint(partition=partition, status="pending", first_id=ids[0], last_id=ids[-1],
                                     export_name=name, created_at=now, lease_owner=owner, lease_until=now + LEASE)
                session.add(ck)
                session.flush()
                return _Claim(partition, ck.id, ids[0], ids[-1], name)
        return None


def _due_head(session: Session, partition: int, cutoff: datetime, limit: int) -> list[int]:
    """The ids of the partition's oldest entries before the cutoff (at most ``limit``)."""
    oldest = session.execute(select(AuditEntry.at).where(AuditEntry.partition == partition)
                             .order_by(AuditEntry.id).limit(1)).scalar()
    if oldest is None or oldest >= cutoff:
        return []  # the usual case at each period: one row read per partition
    head = session.execute(select(AuditEntry.id, AuditEntry.at).where(AuditEntry.partition == partition)
                           .order_by(AuditEntry.id).limit(limit)).all()
    ids = []
    for entry_id, at in head:
        if at >= cutoff:
            break
        ids.append(int(entry_id))
    return ids


def _export(db: Database, policy: RetentionPolicy, claim: _Claim) -> ExportSummary:
    """Write the claimed range's file (again, after a crash: the same bytes) and sum it up."""
    with db.read() as session:
        start = anchor(session, claim.partition)
    if not start.ok:
        raise RetentionError(f"audit checkpoint #{start.bad_checkpoint}: {start.problem}; nothing pruned")
    walk = ChainWalk(start.prev_hash)

    def lines() -> Iterator[bytes]:
        with db.read() as session:
            for row in stored_rows(session, claim.partition, claim.first_id, claim.last_id):
                walk.add(AuditEntry(**row))
                yield encode_line(row)

    for stale in policy.export_dir.glob(f".{claim.name}.*.tmp"):  # a crashed run's temporary file
        stale.unlink(missing_ok=True)
    try:
        sha = write_atomically(policy.export_dir, claim.name, lines(), check=walk.summary)
        return walk.summary(sha)
    except ExportError as exc:
        raise RetentionError(f"audit entries #{claim.first_id}-#{claim.last_id}: {exc}; nothing pruned") from None
    except OSError as exc:
        raise RetentionError(f"{policy.export_dir}: cannot write the export ({exc.strerror or exc}); "
                             "nothing pruned") from None


def _finish(db: Database, claim: _Claim, summary: ExportSummary, now: datetime, owner: str, actor: str) -> None:
    """Append the ``audit.pruned`` entry, delete the range, close the checkpoint: one transaction."""
    with db.write() as session:
        ck = session.execute(select(AuditCheckpoint).where(AuditCheckpoint.id == claim.checkpoint)
                             .with_for_update()).scalar()
        if ck is None or ck.status != "pending" or ck.lease_owner != owner:
            raise RetentionError(f"audit checkpoint #{claim.checkpoint} was taken over by another process; "
                                 "it finishes the prune")
        in_range = (AuditEntry.partition == claim.partition) & (AuditEntry.id >= claim.first_id) & \
            (AuditEntry.id <= claim.last_id)
        count, last = session.execute(select(func.count(), func.max(AuditEntry.id)).where(in_range)).one()
        last_hash = session.execute(select(AuditEntry.hash).where(AuditEntry.partition == claim.partition,
                                                                  AuditEntry.id == last)).scalar()
        if (count, last_hash) != (summary.entries, summary.last_hash):
            raise RetentionError(f"audit entries #{claim.first_id}-#{claim.last_id} changed while exported; "
                                 "nothing pruned")
        previous = done_checkpoints(session, claim.partition)
        prev_ck = previous[-1].hash if previous else GENESIS
        if summary.first_prev_hash != (previous[-1].last_hash if previous else GENESIS):
            raise RetentionError("the export does not follow the last checkpoint; nothing pruned")
        audit.record(session, actor=actor, action=ACTION, now=now, partition=claim.partition, details={
            "checkpoint": ck.id, "first_id": summary.first_id, "last_id": summary.last_id,
            "entries": summary.entries, "last_hash": summary.last_hash, "export": ck.export_name,
            "export_sha256": summary.sha256, "partition": claim.partition})
        session.execute(delete(AuditEntry).where(in_range).execution_options(synchronize_session=False))
        ck.status, ck.entries, ck.first_prev_hash, ck.last_hash = "done", summary.entries, \
            summary.first_prev_hash, summary.last_hash
        ck.last_at, ck.export_sha256, ck.pruned_at = summary.last_at, summary.sha256, now
        ck.lease_owner = ck.lease_until = None
        ck.prev_hash = prev_ck
        ck.hash = checkpoint_hash(str(prev_ck), ck)


def prune(db: Database, policy: RetentionPolicy, now: datetime, *, actor: str, owner: str | None = None,
          max_batches: int | None = None) -> PruneResult:
    """Export and prune every due batch (at most ``max_batches``); see the module's docstring."""
    cutoff = policy.cutoff(now)
    if policy.days == 0:
        return PruneResult(True, cutoff)
    owner = owner or default_owner()
    done: list[PrunedBatch] = []
    while max_batches is None or len(done) < max_batches:
        claim = _claim(db, policy, now, owner)
        if claim is None:
            break
        if claim == BUSY:
            return PruneResult(bool(done), cutoff, done)  # another process holds the lease
        assert isinstance(claim, _Claim)
        summary = _export(db, policy, claim)
        _finish(db, claim, summary, now, owner, actor)
        done.append(PrunedBatch(claim.checkpoint, summary.first_id, summary.last_id, summary.entries,
                          policy.export_dir / claim.name, summary.sha256))
    return PruneResult(True, cutoff, done)
