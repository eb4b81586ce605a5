"""A patient's own mail, read and changed through the store (blocking; run in threads).

Every lookup is scoped to the patient's mailbox: a message id of another mailbox is
simply not found. Listings decrypt the patient's messages server-side (SPEC §8: the
database holds no subject or correspondent in clear); flags and moves reuse the IMAP
store operations so UIDs and MODSEQs stay right.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from email.parser import BytesParser
from email.policy import default as default_policy

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.mailstore import message_ops
from gateway.mailstore.messages import open_message
from gateway.store.keys import KeyService
from gateway.store.models import Conversation, Folder, Message
from gateway.web.patient import mailview
from imap.proto.commands import StoreMode

FOLDER_LABELS = {"INBOX": "Boîte de réception", "Sent": "Messages envoyés", "Trash": "Corbeille"}
LISTING_LIMIT = 2000
MDN_SENT = "$MDNSent"  # RFC 3503 §3.1: the MDN for this message was sent


@dataclass(frozen=True)
class Item:
    id: int
    folder: str
    conversation_id: int | None
    seen: bool
    internal_date: datetime
    summary: mailview.Summary


@dataclass
class Thread:
    key: str
    conversation_id: int | None
    subject: str
    last: datetime
    latest_id: int
    correspondents: list[str] = field(default_factory=list)
    unread: int = 0
    count: int = 0
    ended: bool = False


def _flags(text: str) -> set[str]:
    return set(text.split())


def rows(session: Session, mailbox_id: int, folders: Iterable[str], *, limit: int | None = LISTING_LIMIT
         ) -> list[tuple[Message, str]]:
    """The mailbox's messages in ``folders``, newest first (at most ``limit``; ``None``: all)."""
    query = (select(Message, Folder.name).join(Folder, Folder.id == Message.folder_id)
             .where(Folder.mailbox_id == mailbox_id, Folder.name.in_(list(folders)))
             .order_by(Message.internal_date.desc(), Message.id.desc()))
    if limit is not None:
        query = query.limit(limit)
    return [(m, name) for m, name in session.execute(query).all()]


def items(session: Session, keys: KeyService, mailbox_id: int, folders: Iterable[str]) -> list[Item]:
    parser = BytesParser(policy=default_policy)
    out: list[Item] = []
    for message, folder in rows(session, mailbox_id, folders):
        head = parser.parsebytes(open_message(session, keys, message), headersonly=True)
        summary = mailview.summary(head, fallback_date=message.internal_date)
        out.append(Item(message.id, folder, message.conversation_id, "\\Seen" in _flags(message.flags),
                        message.internal_date, summary))
    return out


def threads(session: Session, found: list[Item]) -> list[Thread]:
    """Group by conversation (messages outside one stay alone), newest activity first."""
    grouped: dict[str, Thread] = {}
    for item in found:  # newest first
        key = f"c{item.conversation_id}" if item.conversation_id is not None else f"m{item.id}"
        thread = grouped.get(key)
        if thread is None:
            thread = grouped[key] = Thread(key, item.conversation_id, item.summary.subject, item.internal_date,
                                           item.id)
        thread.count += 1
        thread.subject = item.summary.subject  # ends as the oldest message's subject
        if item.folder == "INBOX":
            if not item.seen:
                thread.unread += 1
            if item.summary.sender_name not in thread.correspondents:
                thread.correspondents.append(item.summary.sender_name)
    ended = {cid for cid, at in session.execute(
        select(Conversation.id, Conversation.ended_at).where(
            Conversation.id.in_([t.conversation_id for t in grouped.values() if t.conversation_id]))).all() if at}
    for thread in grouped.values():
        thread.ended = thread.conversation_id in ended
        if not thread.correspondents:
            thread.correspondents.append("Vous")
    return sorted(grouped.values(), key=lambda t: t.last, reverse=True)


def owned(session: Session, mailbox_id: int, message_id: int) -> tuple[Message, str] | None:
    """The message if it is in one of this patient's folders, with its folder name."""
    row = session.execute(
        select(Message, Folder.name).join(Folder, Folder.id == Message.folder_id)
        .where(Message.id == message_id, Folder.mailbox_id == mailbox_id)
    ).first()
    return None if row is None else (row[0], row[1])


def conversation(session: Session, mailbox_id: int, conversation_id: int) -> Conversation | None:
    row = session.get(Conversation, conversation_id)
    return row if row is not None and row.mailbox_id == mailbox_id else None


def add_flag(session: Session, mailbox_id: int, message: Message, folder: str, flag: str) -> bool:
    """Set ``flag``; ``False`` when it was already set (so callers can do something once)."""
    result = message_ops.store_flags(session, mailbox_id, folder, [message.uid], StoreMode.ADD, [flag], None)
    return bool(result.updated)


def remove_flag(session: Session, mailbox_id: int, message: Message, folder: str, flag: str) -> None:
    message_ops.store_flags(session, mailbox_id, folder, [message.uid], StoreMode.REMOVE, [flag], None)


def move(session: Session, keys: KeyService, mailbox_id: int, message: Message, folder: str, to: str) -> None:
    message_ops.copy(session, keys, mailbox_id, folder, [message.uid], to, remove=True)


def delete(session: Session, mailbox_id: int, message: Message, folder: str) -> None:
    add_flag(session, mailbox_id, message, folder, "\\Deleted")
    message_ops.expunge(session, mailbox_id, folder, [message.uid])


def search(session: Session, keys: KeyService, mailbox_id: int, query: str) -> list[Item]:
    """Messages whose subject, sender, text or attachment names contain every word of ``query``."""
    words = [w.casefold() for w in query.split() if w][:10]
    if not words:
        return []
    found: list[Item] = []
    for message, folder in rows(session, mailbox_id, ("INBOX", "Sent", "Trash")):
        msg = mailview.parse(open_message(session, keys, message))
        haystack = mailview.plain_text(msg).casefold()
        if all(w in haystack for w in words):
            found.append(Item(message.id, folder, message.conversation_id, "\\Seen" in _flags(message.flags),
                              message.internal_date, mailview.summary(msg, fallback_date=message.internal_date)))
    return found
