"""Purging a patient space (SPEC §5): crypto-shredding, then deleting the rows.

The data keys go first (``KeyService.shred``): from then on nothing that was sealed
for the mailbox can be opened, even from a backup taken before the purge that lacks
the keys. Then messages, the pieces of large messages, conversations and folders are
deleted (:func:`empty_mailbox`, also used to remove a professional account), in the same
transaction: no foreign key nulls or deletes anything for it (issue 23: no ``ON DELETE SET
NULL``), so every row that names a shredded key goes explicitly. The patient's web sessions
are deleted too (``web_sessions`` is distributed by its own key: no foreign key to the
patient). The patient row stays, in state ``purged`` with its keyed INS index and its entry in
the INS directory (so a lookup by INS still answers "purged" and a roster re-import does not
recreate it), its lifecycle dates, and no personal data. The mailbox row stays too (it holds
only a random id, its kind and a date).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from gateway.accounts import web_sessions
from gateway.store.keys import KeyService
from gateway.store.models import Conversation, Folder, Message, MessageChunk, Patient


@dataclass(frozen=True)
class MailboxSize:
    folders: int
    messages: int
    bytes: int


def mailbox_size(session: Session, mailbox_id: int) -> MailboxSize:
    count, size = session.execute(select(func.count(Message.id), func.coalesce(func.sum(Message.size), 0))
                                  .where(Message.mailbox_id == mailbox_id)).one()
    n_folders = session.execute(select(func.count()).select_from(Folder)
                                .where(Folder.mailbox_id == mailbox_id)).scalar_one()
    return MailboxSize(int(n_folders), int(count), int(size))


@dataclass(frozen=True)
class Emptied:
    """What emptying a mailbox destroyed."""

    size: MailboxSize
    data_keys: int


def empty_mailbox(session: Session, keys: KeyService, mailbox_id: int) -> Emptied:
    """Crypto-shred a mailbox, then delete its messages, the pieces of its large messages, its
    conversations and its folders, in the caller's transaction (the mailbox row stays).

    The one way to empty a mailbox: a patient's purge and a professional account's removal."""
    size = mailbox_size(session, mailbox_id)
    shredded = keys.shred(session, mailbox_id)
    for statement in (delete(Message).where(Message.mailbox_id == mailbox_id),
                      delete(MessageChunk).where(MessageChunk.mailbox_id == mailbox_id),
                      delete(Conversation).where(Conversation.mailbox_id == mailbox_id),
                      delete(Folder).where(Folder.mailbox_id == mailbox_id)):
        session.execute(statement.execution_options(synchronize_session=False))
    return Emptied(size, shredded)


def purge_patient(session: Session, keys: KeyService, patient: Patient, now: datetime) -> int:
    """Purge one space in the caller's transaction; returns how many messages were deleted."""
    deleted = 0
    if patient.mailbox_id is not None:
        deleted = empty_mailbox(session, keys, patient.mailbox_id).size.messages
    patient.state = "purged"
    patient.purged_at = now
    patient.email_sealed = None
    patient.ins_sealed = None  # shredded with the data keys anyway; the keyed index stays (state by INS)
    patient.notifications_enabled = False
    patient.last_notified_at = None
    patient.password_hash = None
    patient.totp_sealed = None
    patient.activation_code_hash = None
    patient.last_login_at = None
    web_sessions.destroy_all(session, patient.id)
    session.flush()
    return deleted
