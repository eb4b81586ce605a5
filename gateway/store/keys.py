"""Mailboxes and their data keys: creation, unwrapping (cached), rotation, shredding (SPEC §8).

A data key is wrapped by the current master key version with associated data naming
its mailbox, so a wrapped key copied onto another mailbox does not unwrap.
Shredding deletes the wrapped keys: the mailbox's ciphertexts become unreadable.
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from crypto.envelope import DecryptionError, aad, new_data_key, open_sealed, seal
from crypto.keyring import MasterKeyring, WrappedKey
from gateway.store.models import DataKey, Mailbox


def _dk_aad(mailbox_uid: str) -> bytes:
    return aad("dk", mailbox_uid, "data-key")


class KeyUnavailable(Exception):
    """The data key is gone (shredded) or cannot be unwrapped with the configured master keys."""


@dataclass(frozen=True)
class MailboxKey:
    mailbox_id: int
    mailbox_uid: str
    data_key_id: int
    key: bytes

    def seal(self, purpose: str, item: str, plaintext: bytes) -> bytes:
        return seal(self.key, plaintext, aad(purpose, self.mailbox_uid, item))

    def open(self, purpose: str, item: str, blob: bytes) -> bytes:
        return open_sealed(self.key, blob, aad(purpose, self.mailbox_uid, item))


class KeyService:
    """Creates mailboxes with data keys and hands out unwrapped keys (small LRU cache)."""

    def __init__(self, ring: MasterKeyring, *, cache_size: int = 4096) -> None:
        self.ring = ring
        self._cache: OrderedDict[int, MailboxKey] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def create_mailbox(self, session: Session, kind: str, *, now: datetime | None = None) -> MailboxKey:
        at = now or datetime.now(UTC)
        mailbox = Mailbox(uid=secrets.token_hex(16), kind=kind, created_at=at)
        session.add(mailbox)
        session.flush()
        key = new_data_key()
        wrapped = self.ring.wrap(key, _dk_aad(mailbox.uid))
        row = DataKey(mailbox_id=mailbox.id, master_version=wrapped.version, wrapped=wrapped.blob, created_at=at)
        session.add(row)
        session.flush()
        mk = MailboxKey(mailbox.id, mailbox.uid, row.id, key)
        self._remember(mk)
        return mk

    def _remember(self, mk: MailboxKey) -> None:
        with self._lock:
            self._cache[mk.data_key_id] = mk
            self._cache.move_to_end(mk.data_key_id)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def forget(self, data_key_ids: list[int] | None = None) -> None:
        with self._lock:
            if data_key_ids is None:
                self._cache.clear()
            else:
                for key_id in data_key_ids:
                    self._cache.pop(key_id, None)

    def cached(self, data_key_id: int) -> MailboxKey | None:
        """The unwrapped key if this process holds it (no database access)."""
        with self._lock:
            return self._cache.get(data_key_id)

    def by_id(self, session: Session, data_key_id: int) -> MailboxKey:
        with self._lock:
            cached = self._cache.get(data_key_id)
        if cached is not None:
            return cached
        row = session.execute(
            select(DataKey, Mailbox.uid).join(Mailbox, Mailbox.id == DataKey.mailbox_id)
            .where(DataKey.id == data_key_id)
        ).first()
        if row is None:
            raise KeyUnavailable("data key not found (mailbox purged?)")
        data_key, mailbox_uid = row
        try:
            key = self.ring.unwrap(WrappedKey(data_key.master_version, data_key.wrapped), _dk_aad(mailbox_uid))
        except DecryptionError:
            raise KeyUnavailable("data key cannot be unwrapped with the configured master keys") from None
        mk = MailboxKey(data_key.mailbox_id, mailbox_uid, data_key.id, key)
        self._remember(mk)
        return mk

    def system_key(self, session: Session) -> MailboxKey:
        """The gateway's own data key (DKIM private keys, queue entries), created on first use."""
        mailbox_id = session.execute(
            select(Mailbox.id).where(Mailbox.kind == "system").order_by(Mailbox.id).limit(1)
        ).scalar()
        if mailbox_id is None:
            return self.create_mailbox(session, "system")
        return self.for_mailbox(session, mailbox_id)

    def for_mailbox(self, session: Session, mailbox_id: int) -> MailboxKey:
        """The mailbox's current data key (the newest one)."""
        key_id = session.execute(
            select(DataKey.id).where(DataKey.mailbox_id == mailbox_id).order_by(DataKey.id.desc()).limit(1)
        ).scalar()
        if key_id is None:
            raise KeyUnavailable("mailbox has no data key (purged?)")
        return self.by_id(session, key_id)

    def rewrap_all(self, session: Session, *, batch: int = 1000) -> int:
        """Re-wrap every data key not under the current master version; returns how many."""
        current = self.ring.current_version
        done = 0
        while True:
            rows = session.execute(
                select(DataKey, Mailbox.uid).join(Mailbox, Mailbox.id == DataKey.mailbox_id)
                .where(DataKey.master_version != current).order_by(DataKey.id).limit(batch)
            ).all()
            if not rows:
                return done
            for data_key, mailbox_uid in rows:
                new = self.ring.rewrap(WrappedKey(data_key.master_version, data_key.wrapped), _dk_aad(mailbox_uid))
                session.execute(
                    update(DataKey).where(DataKey.id == data_key.id)
                    .values(master_version=new.version, wrapped=new.blob)
                )
                done += 1
            session.flush()
            session.expunge_all()

    def shred(self, session: Session, mailbox_id: int) -> int:
        """Crypto-shredding: destroy the mailbox's wrapped data keys. Returns how many."""
        ids = list(session.execute(select(DataKey.id).where(DataKey.mailbox_id == mailbox_id)).scalars())
        session.execute(delete(DataKey).where(DataKey.mailbox_id == mailbox_id))
        self.forget(ids)
        return len(ids)
