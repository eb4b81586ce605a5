"""Patient spaces: provisioning, activation codes, lifecycle states (SPEC §5)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from gateway.accounts import ins_index
from gateway.mailstore.folders import PATIENT_FOLDERS, create_standard_folders
from gateway.store.keys import KeyService
from gateway.store.models import Patient

STATES = ("provisioned", "open", "opposed", "closed", "purged")
# Activation codes: 12 characters of an unambiguous 32-letter alphabet = 60 bits.
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 12


class PatientExists(Exception):
    pass


def new_activation_code() -> str:
    raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
    return "-".join(raw[i:i + 4] for i in range(0, CODE_LENGTH, 4))


def normalise_code(code: str) -> str:
    return "".join(c for c in code.upper() if c in CODE_ALPHABET)


def hash_activation_code(ins: str, code: str) -> str:
    """SHA-256 over INS and code. The code has 60 bits of entropy, so a fast hash resists
    brute force while letting millions of spaces be provisioned in minutes (argon2 would
    take days at national scale)."""
    digest = hashlib.sha256(f"hmg-activation-v1|{ins}|{normalise_code(code)}".encode()).hexdigest()
    return "sha256$" + digest


def check_activation_code(patient: Patient, code: str, now: datetime, *, ins: str) -> bool:
    """Whether ``code`` is the patient's current activation code; ``ins`` is the (normalised)
    INS the patient was found by (the database holds it only sealed)."""
    if not patient.activation_code_hash or patient.activation_expires_at is None:
        return False
    if now >= patient.activation_expires_at:
        return False
    return hmac.compare_digest(patient.activation_code_hash, hash_activation_code(ins, code))


@dataclass(frozen=True)
class Provisioned:
    patient: Patient
    activation_code: str


def provision(
    session: Session,
    keys: KeyService,
    ins: str,
    *,
    email: str | None,
    now: datetime,
    opposition_window: timedelta,
    code_validity: timedelta,
    open_now: bool = False,
) -> Provisioned:
    """Create a patient space (mailbox, data key, folders) with a fresh activation code; the INS
    is stored as its keyed index and sealed under the new data key (issue 20)."""
    if by_ins(session, keys, ins) is not None:
        raise PatientExists("a space already exists for this INS")
    index, version = keys.index_version(session)
    mk = keys.create_mailbox(session, "patient", now=now)
    create_standard_folders(session, mk.mailbox_id, PATIENT_FOLDERS, now=now)
    code = new_activation_code()
    (patient_id,) = ins_index.reserve_ids(session, "patients", 1)
    patient = Patient(
        id=patient_id, ins=ins_index.placeholder(patient_id), mailbox_id=mk.mailbox_id,
        state="open" if open_now else "provisioned",
        provisioned_at=now, opposition_deadline=now + opposition_window,
        opened_at=now if open_now else None,
        activation_code_hash=hash_activation_code(ins, code), activation_expires_at=now + code_validity,
        email_sealed=mk.seal("email", "patient", email.encode()) if email else None,
        notifications_enabled=bool(email),
    )
    ins_index.fill(patient, index, version, mk, ins)
    session.add(patient)
    ins_index.enter(session, patient)
    session.flush()
    return Provisioned(patient, code)


def by_ins(session: Session, keys: KeyService, ins: str) -> Patient | None:
    """The patient with this normalised INS, through its keyed index (:mod:`gateway.accounts.ins_index`)."""
    return ins_index.find(session, keys, ins)


def patient_ins(session: Session, keys: KeyService, patient: Patient) -> str | None:
    """The patient's INS in clear, opened from the sealed copy (None once purged)."""
    return ins_index.open_ins(session, keys, patient)


def by_key(session: Session, mailbox_id: int, patient_id: int) -> Patient | None:
    """By the row's key ``(mailbox_id, id)`` (a web session carries both): one shard on a
    distributed store (``patients`` is distributed by ``mailbox_id``)."""
    return session.execute(select(Patient).where(Patient.mailbox_id == mailbox_id, Patient.id == patient_id)
                           ).scalar_one_or_none()


def claim_totp_step(session: Session, mailbox_id: int, patient_id: int, step: int) -> bool:
    """Record ``step`` as the patient's last accepted TOTP time step, unless it (or a later
    one) was used already (RFC 6238 §5.2); ``True`` when claimed."""
    result = session.execute(
        update(Patient).where(Patient.mailbox_id == mailbox_id, Patient.id == patient_id,
                              or_(Patient.totp_last_step.is_(None), Patient.totp_last_step < step))
        .values(totp_last_step=step))
    return bool(getattr(result, "rowcount", 0) == 1)


def forget_totp_step(session: Session, mailbox_id: int, patient_id: int) -> None:
    session.execute(update(Patient).where(Patient.mailbox_id == mailbox_id, Patient.id == patient_id)
                    .values(totp_last_step=None))


def personal_email(session: Session, keys: KeyService, patient: Patient) -> str | None:
    if patient.email_sealed is None or patient.mailbox_id is None:
        return None
    mk = keys.for_mailbox(session, patient.mailbox_id)
    return mk.open("email", "patient", patient.email_sealed).decode()


def set_state(patient: Patient, state: str, now: datetime) -> None:
    if state not in STATES:
        raise ValueError(state)
    patient.state = state
    if state == "open":
        patient.opened_at = now
    elif state == "opposed":
        patient.opposed_at = now
    elif state == "closed":
        patient.closed_at = now
