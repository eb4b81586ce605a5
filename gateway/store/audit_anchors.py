"""The global anchor chain over the audit partitions (issue 23).

Each partition of the audit trail is a hash chain of its own (``gateway/store/audit.py``), so
a partition cut short at its tail, or replaced after some entry by another well-formed
chain (a fork), would still verify on its own. An *anchor* (``audit_anchors``, a small
reference table) records, at one moment and under the append lock, every partition's head:
``heads`` = ``{"<partition>": [<last id>, "<hash>"]}`` (an empty partition: ``[0, GENESIS]``;
one pruned to nothing: its last checkpoint's ``last_id`` / ``last_hash``), and is chained on
the previous anchor: ``hash`` = SHA-256 over ``prev_hash`` and the canonical JSON of
``{"at", "heads"}``.

``gateway audit verify`` checks the anchor chain, then, walking each partition, that every
head an anchor recorded is still there with the same hash (or lies in a range pruned behind
a checkpoint, whose end must match). What happened after the last anchor is not covered:
anchors are written by ``gateway audit anchor`` and by the ``audit-anchor`` job every
:data:`ANCHOR_EVERY` when a head moved.

This module reads only; the writer is :func:`gateway.store.audit.anchor_heads`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.store.audit_checkpoints import GENESIS, Anchor
from gateway.store.models import AuditAnchor

ANCHOR_EVERY = timedelta(minutes=60)
Heads = dict[int, tuple[int, str]]  # partition -> (last id, hash)


def canonical_heads(heads: Heads) -> str:
    return json.dumps({str(p): [i, h] for p, (i, h) in sorted(heads.items())}, sort_keys=True,
                      separators=(",", ":"))


def parse_heads(text: str) -> Heads:
    found = json.loads(text)
    if not isinstance(found, dict):
        raise ValueError("heads is not an object")
    return {int(p): (int(v[0]), str(v[1])) for p, v in found.items()}


def anchor_hash(prev_hash: str, at: datetime, heads_text: str) -> str:
    record = {"at": at.astimezone(UTC).isoformat(timespec="microseconds"), "heads": heads_text}
    digest = hashlib.sha256(prev_hash.encode("ascii"))
    digest.update(json.dumps(record, sort_keys=True, separators=(",", ":")).encode())
    return digest.hexdigest()


def last_anchor(session: Session) -> AuditAnchor | None:
    return session.execute(select(AuditAnchor).order_by(AuditAnchor.id.desc()).limit(1)).scalar()


@dataclass
class PartitionHeads:
    """The heads anchors recorded for one partition, checked while it is walked."""

    partition: int
    expected: dict[int, tuple[str, int]]  # entry id -> (hash, the first anchor recording it)
    seen: set[int] = field(default_factory=set)

    def see(self, entry_id: int, digest: str) -> str | None:
        want = self.expected.get(entry_id)
        if want is None:
            return None
        self.seen.add(entry_id)
        if want[0] != digest:
            return f"entry differs from the head anchor #{want[1]} recorded (partition forked after the anchor)"
        return None

    def missing(self) -> tuple[int, str, int] | None:
        """After the walk: the first recorded head no longer there (entry id, problem, anchor id)."""
        for entry_id in sorted(self.expected):
            if entry_id not in self.seen:
                anchor_id = self.expected[entry_id][1]
                return (entry_id, f"entry #{entry_id}, partition {self.partition}'s head at anchor #{anchor_id}, "
                        "is gone (the partition was cut short or forked after the anchor)", anchor_id)
        return None


@dataclass
class AnchorCheck:
    """Every anchor, its chain checked, and the heads it recorded per partition."""

    count: int = 0
    heads: dict[int, dict[int, tuple[str, int]]] = field(default_factory=dict)
    problem: str | None = None
    bad_anchor: int | None = None

    @classmethod
    def load(cls, session: Session) -> AnchorCheck:
        check = cls()
        prev = GENESIS
        for row in session.execute(select(AuditAnchor).order_by(AuditAnchor.id)).scalars():
            check.count += 1
            problem = None
            if row.prev_hash != prev:
                problem = "anchor does not follow the previous one"
            elif row.hash != anchor_hash(prev, row.at, row.heads):
                problem = "anchor was modified"
            if problem is None:
                try:
                    recorded = parse_heads(row.heads)
                except (ValueError, TypeError, IndexError):
                    problem = "anchor heads unreadable"
            if problem is not None:
                check.problem, check.bad_anchor = f"anchor #{row.id}: {problem}", row.id
                return check
            for partition, (entry_id, digest) in recorded.items():
                if entry_id > 0:
                    check.heads.setdefault(partition, {}).setdefault(entry_id, (digest, row.id))
            prev = row.hash
        return check

    def heads_of(self, partition: int, start: Anchor) -> PartitionHeads | str:
        """The heads to find in the partition's remaining entries; those in its pruned range
        must end a pruned batch with the same hash or lie inside one. A problem: a string."""
        pruned_ends = {} if start.last is None else {start.last.last_id: start.last.last_hash}
        remaining: dict[int, tuple[str, int]] = {}
        for entry_id, (digest, anchor_id) in self.heads.get(partition, {}).items():
            if entry_id > start.after_id:
                remaining[entry_id] = (digest, anchor_id)
            elif entry_id in pruned_ends and pruned_ends[entry_id] != digest:
                return (f"partition {partition}'s head at anchor #{anchor_id} (entry #{entry_id}) differs from the "
                        "end of its pruned range")
        return PartitionHeads(partition, remaining)
