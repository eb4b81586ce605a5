"""Hash-chained audit trail (SPEC §9): who, when, what, from where; never content.

Each entry's hash is SHA-256 over the previous entry's hash and the entry's canonical
JSON, so editing, deleting or reordering rows breaks the chain; ``prev_hash`` is
unique, so two writers can never fork it. Appends are serialised: SQLite write
transactions are ``BEGIN IMMEDIATE``; on PostgreSQL a transaction-scoped advisory lock.

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
from gateway.store.audit_checkpoints import GENESIS, anchor
from gateway.store.keys import KeyService
from gateway.store.models import AuditCheckpoint, AuditEntry
from gateway.store.raw import RawStatement, dialect_name

__all__ = ["GENESIS", "ChainReport", "entry_hash", "record", "row_hash", "verify"]
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
    "INSERT INTO audit_log (at, actor, action, subject_ref, peer, details, prev_hash, hash)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    (_A.at, _A.actor, _A.action, _A.subject_ref, _A.peer, _A.details, _A.prev_hash, _A.hash))
_APPEND_SEALED = RawStatement(
    "INSERT INTO audit_log (at, actor, action, subject_ref, peer, details, prev_hash, hash, hash_form,"
    " patient_sealed, patient_data_key_id, patient_index, patient_index_version)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    (_A.at, _A.actor, _A.action, _A.subject_ref, _A.peer, _A.details, _A.prev_hash, _A.hash, _A.hash_form,
     _A.patient_sealed, _A.patient_data_key_id, _A.patient_index, _A.patient_index_version))
_TAIL_HASH = RawStatement("SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1")
_LOCK = RawStatement("SELECT pg_advisory_xact_lock(?)", (None,))

_TAIL = "audit_tail"  # session.info key: (transaction, last hash) appended in that transaction


def _lock_and_tail(session: Session) -> str:
    """Serialise appends and return the chain's last hash.

    Within one transaction the tail is remembered after the first read (the lock is held
    until the transaction ends, so nobody else can append in between): a group of
    deliveries committed together reads it once.
    """
    txn = session.get_transaction()
    cached = session.info.get(_TAIL)
    if cached is not None and txn is not None and cached[0] is txn:
        return str(cached[1])
    if dialect_name(session) == "postgresql":
        _LOCK.execute(session, AUDIT_LOCK_ID)
    last = _TAIL_HASH.first(session)
    return str(last[0]) if last is not None else GENESIS


def _remember_tail(session: Session, digest: str) -> None:
    session.info[_TAIL] = (session.get_transaction(), digest)


def _prepare(actor: str, action: str, subject_ref: str | None, peer: str | None,
             details: Mapping[str, Any] | None, now: datetime | None) -> tuple[datetime, str]:
    at = (now or datetime.now(UTC)).astimezone(UTC)
    return at, json.dumps(dict(details or {}), sort_keys=True, separators=(",", ":"), default=str)


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
) -> str:
    """Append one entry in the caller's transaction (committed with the action it records).

    The one way to write an audit entry, for an admin action as for a group-committed batch of
    deliveries: a driver-level insert in the session's transaction, the chain's tail read once
    per transaction under the lock. Returns the entry's hash.

    An entry about a patient (subject or actor ``patient:<id>``) is stored sealed
    (:mod:`gateway.store.audit_links`); it needs ``keys``, and is refused without them.
    """
    at, detail_text = _prepare(actor, action, subject_ref, peer, details, now)
    patient_id = audit_links.patient_of(actor, subject_ref)
    if patient_id is not None:
        if keys is None:
            raise ValueError(f"audit entry {action!r} about a patient: pass keys= (it is stored sealed)")
        return _record_sealed(session, keys, patient_id, at, actor, action, subject_ref, peer, detail_text)
    prev = _lock_and_tail(session)
    digest = entry_hash(prev, at, actor, action, subject_ref, peer, detail_text)
    _APPEND.execute(session, at, actor, action, subject_ref, peer, detail_text, prev, digest)
    _remember_tail(session, digest)
    return digest


def _record_sealed(session: Session, keys: KeyService, patient_id: int, at: datetime, actor: str, action: str,
                   subject_ref: str | None, peer: str | None, detail_text: str) -> str:
    s = audit_links.seal(session, keys, patient_id, actor=actor, subject_ref=subject_ref, peer=peer,
                         details=detail_text)
    prev = _lock_and_tail(session)
    digest = hashlib.sha256(prev.encode("ascii"))
    digest.update(audit_links.canonical(at, s.actor, action, s.subject_ref, s.peer, s.details, s.sealed,
                                        s.data_key_id))
    value = digest.hexdigest()
    _APPEND_SEALED.execute(session, at, s.actor, action, s.subject_ref, s.peer, s.details, prev, value,
                           audit_links.FORM, s.sealed, s.data_key_id, s.index, s.index_version)
    _remember_tail(session, value)
    return value


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    entries: int
    first_bad_id: int | None = None
    problem: str | None = None
    start_id: int | None = None  # the first remaining entry
    checkpoints: int = 0  # retention checkpoints (pruned batches)
    pruned: int = 0  # entries pruned behind them
    pruned_until: datetime | None = None  # the last pruned entry's time
    prune_pending: bool = False  # a prune is under way
    bad_checkpoint: int | None = None


PRUNED_ACTION = "audit.pruned"  # the entry a prune appends, naming its checkpoint


def _pruned_entry_problem(row: AuditEntry, checkpoints: dict[int, AuditCheckpoint]) -> str | None:
    """An ``audit.pruned`` entry must name a done checkpoint with the same chain end and file."""
    try:
        details = json.loads(row.details)
        ck = checkpoints.get(int(details["checkpoint"]))
    except (ValueError, KeyError, TypeError):
        return "prune entry names no checkpoint"
    if ck is None:
        return "prune entry names a checkpoint that does not exist"
    if (details.get("last_hash"), details.get("export_sha256")) != (ck.last_hash, ck.export_sha256):
        return f"prune entry does not match checkpoint #{ck.id}"
    return None


def _broken(base: ChainReport, count: int, row_id: int, problem: str) -> ChainReport:
    return replace(base, ok=False, entries=count, first_bad_id=row_id, problem=problem)


def verify(session: Session, *, batch: int = 5000) -> ChainReport:
    """Check the retention checkpoints, then walk the remaining trail in id order from their anchor."""
    start = anchor(session)
    base = ChainReport(True, 0, checkpoints=start.checkpoints, pruned=start.pruned,
                       pruned_until=start.pruned_until, prune_pending=start.pending)
    if not start.ok:
        return replace(base, ok=False, problem=start.problem, bad_checkpoint=start.bad_checkpoint)
    checkpoints = {ck.id: ck for ck in session.execute(select(AuditCheckpoint)).scalars()}
    prev = start.prev_hash
    count = 0
    last_id = 0
    first_id: int | None = None
    converted = audit_links.ConvertedCheck.load(session)  # converted entries are never pruned (ChainWalk)
    while True:
        rows = session.execute(
            select(AuditEntry).where(AuditEntry.id > last_id).order_by(AuditEntry.id).limit(batch)
        ).scalars().all()
        if not rows:
            uncommitted = converted.first_uncommitted()
            if uncommitted is not None:
                return _broken(base, count, uncommitted, "converted entry not committed by a conversion entry")
            return replace(base, entries=count, start_id=first_id)
        for row in rows:
            if first_id is None:
                first_id = row.id
                if row.id <= start.after_id:
                    return _broken(base, count, row.id, "entry inside a pruned range")
            if row.prev_hash != prev:
                return _broken(base, count, row.id, "entry does not follow the previous one")
            if row.hash_form == audit_links.CONVERTED_FORM:
                if not converted.see(row):
                    return _broken(base, count, row.id, "a converted entry up to this one was modified "
                                   "(they no longer match their conversion entry)")
            elif row_hash(prev, row) != row.hash:
                return _broken(base, count, row.id, "entry was modified")
            problem = _pruned_entry_problem(row, checkpoints) if row.action == PRUNED_ACTION else None
            if problem is not None:
                return _broken(base, count, row.id, problem)
            prev = row.hash
            count += 1
            last_id = row.id
        session.expunge_all()
