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
(:func:`gateway.accounts.ins_index.find`). The INS directory (issue 23) follows in the same
transaction: a converted row enters it, a re-indexed row's entry moves to its new index, and
retiring an index key version removes the entries of the purged spaces still under it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Table, and_, bindparam, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from crypto.blind_index import IndexKeyring
from crypto.envelope import DecryptionError, aad, open_sealed, seal
from crypto.keyring import MasterKeyring, WrappedKey
from gateway.accounts import ins_index
from gateway.store.db import SQLITE_BUSY_TIMEOUT_MS, Database
from gateway.store.keys import _dk_aad
from gateway.store.models import DataKey, InsConversionComplete, InsDirectory, Mailbox, Patient

DEFAULT_BATCH = 1000
SCRUB_PATIENCE_S = 10.0  # a busy TRUNCATE checkpoint tried again for so long (see scrub)
SCRUB_RETRY_S = 0.02


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
            .outerjoin(DataKey, and_(DataKey.mailbox_id == Patient.mailbox_id, DataKey.id == _newest_key()))
            .where(where, Patient.id > after_id).order_by(Patient.id).limit(limit)).all()


def _data_key(ring: MasterKeyring, uid: str | None, version: int | None, wrapped: bytes | None) -> bytes | None:
    if uid is None or version is None or wrapped is None:
        return None
    try:
        return ring.unwrap(WrappedKey(version, wrapped), _dk_aad(uid))
    except DecryptionError:
        return None


def _enter(db: Database) -> Any:
    """Directory rows ``p_index, p_version, p_mailbox, p_patient``; one already there is kept (a
    row another node converted or re-indexed meanwhile)."""
    dialect = postgresql if not db.is_sqlite else sqlite
    return (dialect.insert(InsDirectory.__table__)
            .values(ins_index=bindparam("p_index"), ins_index_version=bindparam("p_version"),
                    mailbox_id=bindparam("p_mailbox"), patient_id=bindparam("p_patient"))
            .on_conflict_do_nothing(index_elements=["ins_index"]))


def _directory(params: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"p_index": p["p_index"], "p_version": p["p_version"], "p_mailbox": p["p_mailbox"],
             "p_patient": p["p_id"]} for p in params]


def _write(db: Database, *steps: tuple[Any, list[dict[str, Any]]]) -> None:
    """One short write transaction (each statement with its parameters). On SQLite with
    ``secure_delete`` for it: the space of the cells replaced (the clear INS, its index entry)
    is overwritten with zeros, so the INS does not linger in the file's free space
    (https://sqlite.org/pragma.html#pragma_secure_delete)."""
    if not steps or not steps[0][1]:
        return
    with db.write() as session:
        conn = session.connection()
        previous = conn.exec_driver_sql("PRAGMA secure_delete").scalar() if db.is_sqlite else None
        if db.is_sqlite:
            conn.exec_driver_sql("PRAGMA secure_delete=ON")
        try:
            for statement, params in steps:
                if params:
                    conn.execute(statement, params)
        finally:
            if db.is_sqlite:
                conn.exec_driver_sql(f"PRAGMA secure_delete={int(previous or 0)}")


def scrub(db: Database, *, patience: float = SCRUB_PATIENCE_S) -> bool:
    """After a conversion, on SQLite: a TRUNCATE checkpoint, so the main file holds the pages as
    rewritten and the WAL no longer holds older page images (with the clear INS). True when it
    completed. SQLite answers SQLITE_BUSY at once, without the busy handler, when another
    checkpoint is running (the gateway's own background one after each write;
    https://sqlite.org/c3ref/wal_checkpoint_v2.html), so a busy answer is tried again for up to
    ``patience`` seconds; a reader holding an old snapshot longer than that makes it give up
    (run it again later). PostgreSQL: nothing here (``pg_dump`` sees only live rows;
    ``VACUUM FULL patients`` rewrites the table's files)."""
    if not db.is_sqlite:
        return True
    deadline = time.monotonic() + patience
    conn = db.engine.raw_connection()
    try:
        cur = conn.cursor()
        # Readers and writers are waited for by the busy handler: within the same patience.
        cur.execute(f"PRAGMA busy_timeout={max(1, int(patience * 1000))}")
        while True:
            busy, _frames, _done = cur.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if not busy:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(SCRUB_RETRY_S)
    finally:
        conn.cursor().execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        conn.close()


# ---------------------------------------------------------------------------- conversion

def pending_conversion(session: Session) -> int:
    """Rows still holding a clear INS (not converted yet)."""
    return int(session.execute(select(func.count()).select_from(Patient)
                               .where(~Patient.ins.startswith(ins_index.PLACEHOLDER_PREFIX))).scalar_one())


def record_complete(session: Session, now: datetime) -> int:
    """Rows still holding a clear INS; when none is left, that is recorded
    (``ins_conversion_complete``, in the caller's transaction): lookups by INS then stop reading
    the clear column on a directory miss (:func:`gateway.accounts.ins_index.conversion_complete`)."""
    left = pending_conversion(session)
    if not left and session.get(InsConversionComplete, 1) is None:
        session.add(InsConversionComplete(id=1, completed_at=now))
    return left


def convert_batch(db: Database, ring: MasterKeyring, index: IndexKeyring, version: int, *, after_id: int,
                  limit: int = DEFAULT_BATCH) -> Batch:
    """Convert up to ``limit`` rows with a clear INS and id > ``after_id``."""
    started = time.perf_counter()
    out = Batch()
    rows = _rows(db, ~Patient.ins.startswith(ins_index.PLACEHOLDER_PREFIX), after_id, limit, Patient.ins,
                 Patient.mailbox_id)
    if not rows:
        return out
    out.last_id = int(rows[-1][0])
    params = []
    for patient_id, uid, master_version, wrapped, clear, mailbox_id in rows:
        key = _data_key(ring, uid, master_version, wrapped)
        sealed = None if key is None else seal(key, clear.encode("ascii"), aad("ins", uid, "patient"))
        if sealed is None:
            out.unopened.append(int(patient_id))
        params.append({"p_id": patient_id, "p_old": clear, "p_index": index.digest(ins_index.PURPOSE, clear, version),
                       "p_version": version, "p_sealed": sealed, "p_mark": ins_index.placeholder(int(patient_id)),
                       "p_mailbox": mailbox_id})
    table = _table()
    statement = (update(table).where(table.c.mailbox_id == bindparam("p_mailbox"), table.c.id == bindparam("p_id"),
                                     table.c.ins == bindparam("p_old"))
                 .values(ins_index=bindparam("p_index"), ins_index_version=bindparam("p_version"),
                         ins_sealed=bindparam("p_sealed"), ins=bindparam("p_mark")))
    _write(db, (statement, params), (_enter(db), _directory(params)))
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
                 Patient.ins_sealed, Patient.mailbox_id, Patient.ins_index)
    if not rows:
        return out
    out.last_id = int(rows[-1][0])
    params = []
    for patient_id, uid, master_version, wrapped, sealed, mailbox_id, old_index in rows:
        key = _data_key(ring, uid, master_version, wrapped)
        try:
            ins = None if key is None else open_sealed(key, sealed, aad("ins", uid, "patient")).decode("ascii")
        except DecryptionError:
            ins = None
        if ins is None:
            out.unopened.append(int(patient_id))
            continue
        params.append({"p_id": patient_id, "p_source": source, "p_version": target,
                       "p_index": index.digest(ins_index.PURPOSE, ins, target), "p_mailbox": mailbox_id,
                       "p_old": old_index})
    table = _table()
    statement = (update(table)
                 .where(table.c.mailbox_id == bindparam("p_mailbox"), table.c.id == bindparam("p_id"),
                        table.c.ins_index_version == bindparam("p_source"))
                 .values(ins_index=bindparam("p_index"), ins_index_version=bindparam("p_version")))
    directory = InsDirectory.__table__.c
    leave = delete(InsDirectory).where(directory.ins_index == bindparam("p_old"),
                                                 directory.patient_id == bindparam("p_patient"))
    _write(db, (statement, params), (leave, [{"p_old": p["p_old"], "p_patient": p["p_id"]} for p in params]),
           (_enter(db), _directory(params)))
    out.done = len(params)
    out.seconds = time.perf_counter() - started
    return out


def forget_stale(session: Session, version: int) -> int:
    """Retiring index key ``version``: purged spaces still under it lose their index (nothing
    could find them once the key is gone), and their directory entries go. Returns how many."""
    stale = session.execute(select(Patient.ins_index).where(
        Patient.ins_index_version == version, Patient.ins_sealed.is_(None), Patient.ins_index.is_not(None))).scalars()
    for digest in stale:
        session.execute(delete(InsDirectory).where(InsDirectory.ins_index == digest)
                        .execution_options(synchronize_session=False))
    result = session.execute(update(Patient).where(Patient.ins_index_version == version, Patient.ins_sealed.is_(None))
                             .values(ins_index=None, ins_index_version=None)
                             .execution_options(synchronize_session=False))
    return int(getattr(result, "rowcount", 0) or 0)


# ---------------------------------------------------------------------------- before a downgrade

def restore_batch(db: Database, ring: MasterKeyring, *, after_id: int, limit: int = DEFAULT_BATCH) -> Batch:
    """Put the clear INS back into ``ins`` for up to ``limit`` converted rows (id > ``after_id``),
    before a downgrade below migration 0013; a row whose sealed INS does not open is reported
    (a purged space, whose INS is shredded, is left as ``#<id>``)."""
    started = time.perf_counter()
    out = Batch()
    rows = _rows(db, and_(Patient.ins.startswith(ins_index.PLACEHOLDER_PREFIX), Patient.ins_sealed.is_not(None)),
                 after_id, limit, Patient.ins_sealed, Patient.ins)
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
    _write(db, (statement, params))
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
