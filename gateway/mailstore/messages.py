"""Storing and reading sealed messages (SPEC §8: content, headers and subject encrypted).

:func:`insert_sealed` is the delivery pipeline's insert (and the IMAP test kit's);
:func:`append_message` the IMAP APPEND's (ORM, the folder already loaded). Reading goes
through :func:`gateway.mailstore.sealed.open_message` with the mailbox the caller acts for.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.mailstore.folders import allocate_uid, find_folder, take_uid
from gateway.mailstore.sealed import SealedCopy, SealedRow, open_message, seal_copy
from gateway.store.keys import KeyService
from gateway.store.models import Folder, Message
from gateway.store.raw import RawStatement, Runner


class FolderNotFound(LookupError):
    pass


@dataclass(frozen=True)
class StoredMessage:
    message_id: int
    folder_id: int
    uid: int
    modseq: int


def append_message(
    session: Session,
    keys: KeyService,
    mailbox_id: int,
    folder_name: str,
    raw: bytes,
    *,
    flags: tuple[str, ...] = (),
    internal_date: datetime | None = None,
    conversation_id: int | None = None,
    summary: bytes | None = None,
) -> StoredMessage:
    """Seal ``raw`` (and its encoded ``summary``) under the mailbox's data key and add it to a
    folder, in the caller's transaction."""
    folder = find_folder(session, mailbox_id, folder_name)
    if folder is None:
        raise FolderNotFound(folder_name)
    copy = seal_copy(keys.for_mailbox(session, mailbox_id), raw, summary)
    uid, modseq = allocate_uid(session, mailbox_id, folder.id)
    message = Message(
        mailbox_id=mailbox_id, folder_id=folder.id, uid=uid, uuid=copy.uuid, data_key_id=copy.key.data_key_id,
        conversation_id=conversation_id, flags=" ".join(flags), internal_date=internal_date or datetime.now(UTC),
        size=copy.size, modseq=modseq, sealed=copy.sealed, summary_sealed=copy.summary,
        saved_at=datetime.now(UTC),  # RFC 8514: saved now, whatever internal date it was given
    )  # fmt: skip
    session.add(message)
    session.flush()
    return StoredMessage(message.id, folder.id, uid, modseq)


_M = Message.__table__.c
_INSERT_SEALED = RawStatement(
    "INSERT INTO messages (mailbox_id, folder_id, uid, uuid, data_key_id, conversation_id, flags, internal_date,"
    " size, modseq, sealed, summary_sealed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
    (_M.mailbox_id, _M.folder_id, _M.uid, _M.uuid, _M.data_key_id, _M.conversation_id, _M.flags, _M.internal_date,
     _M.size, _M.modseq, _M.sealed, _M.summary_sealed))


def insert_sealed(session: Session, mailbox_id: int, folder_name: str, copy: SealedCopy, *,
                  flags: tuple[str, ...] = (), internal_date: datetime,
                  conversation_id: int | None = None) -> StoredMessage:
    """Insert an already sealed copy (with its sealed summary) in the caller's transaction:
    the next UID and MODSEQ of the folder and the row, driver-level (delivery hot path).

    Raises :class:`FolderNotFound` (nothing written) or ``ValueError`` for a copy sealed for
    another mailbox; any failure is the caller's transaction's to roll back.
    """
    if copy.key.mailbox_id != mailbox_id:
        raise ValueError("sealed for another mailbox")
    taken = take_uid(session, mailbox_id, folder_name)
    if taken is None:
        raise FolderNotFound(folder_name)
    fid, uid, modseq = taken
    (message_id,) = _INSERT_SEALED.one(session, mailbox_id, fid, uid, copy.uuid, copy.key.data_key_id, conversation_id,
                                       " ".join(flags), internal_date, copy.size, modseq, copy.sealed,
                                       copy.summary)
    return StoredMessage(int(message_id), fid, uid, modseq)


_F = Folder.__table__.c
_ROW = RawStatement(
    "SELECT m.mailbox_id, m.uuid, m.data_key_id, m.sealed, m.summary_sealed FROM messages m"
    " WHERE m.mailbox_id = ? AND m.id = ?", (_M.mailbox_id, _M.id))


def sealed_row(runner: Runner, mailbox_id: int, message_id: int) -> SealedRow | None:
    """A message's sealed blobs with its mailbox, for :func:`open_message`."""
    row = _ROW.first(runner, mailbox_id, message_id)
    return None if row is None else SealedRow(*row)


def read_message(session: Session, keys: KeyService, mailbox_id: int, message_id: int) -> bytes:
    """Decrypt one message of ``mailbox_id``; ``LookupError`` if there is no such message, crypto's
    ``DecryptionError`` (another mailbox's, tampered) or ``KeyUnavailable`` when it cannot be opened."""
    row = sealed_row(session, mailbox_id, message_id)
    if row is None:
        raise LookupError("no such message")
    return open_message(session, keys, mailbox_id, row)


def list_folder(session: Session, mailbox_id: int, folder_id: int) -> list[Message]:
    return list(session.execute(select(Message).where(Message.mailbox_id == mailbox_id, Message.folder_id == folder_id)
                                .order_by(Message.uid)).scalars())
