"""Folders and their IMAP bookkeeping (RFC 3501 §2.3.1.1 UIDs, RFC 7162 MODSEQ)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.store.models import Folder
from gateway.store.raw import RawStatement, Runner
from imap.backend import MailboxNotFound

# RFC 6154 special-use folders created for every professional account.
PRO_FOLDERS: tuple[tuple[str, str | None], ...] = (
    ("INBOX", None),
    ("Sent", "\\Sent"),
    ("Drafts", "\\Drafts"),
    ("Trash", "\\Trash"),
    ("Archive", "\\Archive"),
    ("Junk", "\\Junk"),
)
PATIENT_FOLDERS: tuple[tuple[str, str | None], ...] = (("INBOX", None), ("Sent", "\\Sent"), ("Trash", "\\Trash"))


def new_uidvalidity() -> int:
    """A non-zero 32-bit UIDVALIDITY (RFC 3501 §2.3.1.1: nz-number)."""
    return secrets.randbelow(2**31 - 1) + 1


def create_folder(session: Session, mailbox_id: int, name: str, special_use: str | None = None,
                  *, now: datetime | None = None, subscribed: bool = True) -> Folder:
    """A new folder; an account's standard folders are subscribed, IMAP CREATE's are not."""
    folder = Folder(
        mailbox_id=mailbox_id, name=name, special_use=special_use, subscribed=subscribed,
        uidvalidity=new_uidvalidity(), uidnext=1, highestmodseq=1, recent_uid=0, created_at=now or datetime.now(UTC),
    )
    session.add(folder)
    return folder


def create_standard_folders(session: Session, mailbox_id: int, layout: tuple[tuple[str, str | None], ...],
                            *, now: datetime | None = None) -> None:
    for name, special in layout:
        create_folder(session, mailbox_id, name, special, now=now)
    session.flush()


def folder_key(name: str) -> str:
    """The stored name: INBOX is case-insensitive, every other name is exact (RFC 3501 §5.1)."""
    return "INBOX" if name.upper() == "INBOX" else name


def find_folder(session: Session, mailbox_id: int, name: str, *, for_update: bool = False) -> Folder | None:
    # RFC 3501 §5.1: INBOX is case-insensitive; other names are exact.
    key = folder_key(name)
    query = select(Folder).where(Folder.mailbox_id == mailbox_id, Folder.name == key)
    if for_update:
        query = query.with_for_update()
    return session.execute(query).scalar_one_or_none()


def allocate_uid(session: Session, mailbox_id: int, folder_id: int) -> tuple[int, int]:
    """Take the next UID and MODSEQ of a folder, row-locked until the transaction ends.

    UIDs are strictly increasing and unique per folder even with concurrent writers:
    PostgreSQL locks the folder row (``FOR UPDATE``); SQLite write transactions are
    ``BEGIN IMMEDIATE`` and so already exclusive.
    """
    # populate_existing: the folder may already be in the session, loaded before the lock.
    folder = session.execute(
        select(Folder).where(Folder.mailbox_id == mailbox_id, Folder.id == folder_id).with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one()
    uid = folder.uidnext
    folder.uidnext = uid + 1
    folder.highestmodseq = folder.highestmodseq + 1
    return uid, folder.highestmodseq


def claim_recent(session: Session, mailbox_id: int, name: str, up_to_uid: int) -> int:
    """Raise the folder's recent mark to ``up_to_uid``; return the mark it had (RFC 3501
    §2.3.2: the caller alone sees the UIDs above it, up to ``up_to_uid``, as \\Recent).

    Atomic across sessions and nodes: the folder row is locked (PostgreSQL ``FOR UPDATE``;
    SQLite write transactions are ``BEGIN IMMEDIATE``) until the transaction ends.
    """
    folder = session.execute(
        select(Folder).where(Folder.mailbox_id == mailbox_id, Folder.name == folder_key(name))
        .with_for_update().execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if folder is None:
        raise MailboxNotFound()
    previous = folder.recent_uid
    if up_to_uid > previous:
        folder.recent_uid = up_to_uid
    return previous


_FOLDER_ID = RawStatement("SELECT id FROM folders WHERE mailbox_id = ? AND name = ?",
                          (Folder.__table__.c.mailbox_id, Folder.__table__.c.name))


def folder_id(session: Runner, mailbox_id: int, name: str) -> int | None:
    """:func:`find_folder` returning only the id (driver-level, for hot paths)."""
    row = _FOLDER_ID.first(session, mailbox_id, folder_key(name))
    return None if row is None else int(row[0])


_TAKE_UID = RawStatement(
    "UPDATE folders SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1"
    " WHERE mailbox_id = ? AND name = ? RETURNING id, uidnext, highestmodseq",
    (Folder.__table__.c.mailbox_id, Folder.__table__.c.name))


def take_uid(session: Session, mailbox_id: int, name: str) -> tuple[int, int, int] | None:
    """:func:`find_folder` + :func:`allocate_uid` in one statement (the delivery hot path):
    ``UPDATE … RETURNING`` the folder's id, the new UID and MODSEQ; None when there is no such folder.

    The UPDATE takes the row lock (PostgreSQL) inside the caller's transaction, and SQLite
    write transactions are exclusive, so UIDs stay unique and increasing under concurrency.
    Use it where no ``Folder`` instance of this row is held by the session (it would go stale).
    """
    row = _TAKE_UID.first(session, mailbox_id, folder_key(name))
    if row is None:
        return None
    fid, uidnext, highestmodseq = row
    return int(fid), int(uidnext) - 1, int(highestmodseq)
