"""The outbound queue seen by an admin: entries with state and age; retry now, bounce, cancel.

- *retry*: a pending entry becomes due at once (the worker picks it up at its next round).
- *bounce*: a pending entry is made expired and due, so the worker closes it as
  ``expired`` and sends the RFC 3464 failure notice to the sender (the same path as
  a natural expiry, see ``gateway/jobs.py``).
- *cancel*: a pending entry is closed as ``cancelled`` without notice.
An entry under a live lease is being delivered right now: bounce and cancel wait.
Sealed envelope and message are never opened here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.store import audit
from gateway.store.models import QueueEntry
from gateway.web.admin.ops_common import Actor, bad_request, conflict, iso, not_found, text

STATUSES = ("pending", "sent", "bounced", "expired", "cancelled")
ACTIONS = ("retry", "bounce", "cancel")
LIST_LIMIT = 500


def row(e: QueueEntry, now: datetime) -> dict[str, Any]:
    leased = e.lease_until is not None and e.lease_until > now
    return {"id": e.uuid, "domain": e.domain, "kind": e.kind, "status": e.status, "attempts": e.attempts,
            "size": e.size, "age_seconds": max(0, int((now - e.created_at).total_seconds())),
            "created_at": iso(e.created_at), "next_attempt_at": iso(e.next_attempt_at),
            "expires_at": iso(e.expires_at), "finished_at": iso(e.finished_at), "in_delivery": leased,
            "last_error": e.last_error}


def list_entries(session: Session, *, now: datetime, status: str | None = "pending",
                 limit: int = 200) -> dict[str, Any]:
    if status is not None and status not in STATUSES:
        raise bad_request("statut : " + ", ".join(STATUSES))
    query = select(QueueEntry).order_by(QueueEntry.created_at, QueueEntry.id).limit(min(limit, LIST_LIMIT))
    if status is not None:
        query = query.where(QueueEntry.status == status)
    counts = {str(s): int(n) for s, n in session.execute(
        select(QueueEntry.status, func.count()).group_by(QueueEntry.status)).tuples()}
    oldest = session.execute(select(func.min(QueueEntry.created_at))
                             .where(QueueEntry.status == "pending")).scalar()
    return {"counts": counts,
            "oldest_pending_age_seconds": max(0, int((now - oldest).total_seconds())) if oldest else None,
            "entries": [row(e, now) for e in session.execute(query).scalars()]}


def act(session: Session, actor: Actor, entry_id: Any, action: str, *, now: datetime) -> dict[str, Any]:
    uuid = text(entry_id, "entrée", required=True, max_length=64)
    if action not in ACTIONS:
        raise bad_request("action : retry, bounce ou cancel")
    query = select(QueueEntry).where(QueueEntry.uuid == uuid)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    entry = session.execute(query).scalar_one_or_none()
    if entry is None:
        raise not_found("aucune entrée de file d'attente avec cet identifiant")
    if entry.status != "pending":
        raise conflict(f"entrée déjà terminée ({entry.status})")
    if action != "retry" and entry.lease_until is not None and entry.lease_until > now:
        raise conflict("livraison en cours ; réessayer dans un instant")
    if action == "retry":
        entry.next_attempt_at = now
    elif action == "bounce":
        entry.expires_at = now
        entry.next_attempt_at = now
    else:
        entry.status = "cancelled"
        entry.finished_at = now
        entry.last_error = "cancelled by an administrator"
        entry.lease_owner = None
        entry.lease_until = None
    audit.record(session, actor=actor.audit_actor, action=f"queue.admin.{action}", subject_ref=f"queue:{entry.uuid}",
                 peer=actor.peer, now=now, details={"domain": entry.domain, "kind": entry.kind, "via": actor.via})
    return row(entry, now)
