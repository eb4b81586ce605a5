"""Sealing and opening a mailbox's messages: the only module that names their purposes.

A stored message is two sealed blobs bound to the mailbox and to the message's uuid
(``crypto`` associated data): its bytes (purpose :data:`_MESSAGE`) and its summary (purpose
:data:`_SUMMARY`, the JSON of :mod:`gateway.mailstore.summaries`). Every reader, whatever
asks (the IMAP adapter, the patient web inbox, the export, the test kits), goes through
:func:`open_message` / :func:`open_summary` with the mailbox it acts for, and one ownership
rule is checked there (SPEC §8):

- the row's folder belongs to that mailbox (the row is read with its folder's mailbox id),
- and the data key the row names belongs to that mailbox too (a row swapped in from another
  mailbox, with its key reference, is refused before any decryption; the key is looked up in
  that mailbox only, one shard on a distributed store: a key not found there while the
  mailbox holds keys is another's; a mailbox without keys was shredded).

``tests/store/test_open_message.py`` checks that no other module names the purposes.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace

from sqlalchemy import select
from sqlalchemy.orm import Session

from crypto.envelope import DecryptionError
from gateway.mailstore.chunks import CHUNKED, whole
from gateway.store.keys import KeyNotFound, KeyService, KeyUnavailable, MailboxKey
from gateway.store.models import DataKey
from gateway.store.raw import Runner

_MESSAGE = "msg"
_SUMMARY = "summary"


class NotThisMailbox(DecryptionError):
    """The row or its data key belongs to another mailbox than the one the caller acts for."""


class KeyNotCached(LookupError):
    """Opening on a direct connection needs the data key in this process's cache."""


@dataclass(frozen=True)
class SealedCopy:
    """A message sealed for one mailbox before the write transaction (sealing holds no lock)."""

    key: MailboxKey
    uuid: str
    size: int
    sealed: bytes
    summary: bytes | None = None  # the sealed summary (None: computed on first read)

    @property
    def mailbox_id(self) -> int:
        return self.key.mailbox_id

    def chunked(self) -> SealedCopy:
        """This copy once its bytes are stored in pieces (:func:`gateway.mailstore.chunks.store`)."""
        return replace(self, sealed=CHUNKED)


@dataclass(frozen=True)
class SealedRow:
    """What opening a stored message needs, read from ``messages`` joined to ``folders``."""

    mailbox_id: int  # the mailbox of the row's folder
    uuid: str
    data_key_id: int | None
    sealed: bytes = b""  # may be left empty when only the summary is opened
    summary: bytes | None = None


def seal_copy(key: MailboxKey, raw: bytes | Sequence[bytes], summary: bytes | None = None) -> SealedCopy:
    """Seal ``raw`` (and its encoded summary) for ``key``'s mailbox under a fresh uuid; ``raw``
    may be given in parts (trace headers, then the message as received), sealed as one."""
    uuid = secrets.token_hex(16)
    size = len(raw) if isinstance(raw, bytes) else sum(len(p) for p in raw)
    return SealedCopy(key, uuid, size, key.seal(_MESSAGE, uuid, raw),
                      key.seal(_SUMMARY, uuid, summary) if summary is not None else None)


def _holds_keys(session: Session, mailbox_id: int) -> bool:
    return session.execute(select(DataKey.id).where(DataKey.mailbox_id == mailbox_id).limit(1)).first() is not None


def _key(runner: Runner, keys: KeyService, mailbox_id: int, row: SealedRow) -> MailboxKey:
    """The row's data key, after the ownership rule (see the module text)."""
    if row.mailbox_id != mailbox_id:
        raise NotThisMailbox("message does not belong to this mailbox")
    if row.data_key_id is None:
        raise KeyUnavailable("the mailbox's data keys were destroyed")
    mk = keys.cached(row.data_key_id)
    if mk is None:
        if not isinstance(runner, Session):  # a direct connection: the ORM path loads the key
            raise KeyNotCached(row.data_key_id)
        try:
            mk = keys.by_id(runner, row.data_key_id, mailbox_id=mailbox_id)
        except KeyNotFound:
            if _holds_keys(runner, mailbox_id):  # not shredded: the key named is another mailbox's
                raise NotThisMailbox("the message's key is not this mailbox's") from None
            raise
    if mk.mailbox_id != mailbox_id:  # the key reference was swapped in from another mailbox
        raise NotThisMailbox("message does not belong to this key's mailbox")
    return mk


def open_message(runner: Runner, keys: KeyService, mailbox_id: int, row: SealedRow) -> bytes:
    """The message's bytes, for a caller acting for ``mailbox_id``: the one way to read them.

    Raises :class:`NotThisMailbox` (a ``DecryptionError``) when the row is not that
    mailbox's, ``KeyUnavailable`` when its keys are gone, ``DecryptionError`` when the
    bytes were tampered with, and :class:`KeyNotCached` on a direct connection whose
    process does not hold the key yet.
    """
    mk = _key(runner, keys, mailbox_id, row)
    return mk.open(_MESSAGE, row.uuid, whole(runner, row.mailbox_id, row.uuid, row.sealed))


def open_summary(runner: Runner, keys: KeyService, mailbox_id: int, row: SealedRow) -> bytes | None:
    """The row's encoded summary (None when it has none yet), under the same rule."""
    mk = _key(runner, keys, mailbox_id, row)
    return None if row.summary is None else mk.open(_SUMMARY, row.uuid, row.summary)


def seal_summary(runner: Runner, keys: KeyService, mailbox_id: int, row: SealedRow, summary: bytes) -> bytes:
    """A summary computed after the fact (an older row), sealed to be stored with its message."""
    return _key(runner, keys, mailbox_id, row).seal(_SUMMARY, row.uuid, summary)


def reseal(runner: Runner, keys: KeyService, mailbox_id: int, row: SealedRow,
           to: MailboxKey) -> tuple[str, bytes, bytes | None]:
    """A copy of the row for another folder (IMAP COPY/MOVE): ``(uuid, sealed, summary)``
    under a new uuid and ``to``'s key, both opened under the rule above first."""
    raw = open_message(runner, keys, mailbox_id, row)
    summary = open_summary(runner, keys, mailbox_id, row)
    copy = seal_copy(to, raw, summary)
    return copy.uuid, copy.sealed, copy.summary
