"""IMAP object ids and save dates of stored messages (RFC 8474 EMAILID / THREADID, RFC 8514
SAVEDATE), from columns only: nothing sealed is read.

EMAILID is ``M`` and a digest of the message's first ``uuid`` (a copy keeps its original's in
``email_id``), so COPY and MOVE keep it (RFC 8474 §5.1) while the sealed copy gets a uuid of
its own. THREADID is ``T`` and a digest of the message's conversation (SPEC §4), the thread
the gateway keeps; a message outside any conversation (APPENDed, or mail not linked to one)
has ``THREADID NIL``. The digests keep the row handles (bound into the sealing AAD and used by
the web) out of the IMAP identifiers. The save date is ``saved_at``, or the internal date
for delivered mail and rows older than migration 0010.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.store.models import Conversation, Message
from imap.backend import MessageObject

IN_CHUNK = 500  # bound on IN (...) lists (SQLite's variable limit)


def _digest(prefix: str, handle: str) -> str:
    return prefix + hashlib.sha256(handle.encode("ascii")).hexdigest()[:24]


def read_objects(session: Session, mailbox_id: int, folder_id: int,
                 uids: Sequence[int]) -> dict[int, MessageObject]:
    found: dict[int, MessageObject] = {}
    for i in range(0, len(uids), IN_CHUNK):
        rows = session.connection().execute(
            select(Message.uid, Message.uuid, Message.email_id, Conversation.uuid, Message.saved_at,
                   Message.internal_date)
            .outerjoin(Conversation, (Conversation.mailbox_id == Message.mailbox_id)
                       & (Conversation.id == Message.conversation_id))
            .where(Message.mailbox_id == mailbox_id, Message.folder_id == folder_id,
                   Message.uid.in_(uids[i : i + IN_CHUNK]))
        ).all()
        for uid, uuid, email_id, conversation, saved_at, internal_date in rows:
            thread = None if conversation is None else _digest("T", conversation)
            found[uid] = MessageObject(_digest("M", email_id or uuid), thread, saved_at or internal_date)
    return found
