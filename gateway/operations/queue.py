"""The outbound queue seen by an admin: list (by status, domain, kind), show, retry, bounce, cancel.

- *retry*: a pending entry becomes due at once (the worker picks it up at its next round).
- *bounce*: a pending entry is marked as given up by the operator (``bounced_by``) and made
  due, so the worker closes it as ``bounced`` and sends the sender an RFC 3464 failure notice
  saying the delivery was cancelled by the operator (status 5.0.0; ``gateway/outbound/process.py``),
  not that its delivery time expired.
- *cancel*: a pending entry is closed as ``cancelled`` without notice.
An entry under a live lease is being delivered right now: bounce and cancel wait.

*show* opens the sealed envelope (never the message) for what an operator needs to
follow a delivery: sender, recipients, DSN parameters. A patient's address shows a masked
INS and a personal address (content-free notifications) a masked local part; the
reading is audited (``queue.admin.show``).

``last_error`` (list and show) is the entry's last error as written, opened from its sealed
copy (issue 20: a peer's reply may quote an address); the database keeps only the reply codes
in clear, which is what shows when the entry's key is gone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crypto.envelope import DecryptionError
from gateway.operations.common import Actor, bad_request, conflict, iso, not_found, text
from gateway.outbound import values
from gateway.outbound.queue import entry as queue_entry
from gateway.outbound.queue import open_envelope, open_error
from gateway.outbound.values import Envelope
from gateway.store import audit
from gateway.store.keys import KeyService, KeyUnavailable
from gateway.store.models import QueueEntry
from routing.address import InvalidAddress, normalise_domain
from routing.ins import mask_ins

STATUSES = ("pending", "sent", "bounced", "expired", "cancelled")
ACTIONS = ("retry", "bounce", "cancel")
KINDS = tuple(sorted(values.KINDS))
LIST_LIMIT = 500


def row(e: QueueEntry, now: datetime, error: str | None = None) -> dict[str, Any]:
    """An entry as listed; ``error``: its opened last error (:func:`open_error`), else the clear codes."""
    leased = e.lease_until is not None and e.lease_until > now
    return {"id": e.uuid, "domain": e.domain, "kind": e.kind, "status": e.status, "attempts": e.attempts,
            "size": e.size, "age_seconds": max(0, int((now - e.created_at).total_seconds())),
            "created_at": iso(e.created_at), "next_attempt_at": iso(e.next_attempt_at),
            "expires_at": iso(e.expires_at), "finished_at": iso(e.finished_at), "in_delivery": leased,
            "last_error": error if error is not None else e.last_error}


def _filters(status: str | None, domain: str | None, kind: str | None) -> list[Any]:
    where: list[Any] = []
    if status is not None:
        if status not in STATUSES:
            raise bad_request("statut : " + ", ".join(STATUSES), en="status: one of " + ", ".join(STATUSES))
        where.append(QueueEntry.status == status)
    if domain is not None:
        try:
            where.append(QueueEntry.domain == normalise_domain(domain))
        except (InvalidAddress, UnicodeError, ValueError):
            raise bad_request("domaine : nom de domaine invalide", en=f"invalid domain {domain!r}") from None
    if kind is not None:
        if kind not in KINDS:
            raise bad_request("type : " + ", ".join(KINDS), en="kind: one of " + ", ".join(KINDS))
        where.append(QueueEntry.kind == kind)
    return where


def list_entries(session: Session, keys: KeyService, *, now: datetime, status: str | None = "pending",
                 domain: str | None = None, kind: str | None = None, limit: int = 200,
                 max_limit: int = LIST_LIMIT) -> dict[str, Any]:
    """Oldest first; ``counts`` and the oldest pending age cover the whole queue, not the filter.

    An admin listing: a bounded fan-out over the queue's buckets (``limit``; on
    distribution.py's allow-list), as are the counts."""
    where = _filters(status, domain, kind)
    query = (select(QueueEntry).where(*where).order_by(QueueEntry.created_at, QueueEntry.id)
             .limit(max(1, min(limit, max_limit))))
    counts = {str(s): int(n) for s, n in session.execute(
        select(QueueEntry.status, func.count()).group_by(QueueEntry.status)).tuples()}
    oldest = session.execute(select(func.min(QueueEntry.created_at))
                             .where(QueueEntry.status == "pending")).scalar()
    return {"counts": counts,
            "oldest_pending_age_seconds": max(0, int((now - oldest).total_seconds())) if oldest else None,
            "entries": [row(e, now, open_error(session, keys, e)) for e in session.execute(query).scalars()]}


def _entry(session: Session, entry_id: Any, *, lock: bool = False) -> QueueEntry:
    uuid = text(entry_id, "entrée", required=True, max_length=64)
    entry = queue_entry(session, uuid or "", lock=lock)  # by (bucket, uuid)
    if entry is None:
        raise not_found("aucune entrée de file d'attente avec cet identifiant", f"no queue entry with id {uuid}")
    return entry


def _shown(address: str, *, patient_domain: str, personal: bool) -> str:
    local, _, domain = address.rpartition("@")
    if domain.lower() == patient_domain:
        return f"{mask_ins(local)}@{domain}"
    if personal:  # a patient's personal address (content-free notification)
        return f"{local[:1]}***@{domain}"
    return address


def envelope_view(envelope: Envelope, *, kind: str, patient_domain: str) -> dict[str, Any]:
    personal = kind == "notification"
    return {
        "mail_from": _shown(envelope.mail_from, patient_domain=patient_domain, personal=False)
        if envelope.mail_from else "<>",
        "recipients": [{"address": _shown(r.address, patient_domain=patient_domain, personal=personal),
                        "notify": list(r.notify) or None} for r in envelope.recipients],
        "ret": envelope.ret, "envid": envelope.envid, "delay_notice_sent": envelope.delay_notified,
    }


def show(session: Session, keys: KeyService, actor: Actor, entry_id: Any, *, patient_domain: str,
         now: datetime) -> dict[str, Any]:
    """One entry with its envelope (masked where it names a patient); never the message."""
    entry = _entry(session, entry_id)
    info = row(entry, now, open_error(session, keys, entry))
    info["lease_until"] = iso(entry.lease_until)
    try:
        info["envelope"] = envelope_view(open_envelope(session, keys, entry), kind=entry.kind,
                                         patient_domain=patient_domain.lower())
    except (KeyUnavailable, DecryptionError, ValueError, KeyError):
        info["envelope"] = None  # unreadable: the worker closes such an entry when it claims it
    audit.record(session, actor=actor.audit_actor, action="queue.admin.show", subject_ref=f"queue:{entry.uuid}",
                 peer=actor.peer, now=now, details={"domain": entry.domain, "kind": entry.kind, "via": actor.via})
    return info


def act(session: Session, actor: Actor, entry_id: Any, action: str, *, now: datetime) -> dict[str, Any]:
    if action not in ACTIONS:
        raise bad_request("action : retry, bounce ou cancel", en="action: retry, bounce or cancel")
    entry = _entry(session, entry_id, lock=True)
    if entry.status != "pending":
        raise conflict(f"entrée déjà terminée ({entry.status})", f"entry already finished ({entry.status})")
    if action != "retry" and entry.lease_until is not None and entry.lease_until > now:
        raise conflict("livraison en cours ; réessayer dans un instant",
                       "being delivered right now; try again in a moment")
    if action == "retry":
        entry.next_attempt_at = now
    elif action == "bounce":
        entry.expires_at = now
        entry.next_attempt_at = now
        entry.bounced_by = actor.audit_actor[:320]
    else:
        entry.status = "cancelled"
        entry.finished_at = now
        entry.last_error = "cancelled by an administrator"
        entry.lease_owner = None
        entry.lease_until = None
    audit.record(session, actor=actor.audit_actor, action=f"queue.admin.{action}", subject_ref=f"queue:{entry.uuid}",
                 peer=actor.peer, now=now, details={"domain": entry.domain, "kind": entry.kind, "via": actor.via})
    return row(entry, now)

