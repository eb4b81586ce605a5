"""Folder operations for the IMAP backend (RFC 3501 §6.3.3-6.3.10, RFC 6154 special use).

Blocking functions over one SQLAlchemy session; :mod:`gateway.imap_adapter.backend` runs
them in worker threads inside a transaction and notifies the change hub after commit.
Folder names are never logged (they can name a patient).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from gateway.mailstore import expunged, subscriptions
from gateway.mailstore.folders import allocate_uid, create_folder, find_folder
from gateway.store.models import Folder, Message
from imap.backend import DELIMITER, FolderInfo, MailboxExists, MailboxNotFound
from imap.proto import replies
from imap.proto.errors import CommandFailed

SPECIAL_USES = ("\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash")


def get_folder(session: Session, mailbox_id: int, name: str, *, for_update: bool = False) -> Folder:
    folder = find_folder(session, mailbox_id, name, for_update=for_update)
    if folder is None:
        raise MailboxNotFound()
    return folder


def list_folders(session: Session, mailbox_id: int) -> list[FolderInfo]:
    rows = session.execute(
        select(Folder.name, Folder.subscribed, Folder.special_use).where(Folder.mailbox_id == mailbox_id)
    ).all()
    names = {name for name, _, _ in rows}
    parents: set[str] = set()
    for name in names:
        parts = name.split(DELIMITER)
        parents.update(DELIMITER.join(parts[:i]) for i in range(1, len(parts)))
    infos = [
        FolderInfo(name, bool(subscribed), name in parents, True, (special,) if special else ())
        for name, subscribed, special in rows
    ]
    # A parent that does not exist itself (deleted, or created only as a path) is \Noselect.
    infos += [FolderInfo(p, False, True, False) for p in parents - names]
    infos.sort(key=lambda f: (f.name != "INBOX", f.name))
    return infos


def create(session: Session, mailbox_id: int, name: str, special_use: Sequence[str]) -> None:
    known = {u.upper(): u for u in SPECIAL_USES}
    uses = [known.get(u.upper(), "") for u in special_use]
    if len(uses) > 1 or not all(uses):
        raise CommandFailed(replies.UNSUPPORTED_SPECIAL_USE)  # RFC 6154 §3
    if find_folder(session, mailbox_id, name) is not None:
        raise MailboxExists()
    parts = name.split(DELIMITER)
    made = []
    for i in range(1, len(parts)):  # RFC 3501 §6.3.3: create the missing superiors
        parent = DELIMITER.join(parts[:i])
        if find_folder(session, mailbox_id, parent) is None:
            made.append(create_folder(session, mailbox_id, parent, subscribed=False))
    # CREATE subscribes nothing (RFC 3501 §6.3.3, §6.3.6), but takes back a kept subscription.
    made.append(create_folder(session, mailbox_id, name, uses[0] if uses else None, subscribed=False))
    subscriptions.take_back(session, mailbox_id, made)
    session.flush()


def delete_folder(session: Session, mailbox_id: int, name: str) -> None:
    folder = get_folder(session, mailbox_id, name, for_update=True)
    if folder.name == "INBOX":
        raise CommandFailed(replies.INBOX_NOT_DELETABLE)  # RFC 3501 §6.3.4
    # RFC 3501 §6.3.4: inferior folders stay (the name then lists as \Noselect).
    session.execute(delete(Message).where(Message.mailbox_id == mailbox_id, Message.folder_id == folder.id))
    session.execute(delete(Folder).where(Folder.mailbox_id == mailbox_id, Folder.id == folder.id))
    subscriptions.keep(session, mailbox_id, folder)  # RFC 3501 §6.3.6: DELETE keeps it


def rename(session: Session, mailbox_id: int, old: str, new: str) -> None:
    folder = get_folder(session, mailbox_id, old, for_update=True)
    if find_folder(session, mailbox_id, new) is not None:
        raise MailboxExists()
    if new.startswith(folder.name + DELIMITER):
        raise CommandFailed(replies.FOLDER_INTO_ITSELF)
    parts = new.split(DELIMITER)
    made = []
    for i in range(1, len(parts)):
        parent = DELIMITER.join(parts[:i])
        if find_folder(session, mailbox_id, parent) is None:
            made.append(create_folder(session, mailbox_id, parent, subscribed=False))
    if folder.name == "INBOX":
        # RFC 3501 §6.3.5: renaming INBOX moves its messages to a new folder; INBOX stays.
        target = create_folder(session, mailbox_id, new, subscribed=False)
        subscriptions.take_back(session, mailbox_id, [*made, target])
        session.flush()
        rows = session.execute(select(Message).where(Message.mailbox_id == mailbox_id, Message.folder_id == folder.id)
                               .order_by(Message.uid)).scalars()
        moved = []
        for message in rows:
            moved.append(message.uid)
            uid, modseq = allocate_uid(session, mailbox_id, target.id)
            message.folder_id, message.uid, message.modseq = target.id, uid, modseq
        folder.highestmodseq += 1
        expunged.remember(session, folder, moved)  # gone from INBOX (RFC 7162)
        return
    prefix = folder.name + DELIMITER
    children = session.execute(
        select(Folder).where(Folder.mailbox_id == mailbox_id, Folder.name.startswith(prefix, autoescape=True))
    ).scalars().all()
    folder.name = new
    for child in children:  # RFC 3501 §6.3.5: inferior names move along
        child.name = new + DELIMITER + child.name[len(prefix) :]
    # Subscriptions follow the folders (as Dovecot's); one kept under a new name comes back.
    subscriptions.take_back(session, mailbox_id, [*made, folder, *children])

