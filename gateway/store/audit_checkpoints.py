"""The checkpoints of a pruned audit trail: their own hash chain and the anchor they give.

Retention (``gateway/store/audit_retention.py``) exports the oldest entries to a file and
deletes them behind a checkpoint row. Each done checkpoint records the pruned range's
chain ends (``first_prev_hash`` .. ``last_hash``), the count and the export file's SHA-256,
and is chained on the previous checkpoint like audit entries are: SHA-256 over the
previous checkpoint's hash and the checkpoint's canonical JSON. Consecutive checkpoints
must also join (``first_prev_hash`` = the previous ``last_hash``), so the checkpoints and
the remaining entries together form one unbroken chain from the genesis hash.

Since issue 23 the trail is partitioned (``gateway/store/partitions.py``): a checkpoint prunes
a range of one partition (``partition``) and chains on that partition's previous checkpoint;
each partition starts from the genesis hash. A checkpoint of partition 0 hashes as before
(the partition is in its canonical JSON only when it is not 0), so the checkpoints written
before the partitioning (all of partition 0) keep their hashes.

This module reads only; it imports nothing of the audit writer.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.store.models import AuditCheckpoint

GENESIS = "0" * 64


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat(timespec="microseconds")


def checkpoint_hash(prev_hash: str, ck: AuditCheckpoint) -> str:
    """SHA-256 over the previous checkpoint's hash and this one's canonical JSON."""
    record: dict[str, object] = {
        "first_id": ck.first_id, "last_id": ck.last_id, "entries": ck.entries,
        "first_prev_hash": ck.first_prev_hash, "last_hash": ck.last_hash, "last_at": _iso(ck.last_at),
        "export_name": ck.export_name, "export_sha256": ck.export_sha256, "pruned_at": _iso(ck.pruned_at),
    }
    if ck.partition:
        record["partition"] = ck.partition
    digest = hashlib.sha256(prev_hash.encode("ascii"))
    digest.update(json.dumps(record, sort_keys=True, separators=(",", ":")).encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class Anchor:
    """Where the remaining trail starts: the hash its first entry must follow, and what was pruned."""

    prev_hash: str  # GENESIS when nothing was pruned
    after_id: int  # the remaining entries' ids are above this (0: nothing pruned)
    checkpoints: int
    pruned: int  # entries pruned in all
    pruned_until: datetime | None  # the last pruned entry's time
    pending: bool  # a prune is under way (its entries are still in the table)
    last: AuditCheckpoint | None
    problem: str | None = None
    bad_checkpoint: int | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


def done_checkpoints(session: Session, partition: int) -> list[AuditCheckpoint]:
    return list(session.execute(select(AuditCheckpoint).where(AuditCheckpoint.status == "done",
                                                              AuditCheckpoint.partition == partition)
                                .order_by(AuditCheckpoint.id)).scalars())


def last_pruned_at(session: Session) -> datetime | None:
    """The last pruned entry's time (None: nothing pruned): what a history shown from the trail lacks."""
    return session.execute(select(AuditCheckpoint.last_at).where(AuditCheckpoint.status == "done")
                           .order_by(AuditCheckpoint.id.desc()).limit(1)).scalar()


def anchor(session: Session, partition: int) -> Anchor:
    """Walk the partition's done checkpoints (a handful: one per pruned batch) and return its anchor."""
    prev_ck, prev_last, after, pruned = GENESIS, GENESIS, 0, 0
    last: AuditCheckpoint | None = None
    pending = session.execute(select(AuditCheckpoint.id).where(AuditCheckpoint.status == "pending",
                                                               AuditCheckpoint.partition == partition)
                              .limit(1)).first() is not None
    found = done_checkpoints(session, partition)
    for ck in found:
        problem = None
        if ck.prev_hash != prev_ck:
            problem = "checkpoint does not follow the previous one"
        elif ck.hash != checkpoint_hash(prev_ck, ck):
            problem = "checkpoint was modified"
        elif ck.first_prev_hash != prev_last or ck.first_id <= after or ck.last_id < ck.first_id:
            problem = "checkpoint does not join the previous pruned range"
        if problem is not None:
            return Anchor(prev_last, after, len(found), pruned, last.last_at if last else None, pending, last,
                          problem, ck.id)
        prev_ck, prev_last, after = str(ck.hash), str(ck.last_hash), ck.last_id
        pruned += ck.entries or 0
        last = ck
    return Anchor(prev_last, after, len(found), pruned, last.last_at if last else None, pending, last)
