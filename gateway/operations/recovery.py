"""Account recovery (issue 14): issue a new activation code for a patient space.

The one operation behind ``gateway patient new-code``, the mediator's and the admin's console
and API, and the patient's own "Mot de passe oublié" page. A new code replaces the previous
one; the space's lifecycle state does not change (a provisioned space stays provisioned until
activation opens it; an opposed, closed or purged space gets no code). Using the code on the
activation pages lets the patient set a new password and a new TOTP secret, and ends every
web session; the password in place keeps working until then, so a code nobody asked for
locks nobody out.

The code is shown once to the caller, or sent to the personal address on file (content-free
apart from the code: ``gateway.outbound.notify.build_code_mail``). Every issue is audited
with the patient as subject, so the patient's access history shows it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.accounts.patients import by_ins, hash_activation_code, new_activation_code, patient_ins
from gateway.outbound.notify import queue_code_mail
from gateway.settings import Settings
from gateway.store import audit
from gateway.store.db import Database
from gateway.store.keys import KeyService
from gateway.store.models import Patient

ISSUABLE = ("provisioned", "open")
Delivery = Literal["show", "mail"]


class CodeRefused(Exception):
    """No code for this space; ``reason`` is ``state`` or ``no_email``, the text is for operators."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class IssuedCode:
    patient_id: int
    state: str
    expires_at: datetime
    code: str | None  # to show once; None when it was mailed
    mailed: bool


def validity(patient: Patient, settings: Settings) -> timedelta:
    """A provisioned space gets an activation code's usual life; an open one a short recovery life."""
    cfg = settings.patients
    if patient.state == "provisioned":
        return timedelta(days=cfg.activation_code_validity_days)
    return timedelta(hours=cfg.recovery_code_validity_hours)


def french_time(value: datetime) -> str:
    """The end of validity as French patients read it (Paris time)."""
    try:
        return value.astimezone(ZoneInfo("Europe/Paris")).strftime("%d/%m/%Y à %H:%M (heure de Paris)")
    except (ZoneInfoNotFoundError, ValueError):
        return value.astimezone(UTC).strftime("%d/%m/%Y à %H:%M UTC")


def issue_code(session: Session, keys: KeyService, patient: Patient, settings: Settings, *, delivery: Delivery,
               actor: str, via: str, peer: str | None, now: datetime) -> IssuedCode:
    """Replace the space's activation code, in the caller's transaction (audited there too).

    Raises :class:`CodeRefused` (nothing changed) for a space in another state than provisioned
    or open, or when ``delivery="mail"`` and no personal address is on file.
    """
    if patient.state not in ISSUABLE or patient.mailbox_id is None:
        raise CodeRefused("state", f"the space is {patient.state}: no activation code can be issued")
    if delivery == "mail" and patient.email_sealed is None:
        raise CodeRefused("no_email", "no personal e-mail address is on file for this space")
    code = new_activation_code()
    expires = now + validity(patient, settings)
    if delivery == "mail":
        entry = queue_code_mail(session, keys, patient, code, valid_until=french_time(expires),
                                hostname=settings.server.hostname, now=now,
                                max_age=timedelta(hours=settings.queue.max_age_hours))
        if entry is None:
            raise CodeRefused("no_email", "the personal e-mail address on file is unusable")
    ins = patient_ins(session, keys, patient)
    if ins is None:
        raise CodeRefused("state", "the space's INS cannot be opened (keys shredded?)")
    patient.activation_code_hash = hash_activation_code(ins, code)
    patient.activation_expires_at = expires
    audit.record(session, actor=actor, action="patient.new_code", subject_ref=f"patient:{patient.id}", peer=peer,
                 now=now, details={"via": via, "delivery": delivery, "state": patient.state}, keys=keys)
    return IssuedCode(patient.id, patient.state, expires, None if delivery == "mail" else code, delivery == "mail")


def self_service(db: Database, keys: KeyService, settings: Settings, ins: str, *, peer: str | None,
                 now: datetime) -> str:
    """The patient's "Mot de passe oublié" request: mail a new code when the space has an address.

    Returns what happened (``mailed``, ``unknown``, ``state``, ``no_email``, ``too_soon``) for
    tests and logs only: the page answers the same whatever it is. An unknown INS leaves no
    trace; any other outcome is in the patient's access history.
    """
    interval = timedelta(minutes=settings.patients.recovery_mail_interval_minutes)
    with db.write() as session:
        found = by_ins(session, keys, ins)
        if found is None:
            return "unknown"
        patient = session.execute(select(Patient).where(Patient.mailbox_id == found.mailbox_id,
                                                        Patient.id == found.id).with_for_update()
                                  .execution_options(populate_existing=True)).scalar_one()
        outcome = "mailed"
        if patient.code_mailed_at is not None and now - patient.code_mailed_at < interval:
            outcome = "too_soon"
        else:
            try:
                issue_code(session, keys, patient, settings, delivery="mail", actor="anonymous", via="self",
                           peer=peer, now=now)
            except CodeRefused as exc:
                outcome = exc.reason
        if outcome != "mailed":
            audit.record(session, actor="anonymous", action="patient.recovery_refused",
                         subject_ref=f"patient:{patient.id}", peer=peer, now=now, details={"reason": outcome},
                         keys=keys)
        return outcome
