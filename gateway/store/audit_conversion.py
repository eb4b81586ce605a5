"""Sealing the patient links of audit entries written before migration 0015, while serving (issue 20).

An entry of an older release about a patient (subject or actor ``patient:<id>``, form 1) holds
the link in clear, and its hash covers that clear content. Re-hashing it would rewrite the
whole chain after it; keeping its clear content would keep the link. So each batch
(:func:`convert_batch`, one short write transaction):

1. reads the next entries in clear about a patient, in id order, after the last converted one;
2. checks each one's original hash (a trail that does not verify is not converted: sealing
   would hide what was changed);
3. stores it as an entry of form 3: the patient reference, correspondent, peer and details
   sealed under the patient's data key (none when the space was purged: its keys are gone),
   the keyed index, and the original ``prev_hash`` and ``hash`` kept, so the chain's links
   stay as they were;
4. appends a conversion entry (``audit.links.sealed``) to the chain, committing the running
   digest over every converted entry so far (:func:`audit_links.converted_digest`).

``audit verify`` then checks a converted entry against that committed digest instead of its
original hash (:class:`audit_links.ConvertedCheck`): changing a converted entry, or a
conversion entry, breaks the trail as any other change does.

:func:`reindex_batch` moves the entries' keyed index to a new index key version (rotation).

Every entry written before migration 0015 is in the system partition (migration 0018 put the
whole older trail there; issue 23), and so is every conversion entry (it has no subject):
each statement here names partition 0, except the re-indexing, a sweep of every partition by
index value (a bounded job on distribution.py's allow-list).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, Update, and_, func, or_, select, text, update
from sqlalchemy.orm import Session

from crypto.blind_index import IndexKeyring
from gateway.store import audit, audit_links
from gateway.store.db import Database
from gateway.store.keys import KeyService
from gateway.store.models import AuditEntry, Patient
from gateway.store.partitions import SYSTEM_PARTITION
from gateway.store.raw import dialect_name

DEFAULT_BATCH = 500
CONVERT_LOCK_ID = 0x4155444953  # "AUDIS": one converter at a time (SQLite: BEGIN IMMEDIATE does it)


class ConversionRefused(Exception):
    """The trail does not verify at an entry to convert: nothing was changed."""

    def __init__(self, entry_id: int) -> None:
        super().__init__(f"audit entry #{entry_id} does not match its hash: run 'gateway audit verify'; "
                         "nothing was converted")
        self.entry_id = entry_id


@dataclass
class Converted:
    done: int = 0
    shredded: int = 0
    """Entries about a purged space: sealed part absent (its keys are gone), index kept."""
    last_id: int | None = None
    batches: int = 0
    seconds: float = 0.0
    refused: list[int] = field(default_factory=list)


def _serialise(session: Session) -> None:
    if dialect_name(session) == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": CONVERT_LOCK_ID})


def _about_patient_in_clear() -> ColumnElement[bool]:
    return and_(AuditEntry.partition == SYSTEM_PARTITION,
                or_(AuditEntry.subject_ref.like("patient:%"), AuditEntry.actor.like("patient:%")))


def _last_commit(session: Session) -> tuple[int, str]:
    """The last converted id and the running digest, from the newest conversion entry."""
    details = session.execute(select(AuditEntry.details).where(AuditEntry.partition == SYSTEM_PARTITION,
                                                               AuditEntry.action == audit_links.CONVERSION_ACTION)
                              .order_by(AuditEntry.id.desc()).limit(1)).scalar()
    if details is None:
        return 0, "0" * 64
    found = json.loads(details)
    return int(found["last_id"]), str(found["digest"])


def pending(session: Session) -> int:
    """Entries about a patient still in clear (form 1)."""
    return int(session.execute(select(func.count()).select_from(AuditEntry).where(
        AuditEntry.hash_form.is_(None), _about_patient_in_clear())).scalar_one())


def convert_batch(db: Database, keys: KeyService, *, actor: str, limit: int = DEFAULT_BATCH) -> Converted:
    """Convert up to ``limit`` entries in one write transaction; ``last_id`` None: nothing left."""
    out = Converted()
    with db.write() as session:
        _serialise(session)
        after, link = _last_commit(session)
        rows = list(session.execute(select(AuditEntry).where(
            AuditEntry.id > after, AuditEntry.hash_form.is_(None), _about_patient_in_clear())
            .order_by(AuditEntry.id).limit(limit)).scalars())
        if not rows:
            return out
        for row in rows:
            if audit.row_hash(row.prev_hash, row) != row.hash:
                raise ConversionRefused(row.id)
            patient_id = audit_links.patient_of(row.actor, row.subject_ref)
            assert patient_id is not None
            s = audit_links.seal(session, keys, patient_id, actor=row.actor, subject_ref=row.subject_ref,
                                 peer=row.peer, details=row.details)
            result = session.execute(update(AuditEntry).where(AuditEntry.partition == row.partition,
                                                              AuditEntry.id == row.id, AuditEntry.hash_form.is_(None))
                                     .values(actor=s.actor, subject_ref=s.subject_ref, peer=s.peer, details=s.details,
                                             hash_form=audit_links.CONVERTED_FORM, patient_sealed=s.sealed,
                                             patient_data_key_id=s.data_key_id, patient_index=s.index,
                                             patient_index_version=s.index_version)
                                     .execution_options(synchronize_session=False))
            assert result.rowcount == 1  # type: ignore[attr-defined]  # the lock: nobody else converts
            session.refresh(row)
            link = audit_links.converted_digest(link, row)
            out.done += 1
            out.shredded += s.sealed is None
        out.last_id = rows[-1].id
        audit.record(session, actor=actor, action=audit_links.CONVERSION_ACTION,
                     details={"first_id": rows[0].id, "last_id": out.last_id, "rows": out.done,
                              "shredded": out.shredded, "digest": link})
    out.batches = 1
    return out


def convert_all(db: Database, keys: KeyService, *, actor: str, limit: int = DEFAULT_BATCH,
                pause: float = 0.0) -> Converted:
    """Batches until nothing is left (``pause`` seconds between them, to leave room to the traffic)."""
    total = Converted()
    started = time.perf_counter()
    while True:
        batch = convert_batch(db, keys, actor=actor, limit=limit)
        if batch.last_id is None:
            break
        total.done += batch.done
        total.shredded += batch.shredded
        total.last_id = batch.last_id
        total.batches += 1
        if pause:
            time.sleep(pause)
    total.seconds = time.perf_counter() - started
    return total


def reindex_batch(db: Database, index: IndexKeyring, *, source: int, target: int, after_patient: int,
                  limit: int = DEFAULT_BATCH) -> tuple[int, int | None]:
    """An index key rotation: move the audit entries of ``limit`` patients (ids after
    ``after_patient``) from index version ``source`` to ``target``. The index is computed from the
    patient id, so purged spaces move too. Returns (entries moved, last patient id or None: done).
    The index is outside the entries' hashes: the trail still verifies."""
    with db.read() as session:
        ids = list(session.execute(select(Patient.id).where(Patient.id > after_patient)
                                   .order_by(Patient.id).limit(limit)).scalars())
    if not ids:
        return 0, None
    moved = 0
    with db.write() as session:
        for patient_id in ids:
            moved += _reindex(session, index, patient_id, source, target)
    return moved, ids[-1]


def _reindex(session: Session, index: IndexKeyring, patient_id: int, source: int, target: int) -> int:
    """One patient's entries from index version ``source`` to ``target``, on the partitions they
    can lie in (entries never change partition: it was fixed when each was written), or on every
    partition when those cannot be named (an index key version was retired; distribution.py's
    allow-list)."""
    statement = (update(AuditEntry)
                 .where(AuditEntry.patient_index == audit_links.index_of(index, patient_id, source),
                        AuditEntry.patient_index_version == source)
                 .values(patient_index=audit_links.index_of(index, patient_id, target), patient_index_version=target)
                 .execution_options(synchronize_session=False))
    partitions = audit_links.partitions_about(index, patient_id)
    if partitions is None:
        return _reindex_everywhere(session, statement)
    return int(session.execute(statement.where(AuditEntry.partition.in_(partitions))).rowcount)  # type: ignore[attr-defined]


def _reindex_everywhere(session: Session, statement: Update) -> int:
    return int(session.execute(statement).rowcount)  # type: ignore[attr-defined]
