"""Conversations between a professional and a patient (SPEC §4), correspondents sealed.

A conversation is opened by a professional's message to a patient; later messages
join it through In-Reply-To/References; ``[FIN]`` or ``X-MSS-MES: FIN`` ends it.
Its parties (who opened it, the Reply-To allowed as reply target, the thread's
Message-IDs) are sealed with the patient's data key; lookups decrypt the patient's own
conversations only (a handful per patient).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.store.keys import KeyService, MailboxKey
from gateway.store.models import Conversation
from gateway.store.raw import RawStatement
from routing.decide import owns_conversation

MAX_THREAD_IDS = 500  # bound the sealed list; old ids fall off

_C = Conversation.__table__.c
_INSERT = RawStatement(
    "INSERT INTO conversations (uuid, mailbox_id, data_key_id, parties_sealed, opened_at, last_message_at,"
    " ended_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
    (_C.uuid, _C.mailbox_id, _C.data_key_id, _C.parties_sealed, _C.opened_at, _C.last_message_at, _C.ended_at))


@dataclass
class Parties:
    opened_by: str
    reply_to: str | None
    message_ids: list[str] = field(default_factory=list)

    def to_json(self) -> bytes:
        return json.dumps({"opened_by": self.opened_by, "reply_to": self.reply_to,
                           "message_ids": self.message_ids[-MAX_THREAD_IDS:]}).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Parties:
        obj = json.loads(data)
        return cls(obj["opened_by"], obj.get("reply_to"), list(obj.get("message_ids", [])))


@dataclass
class OpenConversation:
    row: Conversation
    parties: Parties


def _open(mk: MailboxKey, row: Conversation) -> Parties:
    return Parties.from_json(mk.open("conversation", row.uuid, row.parties_sealed))


def _seal(mk: MailboxKey, row: Conversation, parties: Parties) -> None:
    row.parties_sealed = mk.seal("conversation", row.uuid, parties.to_json())


def find_by_thread(session: Session, keys: KeyService, mailbox_id: int, thread_ids: tuple[str, ...], *,
                   author: str | None = None) -> OpenConversation | None:
    """The most recent conversation of this mailbox containing one of ``thread_ids``;
    with ``author``, only one that this author owns (``routing.decide.owns_conversation``)."""
    if not thread_ids:
        return None
    wanted = set(thread_ids)
    rows = session.execute(
        select(Conversation).where(Conversation.mailbox_id == mailbox_id).order_by(Conversation.id.desc())
    ).scalars()
    for row in rows:
        if row.data_key_id is None:
            continue
        parties = _open(keys.by_id(session, row.data_key_id, mailbox_id=row.mailbox_id), row)
        if not wanted.intersection(parties.message_ids):
            continue
        if author is None or owns_conversation(author, parties.opened_by, parties.reply_to):
            return OpenConversation(row, parties)
    return None


def get(session: Session, keys: KeyService, mailbox_id: int, conversation_id: int) -> OpenConversation | None:
    row = session.get(Conversation, (mailbox_id, conversation_id))
    if row is None or row.data_key_id is None:
        return None
    return OpenConversation(row, _open(keys.by_id(session, row.data_key_id, mailbox_id=row.mailbox_id), row))


def record_professional_message(
    session: Session, keys: KeyService, mailbox_id: int, *, author: str, reply_to: str | None,
    message_id: str, thread_ids: tuple[str, ...], ends: bool, now: datetime, key: MailboxKey | None = None,
) -> int:
    """A professional wrote to the patient: join the thread or open a conversation; returns its id.

    Threading headers that point at a conversation this author does not own start a new one
    (SPEC §4), so only its owner can end it."""
    found = find_by_thread(session, keys, mailbox_id, thread_ids, author=author)
    if found is None or found.row.ended_at is not None:
        # A new conversation: one driver-level insert (the delivery hot path).
        mk = key if key is not None and key.mailbox_id == mailbox_id else keys.for_mailbox(session, mailbox_id)
        uuid = secrets.token_hex(16)
        sealed = mk.seal("conversation", uuid, Parties(author, reply_to, [message_id]).to_json())
        (new_id,) = _INSERT.one(session, uuid, mailbox_id, mk.data_key_id, sealed, now, now, now if ends else None)
        return int(new_id)
    row, parties = found.row, found.parties
    parties.message_ids.append(message_id)
    row.last_message_at = now
    if ends:
        row.ended_at = now
    assert row.data_key_id is not None
    _seal(keys.by_id(session, row.data_key_id, mailbox_id=row.mailbox_id), row, parties)
    session.flush()
    return row.id


def record_patient_reply(session: Session, keys: KeyService, conversation: OpenConversation, *,
                         message_id: str, now: datetime) -> None:
    conversation.parties.message_ids.append(message_id)
    conversation.row.last_message_at = now
    assert conversation.row.data_key_id is not None
    _seal(keys.by_id(session, conversation.row.data_key_id,
                    mailbox_id=conversation.row.mailbox_id), conversation.row, conversation.parties)
    session.flush()
