"""A mailbox read as a list of messages, for the patient web inbox (blocking; run in threads).

Every lookup is scoped to the mailbox the caller acts for: a message id of another mailbox
is simply not found, and opening goes through :func:`gateway.mailstore.sealed.open_message`
(the one ownership rule). Listings read columns and the small sealed summaries, never the
message bodies; flags and moves reuse the IMAP operations so UIDs and MODSEQs stay right.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from gateway.mailstore import message_ops, summaries
from gateway.mailstore.sealed import SealedRow, open_message
from gateway.mailstore.summaries import Summary
from gateway.store.keys import KeyService
from gateway.store.models import Conversation, Folder, Message
from imap.proto.commands import StoreMode

LISTING_LIMIT = 2000


@dataclass(frozen=True)
class InboxRow:
    """One message as a list shows it: its place, flags and dates, and its sealed summary."""

    id: int
    uid: int
    folder: str
    conversation_id: int | None
    flags: tuple[str, ...]  # as stored
    internal_date: datetime
    size: int
    sealed: SealedRow  # the summary only: the body is read by open_row

    @property
    def seen(self) -> bool:
        return "\\Seen" in self.flags


@dataclass(frozen=True)
class ConversationState:
    id: int
    ended: bool


def _rows() -> Select[Any]:
    return (select(Message.id, Message.uid, Folder.name, Message.conversation_id, Message.flags,
                   Message.internal_date, Message.size, Folder.mailbox_id, Message.uuid, Message.data_key_id,
                   Message.summary_sealed)
            .join(Folder, (Folder.mailbox_id == Message.mailbox_id) & (Folder.id == Message.folder_id)))


def _row(values: Any) -> InboxRow:
    mid, uid, folder, cid, flags, internal_date, size, owner, uuid, data_key_id, summary = values
    return InboxRow(mid, uid, folder, cid, tuple(flags.split()), internal_date, size,
               SealedRow(owner, uuid, data_key_id, summary=summary))


def rows(session: Session, mailbox_id: int, folders: Iterable[str], *, limit: int | None = LISTING_LIMIT
         ) -> list[InboxRow]:
    """The mailbox's messages in ``folders``, newest first (at most ``limit``; ``None``: all)."""
    query = (_rows().where(Message.mailbox_id == mailbox_id, Folder.name.in_(list(folders)))
             .order_by(Message.internal_date.desc(), Message.id.desc()))
    if limit is not None:
        query = query.limit(limit)
    return [_row(r) for r in session.execute(query).all()]


def owned(session: Session, mailbox_id: int, message_id: int) -> InboxRow | None:
    """The message if it is in one of this mailbox's folders."""
    found = session.execute(_rows().where(Message.mailbox_id == mailbox_id, Message.id == message_id)).first()
    return None if found is None else _row(found)


def latest_in_conversation(session: Session, mailbox_id: int, conversation_id: int) -> InboxRow | None:
    """The conversation's newest message in this mailbox."""
    found = session.execute(
        _rows().where(Message.mailbox_id == mailbox_id, Message.conversation_id == conversation_id)
        .order_by(Message.internal_date.desc(), Message.id.desc()).limit(1)).first()
    return None if found is None else _row(found)


def open_row(session: Session, keys: KeyService, mailbox_id: int, row: InboxRow) -> bytes:
    """The message's bytes (decrypted), under the mail store's one ownership rule."""
    sealed = session.execute(select(Message.sealed).where(Message.mailbox_id == mailbox_id, Message.id == row.id)
                             ).scalar_one()
    return open_message(session, keys, mailbox_id, SealedRow(row.sealed.mailbox_id, row.sealed.uuid,
                                                             row.sealed.data_key_id, sealed))


@dataclass(frozen=True)
class Listed:
    row: InboxRow
    summary: Summary


def summarised(session: Session, keys: KeyService, mailbox_id: int, rows: list[InboxRow]
               ) -> tuple[list[Listed], dict[int, bytes]]:
    """Each row with its summary (the sealed summary opened, no body); rows stored before
    summaries were get one computed from their bytes, returned sealed for :func:`keep`."""
    found, to_store = summaries.read(session, keys, mailbox_id, {r.id: r.sealed for r in rows})
    return [Listed(r, found[r.id]) for r in rows], to_store


def keep(session: Session, mailbox_id: int, to_store: dict[int, bytes]) -> None:
    """Store the summaries :func:`summarised` computed for ``mailbox_id`` (in a write transaction)."""
    summaries.store(session, mailbox_id, to_store)


def conversation(session: Session, mailbox_id: int, conversation_id: int) -> ConversationState | None:
    found = session.get(Conversation, (mailbox_id, conversation_id))
    if found is None:
        return None
    return ConversationState(found.id, found.ended_at is not None)


def ended_conversations(session: Session, mailbox_id: int, ids: Iterable[int]) -> set[int]:
    wanted = list(ids)
    if not wanted:
        return set()
    return {cid for cid, at in session.execute(
        select(Conversation.id, Conversation.ended_at).where(
            Conversation.mailbox_id == mailbox_id, Conversation.id.in_(wanted))).all() if at is not None}


def add_flag(session: Session, mailbox_id: int, row: InboxRow, flag: str) -> bool:
    """Set ``flag``; ``False`` when it was already set (so callers can do something once)."""
    result = message_ops.store_flags(session, mailbox_id, row.folder, [row.uid], StoreMode.ADD, [flag], None)
    return bool(result.updated)


def remove_flag(session: Session, mailbox_id: int, row: InboxRow, flag: str) -> None:
    message_ops.store_flags(session, mailbox_id, row.folder, [row.uid], StoreMode.REMOVE, [flag], None)


def move(session: Session, keys: KeyService, mailbox_id: int, row: InboxRow, to: str) -> None:
    message_ops.copy(session, keys, mailbox_id, row.folder, [row.uid], to, remove=True)


def delete(session: Session, mailbox_id: int, row: InboxRow) -> None:
    add_flag(session, mailbox_id, row, "\\Deleted")
    message_ops.expunge(session, mailbox_id, row.folder, [row.uid])
