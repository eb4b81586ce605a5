"""A mailbox's quota (RFC 9208 STORAGE and MESSAGE; issue 18): show, set.

The mailbox is a professional's (their address) or a patient's (their INS, or the INS
address of the patient domain). Each limit is a number (0: no limit), ``default`` (back to
the configured ``[quota]`` default) or left as it is. Setting is audited (``quota.set``)
under the mailbox owner's reference, with the old and new values (numbers only).

Lowering a limit below the usage deletes nothing: the mailbox refuses new mail
(``452 4.2.2``, the sender retries) and IMAP APPEND/COPY (``NO [OVERQUOTA]``) until its
owner has made room.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from gateway.accounts.pros import pro_by_address
from gateway.mailstore import quota
from gateway.operations import patients, pros
from gateway.operations.common import Actor, bad_request, conflict, not_found, text
from gateway.store import audit
from gateway.store.keys import KeyService
from gateway.store.models import Mailbox
from routing.ins import InvalidINS, mask_ins, normalise_ins

MAX_LIMIT = 1 << 40  # KiB (1 PiB) or messages: the config's bound too


@dataclass(frozen=True)
class Owner:
    mailbox_id: int
    subject_ref: str  # audit reference: pro:<address>, patient:<id>
    shown: str  # the address, or the patient's INS masked


def owner(session: Session, keys: KeyService, who: Any) -> Owner:
    """The mailbox of a professional (their address) or of a patient (an INS, or its address
    on the patient domain: an address that is no professional's and whose local part is an INS)."""
    raw = text(who, "boîte", required=True, max_length=320)
    assert raw is not None
    local, at, _ = raw.rpartition("@")
    if at:
        address = pros.pro_address(raw)
        pro = pro_by_address(session, address)
        if pro is not None:
            return Owner(pro.mailbox_id, f"pro:{pro.address}", pro.address)
        try:
            normalise_ins(local)
        except (InvalidINS, ValueError):
            raise not_found("aucun compte professionnel à cette adresse",
                            f"no professional account {address}") from None
        raw = local
    ins = patients.ins_value(raw)
    patient = patients.patient_by_ins(session, keys, ins)
    if patient.mailbox_id is None:
        raise conflict("cet espace patient n'a pas (ou plus) de boîte", "this patient space has no mailbox")
    return Owner(patient.mailbox_id, f"patient:{patient.id}", mask_ins(ins))


def limit_value(value: Any, name: str) -> int | quota.Keep | None:
    """A limit as typed: absent (kept), ``default`` (None) or a whole number 0..2^40 (0: none)."""
    if value is None or value == "":
        return quota.KEEP
    if isinstance(value, str) and value.strip().lower() in ("default", "défaut"):
        return None
    if isinstance(value, bool):
        raise bad_request(f"{name} : nombre entier ou « default »", en=f"{name}: a whole number or 'default'")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise bad_request(f"{name} : nombre entier ou « default »",
                          en=f"{name}: a whole number or 'default'") from None
    if not 0 <= number <= MAX_LIMIT:
        raise bad_request(f"{name} : hors limites (0-{MAX_LIMIT})", en=f"{name}: out of range (0-{MAX_LIMIT})")
    return number


def _row(session: Session, found: Owner, defaults: quota.QuotaDefaults) -> dict[str, Any]:
    mailbox = session.get(Mailbox, found.mailbox_id)
    assert mailbox is not None
    current = quota.current(session, found.mailbox_id, defaults)
    lim, use = current.limits, current.usage
    return {
        "mailbox": found.shown,
        "storage_kib_used": use.kib, "storage_kib_limit": lim.storage_kib,
        "storage_kib_set": mailbox.quota_storage_kib, "storage_kib_default": defaults.storage_kib,
        "messages_used": use.messages, "messages_limit": lim.messages,
        "messages_set": mailbox.quota_messages, "messages_default": defaults.messages,
        "full": current.full,
    }  # fmt: skip


def show(session: Session, keys: KeyService, defaults: quota.QuotaDefaults, who: Any) -> dict[str, Any]:
    """Limits in force (None: no limit), the mailbox's own values (None: the default), the
    defaults and the usage; never a message."""
    return _row(session, owner(session, keys, who), defaults)


def set_limits(session: Session, keys: KeyService, actor: Actor, defaults: quota.QuotaDefaults, who: Any, *,
               storage_kib: Any = None, messages: Any = None, now: datetime) -> dict[str, Any]:
    storage = limit_value(storage_kib, "stockage (Kio)")
    count = limit_value(messages, "messages")
    if isinstance(storage, quota.Keep) and isinstance(count, quota.Keep):
        raise bad_request("rien à changer : stockage (Kio) ou messages", "missing",
                          "nothing to change: give --storage and/or --messages")
    found = owner(session, keys, who)
    mailbox = session.get(Mailbox, found.mailbox_id)
    assert mailbox is not None
    before = {"storage_kib": mailbox.quota_storage_kib, "messages": mailbox.quota_messages}
    quota.set_limits(session, found.mailbox_id, storage_kib=storage, messages=count)
    session.refresh(mailbox)
    after = {"storage_kib": mailbox.quota_storage_kib, "messages": mailbox.quota_messages}
    if after != before:
        audit.record(session, actor=actor.audit_actor, action="quota.set", subject_ref=found.subject_ref,
                     peer=actor.peer, now=now, details={"before": before, "after": after, "via": actor.via}, keys=keys,
                     patient_mailbox=found.mailbox_id)
    return _row(session, found, defaults)
