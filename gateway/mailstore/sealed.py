"""A message sealed for one mailbox, before any transaction (sealing holds no lock).

The delivery pipeline seals each recipient's copy with :func:`seal_copy`; the copy is then
stored whole (:func:`gateway.mailstore.messages.insert_sealed`) or, when large, in pieces
first (:func:`gateway.mailstore.chunks.store`).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from gateway.store.keys import MailboxKey


@dataclass(frozen=True)
class SealedCopy:
    """A message sealed for one mailbox before the write transaction (sealing holds no lock)."""

    key: MailboxKey
    uuid: str
    size: int
    sealed: bytes


def seal_copy(key: MailboxKey, raw: bytes) -> SealedCopy:
    uuid = secrets.token_hex(16)
    return SealedCopy(key, uuid, len(raw), key.seal("msg", uuid, raw))
