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

from sqlalchemy.orm import Session

from gateway.mailstore import inbox
from gateway.mailstore.inbox import ConversationState, Row
from gateway.store.keys import KeyService
from gateway.web.patient import mailview

FOLDER_LABELS = {"INBOX": "Boîte de réception", "Sent": "Messages envoyés", "Trash": "Corbeille"}
LISTING_LIMIT = inbox.LISTING_LIMIT
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


def items(session: Session, keys: KeyService, mailbox_id: int, folders: Iterable[str]) -> list[Item]:
    parser = BytesParser(policy=default_policy)
    out: list[Item] = []
    for row in inbox.rows(session, mailbox_id, folders):
        head = parser.parsebytes(inbox.open_row(session, keys, mailbox_id, row), headersonly=True)
        summary = mailview.summary(head, fallback_date=row.internal_date)
        out.append(Item(row.id, row.folder, row.conversation_id, row.seen, row.internal_date, summary))
    return out


def threads(session: Session, mailbox_id: int, found: list[Item]) -> list[Thread]:
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
    ended = inbox.ended_conversations(session, mailbox_id,
                                      [t.conversation_id for t in grouped.values() if t.conversation_id])
    for thread in grouped.values():
        thread.ended = thread.conversation_id in ended
        if not thread.correspondents:
            thread.correspondents.append("Vous")
    return sorted(grouped.values(), key=lambda t: t.last, reverse=True)


def owned(session: Session, mailbox_id: int, message_id: int) -> Row | None:
    """The message if it is in one of this patient's folders."""
    return inbox.owned(session, mailbox_id, message_id)


def conversation(session: Session, mailbox_id: int, conversation_id: int) -> ConversationState | None:
    return inbox.conversation(session, mailbox_id, conversation_id)


def search(session: Session, keys: KeyService, mailbox_id: int, query: str) -> list[Item]:
    """Messages whose subject, sender, text or attachment names contain every word of ``query``."""
    words = [w.casefold() for w in query.split() if w][:10]
    if not words:
        return []
    found: list[Item] = []
    for row in inbox.rows(session, mailbox_id, ("INBOX", "Sent", "Trash")):
        msg = mailview.parse(inbox.open_row(session, keys, mailbox_id, row))
        haystack = mailview.plain_text(msg).casefold()
        if all(w in haystack for w in words):
            found.append(Item(row.id, row.folder, row.conversation_id, row.seen, row.internal_date,
                              mailview.summary(msg, fallback_date=row.internal_date)))
    return found
