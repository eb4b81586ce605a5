"""Master key rotation in small batches (``gateway keys rotate``; SPEC §8, issue 14).

The keys are read and re-wrapped outside any write lock, then written in one short
transaction that only changes rows still under the version they were read with.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.orm import Session

from crypto.envelope import DecryptionError
from crypto.keyring import MasterKeyring, WrappedKey
from gateway.store.db import Database
from gateway.store.keys import _dk_aad, count_under, versions_in_use
from gateway.store.models import DataKey, Mailbox


@dataclass
class BatchResult:
    rewrapped: int = 0
    failed: list[int] = field(default_factory=list)
    """Ids of data keys that did not unwrap (reported, left as they are)."""
    last_id: int | None = None
    """Highest id looked at; None when nothing was left under the source version after ``after_id``."""
    read_s: float = 0.0
    crypto_s: float = 0.0
    write_s: float = 0.0
    """The write transaction, waiting for the lock included (``lock_wait_s``)."""
    lock_wait_s: float = 0.0


def pending_counts(session: Session, target: int) -> dict[int, int]:
    """Data keys not yet under ``target``, per version."""
    return {v: count_under(session, v) for v in versions_in_use(session) if v != target}


def rewrap_batch(db: Database, ring: MasterKeyring, *, source: int, target: int, after_id: int,
                 limit: int) -> BatchResult:
    """Re-wrap up to ``limit`` data keys under ``source`` with id > ``after_id`` to ``target``.

    The keys are read (read transaction) and re-wrapped without holding the write lock; the
    write transaction only updates rows still wrapped with ``source`` (a key shredded or
    re-wrapped meanwhile by someone else is left alone), so it lasts a few milliseconds.
    """
    out = BatchResult()
    t0 = time.perf_counter()
    with db.read() as session:
        rows = session.execute(
            select(DataKey.id, DataKey.wrapped, Mailbox.uid).join(Mailbox, Mailbox.id == DataKey.mailbox_id)
            .where(DataKey.master_version == source, DataKey.id > after_id).order_by(DataKey.id).limit(limit)
        ).all()
    t1 = time.perf_counter()
    out.read_s = t1 - t0
    if not rows:
        return out
    out.last_id = int(rows[-1][0])
    params = []
    for key_id, blob, uid in rows:
        try:
            new = ring.rewrap(WrappedKey(source, blob), _dk_aad(uid), version=target)
        except DecryptionError:
            out.failed.append(int(key_id))
            continue
        params.append({"k_id": key_id, "k_blob": new.blob})
    t2 = time.perf_counter()
    out.crypto_s = t2 - t1
    if params:
        table = DataKey.__table__
        assert isinstance(table, Table)
        statement = (update(table).where(table.c.id == bindparam("k_id"), table.c.master_version == source)
                     .values(master_version=target, wrapped=bindparam("k_blob")))
        with db.write() as session:
            conn = session.connection()  # SQLite: BEGIN IMMEDIATE, waiting for the write lock
            out.lock_wait_s = time.perf_counter() - t2
            conn.execute(statement, params)
        out.rewrapped = len(params)
    out.write_s = time.perf_counter() - t2
    return out
