"""A patient's own mail as the inbox pages show it (blocking; run in threads), over
:mod:`gateway.mailstore.inbox`.

Every lookup is scoped to the patient's mailbox: a message id of another mailbox is
simply not found. Listings open each message's sealed summary, made when it was delivered
(SPEC §8: the database holds no subject or correspondent in clear), never its body; only
search reads bodies.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from gateway.mailstore import inbox
from gateway.mailstore.inbox import ConversationState, InboxRow
from gateway.mailstore.summaries import Shown
from gateway.store.db import Database
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
    summary: mailview.Heading
    attachments: int = 0


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


def shown(s: Shown, *, fallback_date: datetime | None) -> mailview.Heading:
    """The page's summary from the stored one (the same defaults as an opened message's)."""
    date = datetime.fromisoformat(s.date) if s.date else fallback_date
    return mailview.Heading(s.subject or mailview.NO_SUBJECT, s.from_name or s.from_address or mailview.NO_AUTHOR,
                            s.from_address, date, s.message_id)


def items(db: Database, keys: KeyService, mailbox_id: int, folders: Iterable[str]) -> list[Item]:
    """The listing, newest first, from the stored summaries (older rows get theirs stored now)."""
    with db.read() as session:
        listed, to_store = inbox.summarised(session, keys, mailbox_id, inbox.rows(session, mailbox_id, folders))
    if to_store:
        with db.write() as session:
            inbox.keep(session, mailbox_id, to_store)
    return [Item(x.row.id, x.row.folder, x.row.conversation_id, x.row.seen, x.row.internal_date,
                 shown(x.summary.shown, fallback_date=x.row.internal_date), len(x.summary.shown.attachments))
            for x in listed]


def reply_subject(db: Database, keys: KeyService, mailbox_id: int, conversation_id: int) -> str | None:
    """``Re: <subject of the conversation's newest message>``, from its summary; None when the
    conversation is not this patient's."""
    with db.read() as session:
        if inbox.conversation(session, mailbox_id, conversation_id) is None:
            return None
        row = inbox.latest_in_conversation(session, mailbox_id, conversation_id)
        if row is None:
            return "Réponse"
        [listed], to_store = inbox.summarised(session, keys, mailbox_id, [row])
    if to_store:
        with db.write() as session:
            inbox.keep(session, mailbox_id, to_store)
    subject = shown(listed.summary.shown, fallback_date=None).subject
    return subject if subject.lower().startswith("re:") else f"Re: {subject}"


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


def owned(session: Session, mailbox_id: int, message_id: int) -> InboxRow | None:
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
