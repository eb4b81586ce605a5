"""Patient spaces seen by an admin: list (streamed), close, deletion on request (SPEC §5).

- *list*: keyset pages over the primary key, each read in its own short transaction
  (millions of rows never sit in memory nor in one long transaction). The INS is
  masked unless the caller asks for it in full; the listing itself is audited once
  (``patient.list``: filter, whether the INS was shown in full), before the first row.
- *close* (on the patient's behalf): as when the patient closes it from "Mon espace":
  no more mail, data kept archived (encrypted) for ``archive_retention_days`` (10 years),
  then purged by the ``closed-spaces`` job. Web sessions end; the activation code goes.
- *deletion on request*: the request is recorded and the space closed; the
  ``deletion-requests`` job purges it at its next run (SPEC: within 3 months), or at once
  with ``purge_now`` (:func:`gateway.accounts.purge.purge_patient`: data keys shredded, rows deleted).
Both write ``patient.close`` / ``patient.deletion_requested`` under the patient's
reference, so the patient's access history shows them.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.accounts import ins_index, web_sessions
from gateway.accounts.patients import STATES, by_ins, set_state
from gateway.accounts.purge import purge_patient
from gateway.operations.common import Actor, bad_request, conflict, iso, not_found, text
from gateway.store import audit
from gateway.store.db import Database
from gateway.store.keys import KeyService
from gateway.store.models import Patient
from routing.ins import InvalidINS, mask_ins, normalise_ins

PAGE = 1000
_LISTED = (Patient.id, Patient.ins, Patient.ins_sealed, Patient.mailbox_id, Patient.state, Patient.provisioned_at,
           Patient.opened_at, Patient.activated_at, Patient.closed_at, Patient.purge_after,
           Patient.deletion_requested_at,
           Patient.purged_at)


def ins_value(value: Any) -> str:
    raw = text(value, "INS", required=True, max_length=40)
    assert raw is not None
    try:
        return normalise_ins(raw)
    except (InvalidINS, ValueError) as exc:
        raise bad_request("INS invalide (15 caractères, clé de contrôle)", "invalid_ins", str(exc)) from None


def patient_by_ins(session: Session, keys: KeyService, value: Any) -> Patient:
    ins = ins_value(value)
    patient = by_ins(session, keys, ins)
    if patient is None:
        raise not_found(f"aucun espace patient pour l'INS {mask_ins(ins)}", f"no patient space for INS {mask_ins(ins)}")
    return patient


def iter_patients(db: Database, keys: KeyService, actor: Actor, *, state: str | None = None, after_id: int = 0,
                  limit: int | None = None, full_ins: bool = False, now: datetime) -> Iterator[dict[str, Any]]:
    """Spaces in id order after ``after_id``, at most ``limit``; audited once before the first row."""
    if state is not None and state not in STATES:
        raise bad_request("état : " + ", ".join(STATES), en="state: one of " + ", ".join(STATES))
    if limit is not None and limit < 1:
        raise bad_request("limite : 1 au moins", en="limit: at least 1")
    with db.write() as session:
        audit.record(session, actor=actor.audit_actor, action="patient.list", peer=actor.peer, now=now,
                     details={"state": state, "after_id": after_id, "limit": limit, "full_ins": full_ins,
                              "via": actor.via})
    return _pages(db, keys, state, after_id, limit, full_ins)


def _pages(db: Database, keys: KeyService, state: str | None, after_id: int, limit: int | None,
           full_ins: bool) -> Iterator[dict[str, Any]]:
    left = limit
    while left is None or left > 0:
        size = PAGE if left is None else min(PAGE, left)
        query = select(*_LISTED).where(Patient.id > after_id).order_by(Patient.id).limit(size)
        if state is not None:
            query = query.where(Patient.state == state)
        with db.read() as session:
            rows = session.execute(query).all()
            opened = ins_index.open_many(session, keys, [(r.id, r.ins, r.ins_sealed, r.mailbox_id) for r in rows])
        for r in rows:
            ins = opened.get(r.id)
            shown = ins_index.UNKNOWN_INS if ins is None else ins if full_ins else mask_ins(ins)
            yield {"id": r.id, "ins": shown, "state": r.state,
                   "provisioned_at": iso(r.provisioned_at), "opened_at": iso(r.opened_at),
                   "activated": r.activated_at is not None, "closed_at": iso(r.closed_at),
                   "purge_after": iso(r.purge_after), "deletion_requested_at": iso(r.deletion_requested_at),
                   "purged_at": iso(r.purged_at)}
        if len(rows) < size:
            return
        after_id = rows[-1].id
        if left is not None:
            left -= len(rows)


def _summary(p: Patient, ins: str) -> dict[str, Any]:
    return {"id": p.id, "ins": mask_ins(ins), "state": p.state, "closed_at": iso(p.closed_at),
            "purge_after": iso(p.purge_after), "deletion_requested_at": iso(p.deletion_requested_at),
            "purged_at": iso(p.purged_at)}


def _end_use(session: Session, patient: Patient, now: datetime, retention: timedelta) -> None:
    """Closed: no more mail, no login, no activation; archived until ``now + retention``."""
    if patient.state in ("provisioned", "open"):
        set_state(patient, "closed", now)
        patient.purge_after = now + retention
    patient.activation_code_hash = None
    web_sessions.destroy_all(session, patient.id)


def close(session: Session, keys: KeyService, actor: Actor, ins: Any, *, retention_days: int,
          now: datetime) -> dict[str, Any]:
    patient = patient_by_ins(session, keys, ins)
    if patient.state not in ("provisioned", "open"):
        raise conflict(f"espace déjà {patient.state}", f"the space is {patient.state}: only a provisioned or "
                       "open space can be closed")
    _end_use(session, patient, now, timedelta(days=retention_days))
    audit.record(session, actor=actor.audit_actor, action="patient.close", subject_ref=f"patient:{patient.id}",
                 peer=actor.peer, now=now, details={"via": actor.via}, keys=keys)
    return _summary(patient, ins_value(ins))


def request_deletion(session: Session, keys: KeyService, actor: Actor, ins: Any, *, retention_days: int,
                     now: datetime, purge_now: bool = False) -> dict[str, Any]:
    """Record the request (and close the space); with ``purge_now``, purge it in this transaction."""
    patient = patient_by_ins(session, keys, ins)
    if patient.state == "purged":
        raise conflict("espace déjà purgé", "the space is already purged")
    if patient.deletion_requested_at is not None and not purge_now:
        raise conflict("suppression déjà demandée", "deletion already requested on "
                       f"{patient.deletion_requested_at:%Y-%m-%d}; the deletion-requests job purges it")
    if patient.deletion_requested_at is None:
        patient.deletion_requested_at = now
        _end_use(session, patient, now, timedelta(days=retention_days))
        audit.record(session, actor=actor.audit_actor, action="patient.deletion_requested",
                     subject_ref=f"patient:{patient.id}", peer=actor.peer, now=now, details={"via": actor.via},
                     keys=keys)
    result = {**_summary(patient, ins_value(ins)), "messages_deleted": None}
    if purge_now:
        deleted = purge_patient(session, keys, patient, now)
        audit.record(session, actor=actor.audit_actor, action="patient.purge", subject_ref=f"patient:{patient.id}",
                     peer=actor.peer, now=now, details={"messages": deleted, "via": actor.via}, keys=keys)
        result = {**_summary(patient, ins_value(ins)), "messages_deleted": deleted}
    return result
