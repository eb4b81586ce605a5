"""Large messages stored in pieces, so that no single commit holds the write lock for long.

Issue 8: a 20 MiB delivery written in one transaction held SQLite's only write lock for
100-150 ms (the 20 MiB copied into the WAL, then its fsync), and every other delivery
waited behind it. Measured on this machine (``synchronous=FULL``): 20 MiB in one
transaction 115-145 ms; the same as twenty 1 MiB transactions 103 ms in all, each holding
the lock 5-8 ms. So a sealed copy above :data:`CHUNK_ABOVE` bytes is written as
:data:`CHUNK_SIZE` pieces, each in its own durable transaction, *before* the transaction
that inserts the message row; that row's ``sealed`` is then empty (:data:`CHUNKED`).

Writing the pieces back to back was not enough: on this machine's virtual disk a small
commit made while another writer streamed 20 MiB into the WAL still waited 80-180 ms,
pieces or not (``synchronous=FULL``, two processes, measured with plain ``sqlite3``).
With a 10 ms pause between 1 MiB pieces the small commits never waited more than 12 ms
(five runs); the large message takes about 200 ms longer to store, and that time is a
sleep, not CPU. So the pieces are paced (:data:`CHUNK_PAUSE_S`).

- Durability: every piece is committed (fsync'd) before the row that makes the message
  visible, and ``250`` still follows that row's commit.
- Integrity: the pieces are slices of one AES-GCM seal bound to the message's uuid, so a
  missing, swapped or reordered piece fails to open, like a tampered row.
- Clean-up: pieces whose message row never came (a crash or an error between the two) or
  is gone (expunged, purged) are deleted by the ``orphan-chunks`` lifecycle job once older
  than :data:`ORPHAN_GRACE`; a mailbox's deletion cascades to its pieces.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol, Self, TypeVar

from sqlalchemy.orm import Session

from gateway.store.models import MessageChunk
from gateway.store.raw import RawStatement, Runner

if TYPE_CHECKING:
    from gateway.store.db import Database

CHUNK_ABOVE = 4 * 1024 * 1024
"""Sealed copies up to this size are written with their row (one transaction, ~25 ms)."""
CHUNK_SIZE = 1024 * 1024
CHUNK_PAUSE_S = 0.01
"""Between two pieces: lets other writers' commits reach the disk (see the module text)."""
CHUNKED = b""  # ``messages.sealed`` of a chunked message (a real seal is never empty)
ORPHAN_GRACE = timedelta(minutes=15)

_C = MessageChunk.__table__.c
_INSERT = RawStatement(
    "INSERT INTO message_chunks (message_uuid, seq, mailbox_id, created_at, data) VALUES (?, ?, ?, ?, ?)",
    (_C.message_uuid, _C.seq, _C.mailbox_id, _C.created_at, _C.data))
_SELECT = RawStatement("SELECT data FROM message_chunks WHERE mailbox_id = ? AND message_uuid = ? ORDER BY seq",
                       (_C.mailbox_id, _C.message_uuid), (_C.data,))
_DELETE = RawStatement("DELETE FROM message_chunks WHERE mailbox_id = ? AND message_uuid = ?",
                       (_C.mailbox_id, _C.message_uuid))
_ORPHANS = RawStatement(
    "DELETE FROM message_chunks WHERE created_at < ?"
    " AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.mailbox_id = message_chunks.mailbox_id"
    " AND m.uuid = message_chunks.message_uuid)", (_C.created_at,))


class Sealed(Protocol):
    """A sealed copy (:class:`gateway.mailstore.sealed.SealedCopy`) as this module sees it."""

    @property
    def uuid(self) -> str: ...
    @property
    def mailbox_id(self) -> int: ...
    @property
    def sealed(self) -> bytes: ...
    def chunked(self) -> Self: ...


C = TypeVar("C", bound=Sealed)


def store(db: Database, copy: C, now: datetime) -> C:
    """Write a large copy's pieces (each durably, in its own transaction); the copy to insert.

    Small copies are returned unchanged. On failure the pieces already written are removed
    (best effort; the orphan job removes what is left).
    """
    if len(copy.sealed) <= CHUNK_ABOVE:
        return copy
    data = memoryview(copy.sealed)
    try:
        for seq, start in enumerate(range(0, len(data), CHUNK_SIZE)):
            if seq:
                time.sleep(CHUNK_PAUSE_S)
            with db.write() as session:
                _INSERT.execute(session, copy.uuid, seq, copy.mailbox_id, now,
                                bytes(data[start:start + CHUNK_SIZE]))
    except BaseException:
        discard(db, copy.mailbox_id, copy.uuid)
        raise
    return copy.chunked()


def discard(db: Database, mailbox_id: int, uuid: str) -> None:
    """Remove a message's pieces (its row was never written); never raises."""
    try:
        with db.write() as session:
            _DELETE.execute(session, mailbox_id, uuid)
    except Exception:  # noqa: S110 - the orphan job removes them later
        pass


def whole(session: Runner, mailbox_id: int, uuid: str, sealed: bytes) -> bytes:
    """The sealed bytes of a message row of ``mailbox_id``: the row's own, or its pieces joined."""
    if sealed != CHUNKED:
        return sealed
    return b"".join(row[0] for row in _SELECT.all(session, mailbox_id, uuid))


def remove_orphans(session: Session, now: datetime, grace: timedelta = ORPHAN_GRACE) -> int:
    """Delete pieces older than ``grace`` whose message row does not exist; returns how many."""
    return int(_ORPHANS.execute(session, now - grace).rowcount)
