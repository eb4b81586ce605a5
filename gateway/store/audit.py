"""Hash-chained audit trail (SPEC §9): who, when, what, from where; never content.

Each entry's hash is SHA-256 over the previous entry's hash and the entry's canonical
JSON, so editing, deleting or reordering rows breaks the chain; ``prev_hash`` is
unique, so two writers can never fork it. Appends are serialised: SQLite write
transactions are ``BEGIN IMMEDIATE``; on PostgreSQL a transaction-scoped advisory lock.

The trail is partitioned by subject (issue 23, :mod:`gateway.store.partitions`): one chain per
partition (``prev_hash`` unique per partition), its tail read with an equality on the
partition, so a distributed database finds it on one shard. The advisory lock stays one lock
for every partition: a group commit writes entries about many patients in one transaction,
and per-partition locks taken in that order could deadlock two such groups. Every
partition's head is anchored in a global chain (:mod:`gateway.store.audit_anchors`), which
``verify`` checks too: a partition cut short or forked after an anchor is found.

Retention prunes the oldest entries behind a checkpoint (``audit_checkpoints.py``): the
first remaining entry then follows the last checkpoint's ``last_hash`` instead of the
genesis hash, and ``verify`` says where the remaining trail starts.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.store import audit_links
from gateway.store.audit_anchors import AnchorCheck, Heads, anchor_hash, canonical_heads, last_anchor, parse_heads
from gateway.store.audit_checkpoints import GENESIS, anchor, done_checkpoints
from gateway.store.keys import KeyService, MailboxKey
from gateway.store.models import AuditAnchor, AuditCheckpoint, AuditEntry
from gateway.store.partitions import AUDIT_PARTITIONS, SYSTEM_PARTITION, audit_partition
from gateway.store.raw import RawStatement, dialect_name

__all__ = ["GENESIS", "ChainReport", "anchor_heads", "entry_hash", "heads", "heads_of", "record", "row_hash", "verify"]
AUDIT_LOCK_ID = 0x4155444954  # "AUDIT"


def _canonical(at: datetime, actor: str, action: str, subject_ref: str | None, peer: str | None,
               details: str) -> bytes:
    record = {
        "at": at.astimezone(UTC).isoformat(timespec="microseconds"),
        "actor": actor,
        "action": action,
        "subject": subject_ref,
        "peer": peer,
        "details": details,
    }
    return json.dumps(record, sort_keys=True, separators=(",", ":")).encode()


def entry_hash(prev_hash: str, at: datetime, actor: str, action: str, subject_ref: str | None,
               peer: str | None, details: str) -> str:
    digest = hashlib.sha256(prev_hash.encode("ascii"))
    digest.update(_canonical(at, actor, action, subject_ref, peer, details))
    return digest.hexdigest()


def row_hash(prev_hash: str, row: AuditEntry) -> str:
    """The hash a stored row must carry after ``prev_hash`` (``verify``, and export files): its
    original form (1), or the sealed form (2, issue 20).
    (A converted entry, form 3, keeps its original hash: :class:`audit_links.ConvertedCheck`.)"""
    if row.hash_form is None:
        return entry_hash(prev_hash, row.at, row.actor, row.action, row.subject_ref, row.peer, row.details)
    digest = hashlib.sha256(prev_hash.encode("ascii"))
    digest.update(audit_links.canonical(row.at, row.actor, row.action, row.subject_ref, row.peer, row.details,
                                        row.patient_sealed, row.patient_data_key_id))
    return digest.hexdigest()


_A = AuditEntry.__table__.c
_APPEND = RawStatement(
    "INSERT INTO audit_log (partition, at, actor, action, subject_ref, peer, details, prev_hash, hash)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    (_A.partition, _A.at, _A.actor, _A.action, _A.subject_ref, _A.peer, _A.details, _A.prev_hash, _A.hash))
_APPEND_SEALED = RawStatement(
    "INSERT INTO audit_log (partition, at, actor, action, subject_ref, peer, details, prev_hash, hash, hash_form,"
    " patient_sealed, patient_data_key_id, patient_index, patient_index_version)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    (_A.partition, _A.at, _A.actor, _A.action, _A.subject_ref, _A.peer, _A.details, _A.prev_hash, _A.hash,
     _A.hash_form, _A.patient_sealed, _A.patient_data_key_id, _A.patient_index, _A.patient_index_version))
_TAIL_HASH = RawStatement("SELECT hash FROM audit_log WHERE partition = ? ORDER BY id DESC LIMIT 1",
                          (_A.partition,))
_HEAD = RawStatement("SELECT id, hash FROM audit_log WHERE partition = ? ORDER BY id DESC LIMIT 1",
                     (_A.partition,))
_LOCK = RawStatement("SELECT pg_advisory_xact_lock(?)", (None,))

_TAIL = "audit_tail"  # session.info key: (transaction, {partition: last hash appended in that transaction})


def _lock(session: Session) -> None:
    """Serialise appends (PostgreSQL; SQLite write transactions are serialised already)."""
    if dialect_name(session) == "postgresql":
        _LOCK.execute(session, AUDIT_LOCK_ID)


def _tail(session: Session, partition: int) -> str | None:
    """The hash of the partition's last entry (None: the partition holds none)."""
    last = _TAIL_HASH.first(session, partition)
    return None if last is None else str(last[0])


def _lock_and_tail(session: Session, partition: int) -> str:
    """Serialise appends and return the partition's last hash.

    Within one transaction the tails are remembered after the first read (the lock is held
    until the transaction ends, so nobody else can append in between): a group of
    deliveries committed together reads each partition's once. A partition emptied by
    retention never occurs: a prune appends its entry to the partition it prunes first.
    """
    txn = session.get_transaction()
    cached = session.info.get(_TAIL)
    if cached is None or txn is None or cached[0] is not txn:
        _lock(session)
        cached = (txn, {})
        session.info[_TAIL] = cached
    tails: dict[int, str] = cached[1]
    if partition not in tails:
        tails[partition] = _tail(session, partition) or GENESIS
    return tails[partition]


def _remember_tail(session: Session, partition: int, digest: str) -> None:
    session.info[_TAIL][1][partition] = digest


def _prepare(actor: str, action: str, subject_ref: str | None, peer: str | None,
             details: Mapping[str, Any] | None, now: datetime | None) -> tuple[datetime, str]:
    at = (now or datetime.now(UTC)).astimezone(UTC)
    return at, json.dumps(dict(details or {}), sort_keys=True, separators=(",", ":"), default=str)


SUBJECT_MAX = 64
"""Length of ``audit_log.subject_ref``: a longer subject (``pro:<address>`` of a long hospital
address) is kept to its first characters, and searched so (:func:`subject_of`)."""


def subject_of(subject_ref: str | None) -> str | None:
    """The subject as stored: at most :data:`SUBJECT_MAX` characters (PostgreSQL refused the whole
    insert beyond, so adding or disabling an account with an address over 60 characters failed)."""
    return None if subject_ref is None else subject_ref[:SUBJECT_MAX]


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    subject_ref: str | None = None,
    peer: str | None = None,
    details: Mapping[str, Any] | None = None,
    now: datetime | None = None,
    keys: KeyService | None = None,
    partition: int | None = None,
    patient_key: MailboxKey | None = None,
    patient_mailbox: int | None = None,
) -> str:
    """Append one entry in the caller's transaction (committed with the action it records).

    The one way to write an audit entry, for an admin action as for a group-committed batch of
    deliveries: a driver-level insert in the session's transaction, the chain's tail read once
    per transaction under the lock. Returns the entry's hash.

    An entry about a patient (subject or actor ``patient:<id>``) is stored sealed
    (:mod:`gateway.store.audit_links`); it needs ``keys``, and is refused without them.

    The entry's partition follows from its subject (:func:`partitions.audit_partition`);
    ``partition`` is for retention only: its ``audit.pruned`` entry (no subject) goes to the
    partition it prunes, so that partition's chain goes on from the pruned range.
    ``patient_key``: the patient's current data key when the caller holds it (a delivery sealed
    the message under it), saving its lookup; else ``patient_mailbox``: the patient's mailbox id
    when the caller knows it (its key is then read on the mailbox's shard).
    """
    subject_ref = subject_of(subject_ref)
    at, detail_text = _prepare(actor, action, subject_ref, peer, details, now)
    patient_id = audit_links.patient_of(actor, subject_ref)
    if patient_id is not None:
        if keys is None:
            raise ValueError(f"audit entry {action!r} about a patient: pass keys= (it is stored sealed)")
        return _record_sealed(session, keys, patient_id, at, actor, action, subject_ref, peer, detail_text,
                              patient_key, patient_mailbox)
    if partition is None:
        partition = audit_partition(subject_ref)
    elif subject_ref is not None or not 0 <= partition < AUDIT_PARTITIONS:
        raise ValueError("an explicit audit partition is for an entry without subject, within range")
    prev = _lock_and_tail(session, partition)
    digest = entry_hash(prev, at, actor, action, subject_ref, peer, detail_text)
    _APPEND.execute(session, partition, at, actor, action, subject_ref, peer, detail_text, prev, digest)
    _remember_tail(session, partition, digest)
    return digest


def _record_sealed(session: Session, keys: KeyService, patient_id: int, at: datetime, actor: str, action: str,
                   subject_ref: str | None, peer: str | None, detail_text: str,
                   patient_key: MailboxKey | None = None, patient_mailbox: int | None = None) -> str:
    s = audit_links.seal(session, keys, patient_id, actor=actor, subject_ref=subject_ref, peer=peer,
                         details=detail_text, key=patient_key, mailbox_id=patient_mailbox)
    partition = audit_partition(subject_ref, s.index)  # 5 bits of the keyed index: nothing more
    prev = _lock_and_tail(session, partition)
    digest = hashlib.sha256(prev.encode("ascii"))
    digest.update(audit_links.canonical(at, s.actor, action, s.subject_ref, s.peer, s.details, s.sealed,
                                        s.data_key_id))
    value = digest.hexdigest()
    _APPEND_SEALED.execute(session, partition, at, s.actor, action, s.subject_ref, s.peer, s.details, prev, value,
                           audit_links.FORM, s.sealed, s.data_key_id, s.index, s.index_version)
    _remember_tail(session, partition, value)
    return value


def heads(session: Session) -> Heads:
    """Every partition's head now: its last entry, else the end of its pruned range, else genesis
    (one single-partition lookup each)."""
    found: Heads = {}
    for partition in range(AUDIT_PARTITIONS):
        row = _HEAD.first(session, partition)
        if row is None:
            pruned = done_checkpoints(session, partition)
            row = (pruned[-1].last_id, pruned[-1].last_hash) if pruned else (0, GENESIS)
        found[partition] = (int(row[0]), str(row[1]))
    return found


def anchor_heads(session: Session, now: datetime, *, force: bool = False) -> AuditAnchor | None:
    """Record every partition's head in the global anchor chain (``gateway audit anchor``, the
    ``audit-anchor`` job), under the append lock so the heads are one moment's. None: no head
    moved since the last anchor (and not ``force``)."""
    _lock(session)
    current = heads(session)
    previous = last_anchor(session)
    if previous is not None and not force and parse_heads(previous.heads) == current:
        return None
    text = canonical_heads(current)
    prev = GENESIS if previous is None else previous.hash
    at = now.astimezone(UTC)
    row = AuditAnchor(at=at, heads=text, prev_hash=prev, hash=anchor_hash(prev, at, text))
    session.add(row)
    session.flush()
    return row


def heads_of(row: AuditAnchor) -> Heads:
    return parse_heads(row.heads)


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    entries: int
    first_bad_id: int | None = None
    problem: str | None = None
    start_id: int | None = None  # the first remaining entry (the lowest over the partitions)
    checkpoints: int = 0  # retention checkpoints (pruned batches)
    pruned: int = 0  # entries pruned behind them
    pruned_until: datetime | None = None  # the last pruned entry's time
    prune_pending: bool = False  # a prune is under way
    bad_checkpoint: int | None = None
    partition: int | None = None  # where it is broken
    partitions: int = 0  # partitions holding entries
    anchors: int = 0  # global anchors checked
    bad_anchor: int | None = None


PRUNED_ACTION = "audit.pruned"  # the entry a prune appends, naming its checkpoint


def _pruned_entry_problem(row: AuditEntry, checkpoints: dict[int, AuditCheckpoint]) -> str | None:
    """An ``audit.pruned`` entry must name a done checkpoint of its partition with the same chain end and file."""
    try:
        details = json.loads(row.details)
        ck = checkpoints.get(int(details["checkpoint"]))
    except (ValueError, KeyError, TypeError):
        return "prune entry names no checkpoint"
    if ck is None:
        return "prune entry names a checkpoint that does not exist"
    if (details.get("last_hash"), details.get("export_sha256"), ck.partition) != \
            (ck.last_hash, ck.export_sha256, row.partition):
        return f"prune entry does not match checkpoint #{ck.id}"
    return None


def _broken(base: ChainReport, count: int, row_id: int | None, problem: str) -> ChainReport:
    return replace(base, ok=False, entries=count, first_bad_id=row_id, problem=problem)


def verify(session: Session, *, batch: int = 5000) -> ChainReport:
    """Check the global anchors, then each partition: its retention checkpoints, its remaining
    entries in id order from their anchor, and every head the anchors recorded for it."""
    anchors = AnchorCheck.load(session)
    total = ChainReport(True, 0, anchors=anchors.count)
    if anchors.problem is not None:
        return replace(total, ok=False, problem=anchors.problem, bad_anchor=anchors.bad_anchor)
    checkpoints = {ck.id: ck for ck in session.execute(select(AuditCheckpoint)).scalars()}
    commits = audit_links.ConvertedCheck.load(session)  # converted entries are all in the system partition
    for partition in range(AUDIT_PARTITIONS):
        converted = commits if partition == SYSTEM_PARTITION else audit_links.ConvertedCheck({})
        report = _verify_partition(session, partition, checkpoints, converted, anchors, batch)
        starts = [v for v in (total.start_id, report.start_id) if v is not None]
        until = [v for v in (total.pruned_until, report.pruned_until) if v is not None]
        total = replace(total, entries=total.entries + report.entries,
                        checkpoints=total.checkpoints + report.checkpoints,
                        pruned=total.pruned + report.pruned, pruned_until=max(until) if until else None,
                        prune_pending=total.prune_pending or report.prune_pending,
                        start_id=min(starts) if starts else None, partitions=total.partitions + (report.entries > 0))
        if not report.ok:
            return replace(total, ok=False, first_bad_id=report.first_bad_id, problem=report.problem,
                           bad_checkpoint=report.bad_checkpoint, partition=partition, bad_anchor=report.bad_anchor,
                           entries=total.entries)
    return total


def _verify_partition(session: Session, partition: int, checkpoints: dict[int, AuditCheckpoint],
                      converted: audit_links.ConvertedCheck, anchors: AnchorCheck, batch: int) -> ChainReport:
    """One partition's chain, from where its retention left it, against the anchors."""
    start = anchor(session, partition)
    base = ChainReport(True, 0, checkpoints=start.checkpoints, pruned=start.pruned,
                       pruned_until=start.pruned_until, prune_pending=start.pending)
    if not start.ok:
        return replace(base, ok=False, problem=start.problem, bad_checkpoint=start.bad_checkpoint)
    heads = anchors.heads_of(partition, start)
    if isinstance(heads, str):
        return _broken(base, 0, None, heads)
    prev = start.prev_hash
    count = 0
    last_id = 0
    first_id: int | None = None
    while True:
        rows = session.execute(
            select(AuditEntry).where(AuditEntry.partition == partition, AuditEntry.id > last_id)
            .order_by(AuditEntry.id).limit(batch)
        ).scalars().all()
        if not rows:
            uncommitted = converted.first_uncommitted()
            if uncommitted is not None:
                return _broken(base, count, uncommitted, "converted entry not committed by a conversion entry")
            missing = heads.missing()
            if missing is not None:
                return replace(_broken(base, count, missing[0], missing[1]), bad_anchor=missing[2])
            return replace(base, entries=count, start_id=first_id)
        for row in rows:
            problem = _row_problem(row, prev, first_id is None, start.after_id, converted, checkpoints)
            if problem is None:
                problem = heads.see(row.id, row.hash)
            if problem is not None:
                return _broken(base, count, row.id, problem)
            if first_id is None:
                first_id = row.id
            prev = row.hash
            count += 1
            last_id = row.id
        session.expunge_all()


def _row_problem(row: AuditEntry, prev: str, first: bool, after_id: int, converted: audit_links.ConvertedCheck,
                 checkpoints: dict[int, AuditCheckpoint]) -> str | None:
    if first and row.id <= after_id:
        return "entry inside a pruned range"
    if row.prev_hash != prev:
        return "entry does not follow the previous one"
    if row.hash_form == audit_links.CONVERTED_FORM:
        if not converted.see(row):
            return "a converted entry up to this one was modified (they no longer match their conversion entry)"
    elif row_hash(prev, row) != row.hash:
        return "entry was modified"
    return _pruned_entry_problem(row, checkpoints) if row.action == PRUNED_ACTION else None
