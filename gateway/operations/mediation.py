"""Helping a patient get in (issue 14): look a space up by INS, see its state, issue a new code.

What mediators (and administrators) may do from the console and the API. The view of a space
holds its state and whether a code and a personal address exist, nothing else: never a
message, subject, correspondent, the access history or the address itself. Each lookup and
each new code is audited with the patient as subject (actor ``mediator:<name>`` or
``admin:<name>``), so the patient's access history shows it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from gateway.accounts.patients import by_ins
from gateway.operations.common import Actor, OpError, flag, iso, not_found
from gateway.operations.patients import ins_value
from gateway.operations.recovery import ISSUABLE, CodeRefused, french_time, issue_code
from gateway.settings import Settings
from gateway.store import audit
from gateway.store.keys import KeyService
from gateway.store.models import Patient
from routing.ins import mask_ins

STATE_LABELS = {
    "provisioned": "en attente d'activation",
    "open": "ouvert",
    "opposed": "opposition enregistrée (pas de messagerie)",
    "closed": "fermé par le patient",
    "purged": "supprimé",
}


def view(patient: Patient, ins: str, *, now: datetime) -> dict[str, Any]:
    """The part of a space a mediator may see (``ins``: the INS it was found by)."""
    expires = patient.activation_expires_at
    code_valid = patient.activation_code_hash is not None and expires is not None and now < expires
    return {
        "ins": ins, "ins_masked": mask_ins(ins), "state": patient.state,
        "state_label": STATE_LABELS.get(patient.state, patient.state),
        "activated": patient.activated_at is not None,
        "code_valid_until": iso(expires) if code_valid else None,
        "code_valid_until_text": french_time(expires) if code_valid and expires else None,
        "personal_email_on_file": patient.email_sealed is not None,
        "can_issue_code": patient.state in ISSUABLE,
    }


def _patient(session: Session, keys: KeyService, ins_text: Any) -> tuple[Patient, str]:
    ins = ins_value(ins_text)
    patient = by_ins(session, keys, ins)
    if patient is None:
        raise not_found(f"aucun espace patient pour l'INS {mask_ins(ins)}")
    return patient, ins


def lookup(session: Session, keys: KeyService, actor: Actor, ins_text: Any, *, now: datetime) -> dict[str, Any]:
    patient, ins = _patient(session, keys, ins_text)
    audit.record(session, actor=actor.audit_actor, action=f"{actor.role}.patient.lookup",
                 subject_ref=f"patient:{patient.id}", peer=actor.peer, now=now,
                 details={"via": actor.via, "scope": "state"}, keys=keys)
    return view(patient, ins, now=now)


def refusal_text(exc: CodeRefused, patient: Patient) -> str:
    if exc.reason == "no_email":
        return ("Aucune adresse personnelle utilisable n'est enregistrée pour cet espace : "
                "émettez le code à l'écran et remettez-le en main propre.")
    return (f"Cet espace est {STATE_LABELS.get(patient.state, patient.state)} : "
            "aucun code d'activation ne peut être émis.")


def new_code(session: Session, keys: KeyService, actor: Actor, data: dict[str, Any], settings: Settings, *,
             now: datetime) -> dict[str, Any]:
    """Issue a new activation code: shown once in the answer, or (``send``) mailed to the address on file."""
    send = flag(data.get("send"), "send")
    patient, ins = _patient(session, keys, data.get("ins"))
    try:
        issued = issue_code(session, keys, patient, settings, delivery="mail" if send else "show",
                            actor=actor.audit_actor, via=f"{actor.role}-{actor.via}", peer=actor.peer, now=now)
    except CodeRefused as exc:
        raise OpError(409, f"code_refused_{exc.reason}", refusal_text(exc, patient)) from None
    return {**view(patient, ins, now=now), "delivery": "mail" if issued.mailed else "show",
            "activation_code": issued.code, "expires_at": iso(issued.expires_at),
            "expires_at_text": french_time(issued.expires_at)}
