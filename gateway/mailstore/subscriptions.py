"""IMAP subscriptions (RFC 3501 §6.3.6, §6.3.7, §6.3.9) for the IMAP backend.

A subscription is a name, not a folder: DELETE keeps it and LSUB still lists it, UNSUBSCRIBE
still takes it, and a folder made again under the name is subscribed again, as Dovecot keeps
them. While the folder exists its subscription is ``Folder.subscribed`` (the standard folders
of a new account are made subscribed); the subscription of a deleted folder waits in
``subscriptions`` (migration 0006) until a folder takes it back (:func:`take_back`).
Blocking functions over one SQLAlchemy session, run by :mod:`gateway.imap_adapter.backend`
inside a write transaction. Names are never logged (they can name a patient).
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from gateway.mailstore.folders import find_folder, folder_key
from gateway.store.models import Folder, Subscription
from imap.backend import MailboxNotFound


def _kept(session: Session, mailbox_id: int, name: str) -> bool:
    row = session.execute(
        select(Subscription.id).where(Subscription.mailbox_id == mailbox_id, Subscription.name == name)
    ).first()
    return row is not None


def take_back(session: Session, mailbox_id: int, folders: Iterable[Folder]) -> None:
    """Folders just made or renamed take back a subscription kept for their name."""
    for folder in folders:
        gone = session.execute(
            delete(Subscription).where(Subscription.mailbox_id == mailbox_id, Subscription.name == folder.name)
        )
        if getattr(gone, "rowcount", 0):
            folder.subscribed = True


def keep(session: Session, mailbox_id: int, folder: Folder) -> None:
    """The folder is being deleted: its subscription stays, under its name (RFC 3501 §6.3.6)."""
    if folder.subscribed and not _kept(session, mailbox_id, folder.name):
        session.add(Subscription(mailbox_id=mailbox_id, name=folder.name))


def set_subscribed(session: Session, mailbox_id: int, name: str, subscribed: bool) -> None:
    """SUBSCRIBE needs the folder; UNSUBSCRIBE takes a kept subscription too. MailboxNotFound
    when neither a folder nor (UNSUBSCRIBE) a kept subscription has the name."""
    folder = find_folder(session, mailbox_id, name)
    if folder is not None:
        session.execute(update(Folder).where(Folder.mailbox_id == mailbox_id, Folder.id == folder.id)
                        .values(subscribed=subscribed))
        return
    key = folder_key(name)
    if subscribed or not _kept(session, mailbox_id, key):
        raise MailboxNotFound()
    session.execute(delete(Subscription).where(Subscription.mailbox_id == mailbox_id, Subscription.name == key))


def list_subscriptions(session: Session, mailbox_id: int) -> list[str]:
    """Every subscribed name: subscribed folders and kept subscriptions."""
    folders = session.execute(
        select(Folder.name).where(Folder.mailbox_id == mailbox_id, Folder.subscribed.is_(True))
    ).scalars()
    kept = session.execute(select(Subscription.name).where(Subscription.mailbox_id == mailbox_id)).scalars()
    return sorted({*folders, *kept})
