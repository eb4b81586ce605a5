"""Purging a patient space (SPEC §5): crypto-shredding, then deleting the rows.

The data keys go first (``KeyService.shred``): from then on nothing that was sealed
for the mailbox can be opened, even from a backup taken before the purge that lacks
the keys. Then messages, conversations and folders are deleted. The patient row stays,
in state ``purged`` with its INS (so a roster re-import does not recreate the space),
its lifecycle dates, and no personal data. The mailbox row stays too (it holds only a
random id, its kind and a date).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from gateway.store.keys import KeyService
from gateway.store.models import Conversation, Folder, Message, Patient


def purge_patient(session: Session, keys: KeyService, patient: Patient, now: datetime) -> int:
    """Purge one space in the caller's transaction; returns how many messages were deleted."""
    deleted = 0
    mailbox_id = patient.mailbox_id
    if mailbox_id is not None:
        keys.shred(session, mailbox_id)
        folders = select(Folder.id).where(Folder.mailbox_id == mailbox_id).scalar_subquery()
        result = session.execute(delete(Message).where(Message.folder_id.in_(folders))
                                 .execution_options(synchronize_session=False))
        deleted = int(result.rowcount)  # type: ignore[attr-defined]
        session.execute(delete(Conversation).where(Conversation.mailbox_id == mailbox_id)
                        .execution_options(synchronize_session=False))
        session.execute(delete(Folder).where(Folder.mailbox_id == mailbox_id)
                        .execution_options(synchronize_session=False))
    patient.state = "purged"
    patient.purged_at = now
    patient.email_sealed = None
    patient.notifications_enabled = False
    patient.last_notified_at = None
    patient.password_hash = None
    patient.totp_sealed = None
    patient.activation_code_hash = None
    patient.last_login_at = None
    session.flush()
    return deleted
