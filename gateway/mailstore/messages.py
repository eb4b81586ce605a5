"""Storing and reading sealed messages (SPEC §8: content, headers and subject encrypted)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from crypto.envelope import DecryptionError
from gateway.mailstore.chunks import whole
from gateway.mailstore.folders import allocate_uid, find_folder, take_uid
from gateway.mailstore.sealed import SealedCopy
from gateway.store.keys import KeyService, KeyUnavailable
from gateway.store.models import Folder, Mailbox, Message
from gateway.store.raw import RawStatement


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
    """Seal ``raw`` under the mailbox's data key and add it to a folder, in the caller's transaction."""
    folder = find_folder(session, mailbox_id, folder_name)
    if folder is None:
        raise FolderNotFound(folder_name)
    mk = keys.for_mailbox(session, mailbox_id)
    uid, modseq = allocate_uid(session, folder.id)
    uuid = secrets.token_hex(16)
    message = Message(
        folder_id=folder.id, uid=uid, uuid=uuid, data_key_id=mk.data_key_id, conversation_id=conversation_id,
        flags=" ".join(flags), internal_date=internal_date or datetime.now(UTC), size=len(raw), modseq=modseq,
        sealed=mk.seal("msg", uuid, raw),
        summary_sealed=mk.seal("summary", uuid, summary) if summary is not None else None,
    )
    session.add(message)
    session.flush()
    return StoredMessage(message.id, folder.id, uid, modseq)


_M = Message.__table__.c
_INSERT_SEALED = RawStatement(
    "INSERT INTO messages (folder_id, uid, uuid, data_key_id, conversation_id, flags, internal_date, size,"
    " modseq, sealed, summary_sealed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL) RETURNING id",
    (_M.folder_id, _M.uid, _M.uuid, _M.data_key_id, _M.conversation_id, _M.flags, _M.internal_date, _M.size,
     _M.modseq, _M.sealed))


def insert_sealed(session: Session, mailbox_id: int, folder_name: str, copy: SealedCopy, *,
                  flags: tuple[str, ...] = (), internal_date: datetime,
                  conversation_id: int | None = None) -> StoredMessage:
    """:func:`append_message` for an already sealed copy: driver-level statements (delivery hot path)."""
    if copy.key.mailbox_id != mailbox_id:
        raise ValueError("sealed for another mailbox")
    taken = take_uid(session, mailbox_id, folder_name)
    if taken is None:
        raise FolderNotFound(folder_name)
    fid, uid, modseq = taken
    (message_id,) = _INSERT_SEALED.one(session, fid, uid, copy.uuid, copy.key.data_key_id, conversation_id,
                                       " ".join(flags), internal_date, copy.size, modseq, copy.sealed)
    return StoredMessage(int(message_id), fid, uid, modseq)


def read_message(session: Session, keys: KeyService, message_id: int) -> bytes:
    """Decrypt one message; raises crypto's DecryptionError or KeyUnavailable when it cannot be opened."""
    message = session.get(Message, message_id)
    if message is None:
        raise LookupError("no such message")
    return open_message(session, keys, message)


def open_message(session: Session, keys: KeyService, message: Message) -> bytes:
    if message.data_key_id is None:
        raise KeyUnavailable("the mailbox's data keys were destroyed")
    mk = keys.by_id(session, message.data_key_id)
    owner = session.execute(
        select(Mailbox.id).join(Folder, Folder.mailbox_id == Mailbox.id).where(Folder.id == message.folder_id)
    ).scalar_one()
    if owner != mk.mailbox_id:  # the key row belongs to another mailbox: a swapped row
        raise DecryptionError("message does not belong to this key's mailbox")
    return mk.open("msg", message.uuid, whole(session, message.uuid, message.sealed))


def list_folder(session: Session, folder_id: int) -> list[Message]:
    return list(session.execute(select(Message).where(Message.folder_id == folder_id).order_by(Message.uid)).scalars())
