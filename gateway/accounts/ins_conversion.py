"""Batch jobs over the patients' INS while the gateway serves (issue 20).

- :func:`convert_batch`: a row from a database made before migration 0013 holds its INS in
  clear; it gets its keyed index (the database's active index key), its INS sealed under the
  patient's data key, and ``#<id>`` in place of the clear INS. A purged space (keys shredded)
  gets only the index: its INS is dropped.
- :func:`reindex_batch`: an index key rotation moves each row's index to the new version,
  opening its sealed INS; a purged space cannot be re-indexed (nothing opens its INS any
  more) and keeps the old version until that version is retired, when its index is cleared.
- :func:`restore_batch`: before a downgrade below 0013, the clear INS is put back.

Each batch is read in a read transaction, computed without any lock, and written in one short
transaction that changes only rows still as they were read (as ``keys rotate`` re-wraps), so
deliveries, logins and lookups go on meanwhile; lookups find converted and unconverted rows
(:func:`gateway.accounts.ins_index.match`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table, and_, bindparam, func, select, update
from sqlalchemy.orm import Session

from crypto.blind_index import IndexKeyring
from crypto.envelope import DecryptionError, aad, open_sealed, seal
from crypto.keyring import MasterKeyring, WrappedKey
from gateway.accounts import ins_index
from gateway.store.db import Database
from gateway.store.keys import _dk_aad
from gateway.store.models import DataKey, Mailbox, Patient

DEFAULT_BATCH = 1000


@dataclass
class Batch:
    done: int = 0
    unopened: list[int] = field(default_factory=list)
    """Patient ids whose INS could not be sealed or opened (shredded keys), as the job says."""
    last_id: int | None = None
    seconds: float = 0.0


def _table() -> Table:
    table = Patient.__table__
    assert isinstance(table, Table)
    return table


def _newest_key() -> Any:
    return (select(func.max(DataKey.id)).where(DataKey.mailbox_id == Patient.mailbox_id)
            .correlate(Patient).scalar_subquery())


def _rows(db: Database, where: Any, after_id: int, limit: int, *extra: Any) -> Sequence[Any]:
    """Patients after ``after_id`` matching ``where``, with their mailbox uid and newest data key."""
    with db.read() as session:
        return session.execute(
            select(Patient.id, Mailbox.uid, DataKey.master_version, DataKey.wrapped, *extra)
            .outerjoin(Mailbox, Mailbox.id == Patient.mailbox_id)
            .outerjoin(DataKey, DataKey.id == _newest_key())
            .where(where, Patient.id > after_id).order_by(Patient.id).limit(limit)).all()


def _data_key(ring: MasterKeyring, uid: str | None, version: int | None, wrapped: bytes | None) -> bytes | None:
    if uid is None or version is None or wrapped is None:
        return None
    try:
        return ring.unwrap(WrappedKey(version, wrapped), _dk_aad(uid))
    except DecryptionError:
        return None


def _write(db: Database, statement: Any, params: list[dict[str, Any]]) -> None:
    if params:
        with db.write() as session:
            session.connection().execute(statement, params)


# ---------------------------------------------------------------------------- conversion

def pending_conversion(session: Session) -> int:
    """Rows still holding a clear INS (not converted yet)."""
    return int(session.execute(select(func.count()).select_from(Patient)
                               .where(~Patient.ins.startswith(ins_index.PLACEHOLDER_PREFIX))).scalar_one())


def convert_batch(db: Database, ring: MasterKeyring, index: IndexKeyring, version: int, *, after_id: int,
                  limit: int = DEFAULT_BATCH) -> Batch:
    """Convert up to ``limit`` rows with a clear INS and id > ``after_id``."""
    started = time.perf_counter()
    out = Batch()
    rows = _rows(db, ~Patient.ins.startswith(ins_index.PLACEHOLDER_PREFIX), after_id, limit, Patient.ins)
    if not rows:
        return out
    out.last_id = int(rows[-1][0])
    params = []
    for patient_id, uid, master_version, wrapped, clear in rows:
        key = _data_key(ring, uid, master_version, wrapped)
        sealed = None if key is None else seal(key, clear.encode("ascii"), aad("ins", uid, "patient"))
        if sealed is None:
            out.unopened.append(int(patient_id))
        params.append({"p_id": patient_id, "p_old": clear, "p_index": index.digest(ins_index.PURPOSE, clear, version),
                       "p_version": version, "p_sealed": sealed, "p_mark": ins_index.placeholder(int(patient_id))})
    table = _table()
    statement = (update(table).where(table.c.id == bindparam("p_id"), table.c.ins == bindparam("p_old"))
                 .values(ins_index=bindparam("p_index"), ins_index_version=bindparam("p_version"),
                         ins_sealed=bindparam("p_sealed"), ins=bindparam("p_mark")))
    _write(db, statement, params)
    out.done = len(params)
    out.seconds = time.perf_counter() - started
    return out


# ---------------------------------------------------------------------------- index key rotation

def pending_reindex(session: Session, target: int) -> dict[int, int]:
    """Rows indexed under another version than ``target`` that can be re-indexed, per version."""
    rows = session.execute(select(Patient.ins_index_version, func.count()).where(
        Patient.ins_index_version != target, Patient.ins_sealed.is_not(None))
        .group_by(Patient.ins_index_version)).all()
    return {int(v): int(n) for v, n in rows}


def stale_purged(session: Session, version: int) -> int:
    """Rows under ``version`` whose INS nothing opens any more (purged spaces)."""
    return int(session.execute(select(func.count()).select_from(Patient).where(
        Patient.ins_index_version == version, Patient.ins_sealed.is_(None))).scalar_one())


def reindex_batch(db: Database, ring: MasterKeyring, index: IndexKeyring, *, source: int, target: int,
                  after_id: int, limit: int = DEFAULT_BATCH) -> Batch:
    """Re-index up to ``limit`` rows under ``source`` (id > ``after_id``) with ``target``."""
    started = time.perf_counter()
    out = Batch()
    rows = _rows(db, and_(Patient.ins_index_version == source, Patient.ins_sealed.is_not(None)), after_id, limit,
                 Patient.ins_sealed)
    if not rows:
        return out
    out.last_id = int(rows[-1][0])
    params = []
    for patient_id, uid, master_version, wrapped, sealed in rows:
        key = _data_key(ring, uid, master_version, wrapped)
        try:
            ins = None if key is None else open_sealed(key, sealed, aad("ins", uid, "patient")).decode("ascii")
        except DecryptionError:
            ins = None
        if ins is None:
            out.unopened.append(int(patient_id))
            continue
        params.append({"p_id": patient_id, "p_source": source, "p_version": target,
                       "p_index": index.digest(ins_index.PURPOSE, ins, target)})
    table = _table()
    statement = (update(table)
                 .where(table.c.id == bindparam("p_id"), table.c.ins_index_version == bindparam("p_source"))
                 .values(ins_index=bindparam("p_index"), ins_index_version=bindparam("p_version")))
    _write(db, statement, params)
    out.done = len(params)
    out.seconds = time.perf_counter() - started
    return out


def forget_stale(session: Session, version: int) -> int:
    """Retiring index key ``version``: purged spaces still under it lose their index (nothing
    could find them once the key is gone). Returns how many."""
    result = session.execute(update(Patient).where(Patient.ins_index_version == version, Patient.ins_sealed.is_(None))
                             .values(ins_index=None, ins_index_version=None)
                             .execution_options(synchronize_session=False))
    return int(getattr(result, "rowcount", 0) or 0)


# ---------------------------------------------------------------------------- before a downgrade

def restore_batch(db: Database, ring: MasterKeyring, *, after_id: int, limit: int = DEFAULT_BATCH) -> Batch:
    """Put the clear INS back into ``ins`` for up to ``limit`` converted rows (id > ``after_id``),
    before a downgrade below migration 0013; a row whose INS nothing opens is reported."""
    started = time.perf_counter()
    out = Batch()
    rows = _rows(db, Patient.ins.startswith(ins_index.PLACEHOLDER_PREFIX), after_id, limit, Patient.ins_sealed,
                 Patient.ins)
    if not rows:
        return out
    out.last_id = int(rows[-1][0])
    params = []
    for patient_id, uid, master_version, wrapped, sealed, mark in rows:
        key = _data_key(ring, uid, master_version, wrapped)
        try:
            ins = None if key is None or sealed is None else open_sealed(
                key, sealed, aad("ins", uid, "patient")).decode("ascii")
        except DecryptionError:
            ins = None
        if ins is None:
            out.unopened.append(int(patient_id))
            continue
        params.append({"p_id": patient_id, "p_mark": mark, "p_ins": ins})
    table = _table()
    statement = (update(table).where(table.c.id == bindparam("p_id"), table.c.ins == bindparam("p_mark"))
                 .values(ins=bindparam("p_ins")))
    _write(db, statement, params)
    out.done = len(params)
    out.seconds = time.perf_counter() - started
    return out


def run(step: Callable[[int], Batch], *, on_batch: Callable[[Batch], None] | None = None,
        pause: float = 0.0) -> Batch:
    """Run ``step(after_id)`` until nothing is left; totals in one :class:`Batch`."""
    total = Batch()
    started = time.perf_counter()
    after = 0
    while True:
        batch = step(after)
        if batch.last_id is None:
            break
        after = batch.last_id
        total.done += batch.done
        total.unopened.extend(batch.unopened)
        total.last_id = batch.last_id
        if on_batch is not None:
            on_batch(batch)
        if pause:
            time.sleep(pause)
    total.seconds = time.perf_counter() - started
    return total
