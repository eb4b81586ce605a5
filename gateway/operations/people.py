"""Professional accounts (list, add) and patient spaces (lookup by INS, provision).

Show, disable/enable, password and removal of an account: :mod:`gateway.operations.pros`.

A patient lookup returns the space's state, dates and access history (audit entries
about it), never message content nor the personal e-mail; the lookup itself is audited.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.accounts.patients import PatientExists, by_ins, provision
from gateway.accounts.pros import AlreadyExists, add_pro, hosted_domain
from gateway.operations.common import Actor, bad_request, conflict, flag, iso, not_found, text
from gateway.operations.patients import ins_value
from gateway.operations.pros import STATUSES, check_new_password, mailbox_type, pro_address, pro_row
from gateway.settings import Settings
from gateway.store import audit, audit_links
from gateway.store.keys import KeyService
from gateway.store.models import Patient, ProAccount
from routing.address import InvalidAddress, parse_address
from routing.ins import mask_ins

PRO_STATUSES = STATUSES
HISTORY_LIMIT = 200


def list_pros(session: Session, *, status: str | None = None) -> list[dict[str, Any]]:
    query = select(ProAccount).order_by(ProAccount.address)
    if status is not None:
        if status not in PRO_STATUSES:
            raise bad_request("statut : active ou disabled")
        query = query.where(ProAccount.status == status)
    return [pro_row(p) for p in session.execute(query).scalars()]


def add_professional(session: Session, keys: KeyService, actor: Actor, data: dict[str, Any], *,
                     now: datetime) -> dict[str, Any]:
    address = pro_address(data.get("address"))
    given = data.get("password")
    password = None if given is None or given == "" else check_new_password(given)
    accepts = flag(data.get("accepts_patient_initiated"), "accepts_patient_initiated")
    kind = mailbox_type(data.get("type"))
    domain = hosted_domain(session, address.rpartition("@")[2])
    if domain is None:
        domain_name = address.rpartition("@")[2]
        raise bad_request(f"{domain_name} n'est pas un domaine hébergé ici", "not_hosted",
                          f"{domain_name} is not a hosted domain (add it with 'gateway domain hosted add "
                          f"{domain_name}')")
    try:
        account = add_pro(session, keys, address, domain, name=text(data.get("name"), "nom", max_length=200),
                          password=password, accepts_patient_initiated=accepts, mailbox_type=kind, now=now)
    except AlreadyExists as exc:
        raise conflict(str(exc)) from None
    audit.record(session, actor=actor.audit_actor, action="pro.add", subject_ref=f"pro:{address}",
                 peer=actor.peer, now=now,
                 details={"accepts_patient_initiated": accepts, "type": kind, "via": actor.via})
    return pro_row(account)


def _patient_info(patient: Patient, ins: str, patient_domain: str) -> dict[str, Any]:
    """``ins``: the INS the patient was found (or provisioned) by: the row holds it only sealed."""
    return {"ins": ins, "address": f"{ins}@{patient_domain}", "state": patient.state,
            "provisioned_at": iso(patient.provisioned_at), "opposition_deadline": iso(patient.opposition_deadline),
            "opened_at": iso(patient.opened_at), "activated_at": iso(patient.activated_at),
            "opposed_at": iso(patient.opposed_at), "closed_at": iso(patient.closed_at),
            "purge_after": iso(patient.purge_after), "purged_at": iso(patient.purged_at),
            "deletion_requested_at": iso(patient.deletion_requested_at),
            "activation_code_valid": patient.activation_code_hash is not None,
            "activation_expires_at": iso(patient.activation_expires_at),
            "personal_email_set": patient.email_sealed is not None,
            "notifications_enabled": patient.notifications_enabled, "last_login_at": iso(patient.last_login_at)}


def history(session: Session, keys: KeyService, patient_id: int, mailbox_id: int | None = None
            ) -> list[dict[str, Any]]:
    """The newest entries about the patient, their sealed parts opened, or marked ``shredded``
    once the space is purged (issue 20)."""
    rows, _ = audit_links.entries_about(session, keys, patient_id, mailbox_id=mailbox_id, subject_only=True,
                                        keep_shredded=True, limit=HISTORY_LIMIT)
    return [{"id": r.id, "at": iso(r.at), "actor": o.actor, "action": r.action, "peer": o.peer,
             "shredded": o.shredded} for r, o in rows]


def lookup(session: Session, keys: KeyService, actor: Actor, ins_text: Any, settings: Settings, *,
           now: datetime) -> dict[str, Any]:
    ins = ins_value(ins_text)
    patient = by_ins(session, keys, ins)
    if patient is None:
        raise not_found(f"aucun espace patient pour l'INS {mask_ins(ins)}",
                        f"no patient space for the INS {mask_ins(ins)}")
    info = _patient_info(patient, ins, settings.domains.patient_domain)
    info["history"] = history(session, keys, patient.id, patient.mailbox_id)
    audit.record(session, actor=actor.audit_actor, action="admin.patient.lookup", subject_ref=f"patient:{patient.id}",
                 peer=actor.peer, now=now, details={"via": actor.via}, keys=keys)
    return info


def provision_patient(session: Session, keys: KeyService, actor: Actor, data: dict[str, Any], settings: Settings, *,
                      now: datetime) -> dict[str, Any]:
    ins = ins_value(data.get("ins"))
    email = text(data.get("email"), "e-mail", max_length=320)
    if email is not None:
        try:
            email = str(parse_address(email))
        except (InvalidAddress, UnicodeError, ValueError):
            raise bad_request("e-mail : adresse invalide", en=f"invalid e-mail address {email!r}") from None
    open_now = flag(data.get("open"), "open")
    cfg = settings.patients
    try:
        done = provision(session, keys, ins, email=email, now=now,
                         opposition_window=timedelta(days=cfg.opposition_window_days),
                         code_validity=timedelta(days=cfg.activation_code_validity_days), open_now=open_now)
    except PatientExists:
        raise conflict(f"un espace existe déjà pour l'INS {mask_ins(ins)}",
                       f"a patient space already exists for the INS {mask_ins(ins)}") from None
    audit.record(session, actor=actor.audit_actor, action="patient.provision",
                 subject_ref=f"patient:{done.patient.id}", peer=actor.peer, now=now,
                 details={"open": open_now, "via": actor.via}, keys=keys)
    info = _patient_info(done.patient, ins, settings.domains.patient_domain)
    return {**info, "activation_code": done.activation_code}
