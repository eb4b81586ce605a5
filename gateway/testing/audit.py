"""Audit entries as an authorised view sees them, for tests (issue 20: entries about a patient are
stored sealed; :mod:`gateway.store.audit_links`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.store import audit_links
from gateway.store.keys import KeyService
from gateway.store.models import AuditEntry


def opened_entries(session: Session, keys: KeyService, *where: Any, patient_id: int | None = None) -> list[AuditEntry]:
    """Entries matching ``where`` (and about ``patient_id``, through the keyed index), in id order,
    as detached copies with their sealed parts opened."""
    query = select(AuditEntry).where(*where)
    if patient_id is not None:
        query = query.where(audit_links.about_clause(session, keys, patient_id))
    out = []
    for e, o in audit_links.open_many(session, keys, session.execute(query.order_by(AuditEntry.id)).scalars()):
        if patient_id is not None and not o.concerns(patient_id):
            continue
        out.append(AuditEntry(id=e.id, at=e.at, actor=o.actor, action=e.action, subject_ref=o.subject_ref, peer=o.peer,
                              details=o.details, prev_hash=e.prev_hash, hash=e.hash, hash_form=e.hash_form))
    return out
