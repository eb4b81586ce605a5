"""Patients by INS without the INS in the database (issue 20).

A patient row holds ``ins_index`` = ``HMAC-SHA256(index key, "ins", INS)``
(:mod:`crypto.blind_index`, purpose :data:`PURPOSE`) for lookups, ``ins_index_version``, and
``ins_sealed``: the INS sealed under the patient's own data key, for display to whoever may see
it (the admin, a mediator, the patient). Purging a space shreds its data keys, and with them
the sealed INS; the keyed index stays, so the purged state still answers a lookup by INS.

Every lookup by INS goes through the directory (``ins_directory``, issue 23): the digests under
every index key version the key file holds (a rotation re-indexes in batches meanwhile) give the
mailbox and the patient, then the patient row is read by ``(mailbox_id, id)`` (one shard each on
a distributed store). A row a database from an older release has not converted yet
(:mod:`gateway.accounts.ins_conversion`) is not in the directory and is found by its clear
``ins`` column instead, a query on every shard: only while the conversion is not recorded as
complete (:func:`conversion_complete`, table ``ins_conversion_complete``, migration 0021); once
it is, every row is in the directory and a miss there is the answer. A converted or new row's
``ins`` column holds :func:`placeholder` (``#<id>``), which is never a valid INS. The directory
row is written in the transaction that provisions the space (:func:`enter`; the bulk import
writes the same rows); its primary key keeps an INS to one space.

:func:`match` (a ``WHERE`` clause on ``patients`` alone) remains for tests and reports.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select, text
from sqlalchemy.orm import Session

from crypto.blind_index import IndexKeyring
from crypto.envelope import DecryptionError
from gateway.store.keys import IndexKeyMissing, KeyService, KeyUnavailable, MailboxKey
from gateway.store.models import DataKey, InsDirectory, Mailbox, Patient
from gateway.store.raw import RawStatement, Runner
from routing.ins import mask_ins

PURPOSE = "ins"
PLACEHOLDER_PREFIX = "#"
UNKNOWN_INS = "•" * 15
"""Shown instead of an INS that can no longer be opened (a purged space's keys are shredded)."""


def placeholder(patient_id: int) -> str:
    """What a converted or new row's clear ``ins`` column holds: unique, and no INS."""
    return f"{PLACEHOLDER_PREFIX}{patient_id}"


def reserve_ids(session: Session, table: str, n: int) -> list[int]:
    """``n`` new ids of ``table`` (``mailboxes`` or ``patients``) before inserting the rows: a
    PostgreSQL sequence, or SQLite's max + 1 in the write transaction (BEGIN IMMEDIATE: nobody
    else allocates meanwhile)."""
    if table not in ("mailboxes", "patients"):
        raise ValueError(table)
    if session.get_bind().dialect.name == "postgresql":
        seq = session.execute(text("SELECT pg_get_serial_sequence(:t, 'id')"), {"t": table}).scalar_one()
        rows = session.execute(text("SELECT nextval(:s) FROM generate_series(1, :n)"), {"s": seq, "n": n})
        return [int(r[0]) for r in rows]
    model = Mailbox if table == "mailboxes" else Patient
    start = int(session.execute(select(func.coalesce(func.max(model.id), 0))).scalar_one())
    return list(range(start + 1, start + 1 + n))


def is_clear(value: str | None) -> bool:
    """Whether an ``ins`` column value is a clear INS (a row not converted yet)."""
    return bool(value) and not str(value).startswith(PLACEHOLDER_PREFIX)


def digests(index: IndexKeyring, ins: str) -> list[bytes]:
    """The INS's keyed index under every held version, newest first."""
    return [d.digest for d in index.digests(PURPOSE, ins)]


def match(keys: KeyService, session: Session, ins: str) -> ColumnElement[bool]:
    """``WHERE`` clause finding the patient with this (normalised) INS, converted or not."""
    found = digests(keys.index_keys(session), ins)
    return or_(Patient.ins_index.in_(found), Patient.ins == ins)


_ACTIVE_INDEX = RawStatement("SELECT max(version) FROM index_key_checks")


def after_miss(keys: KeyService, session: Session, runner: Runner | None = None) -> bool:
    """After a lookup found nothing: does the key file lack the database's current index key
    version (an index key rotation started from another node)? Then re-read it (rate-limited);
    True when it now holds it (the caller looks again), :class:`IndexKeyMissing` when it still
    does not (the caller answers a temporary failure rather than "no such patient")."""
    row = _ACTIVE_INDEX.first(runner if runner is not None else session)
    active = None if row is None or row[0] is None else int(row[0])
    index = keys.ring.index
    if active is None or (index is not None and index.has(active)):
        return False
    index = keys.index_keys(session, active)
    if not index.has(active):
        raise IndexKeyMissing(f"{keys.source} lacks index-v{active}, the database's current index key: copy the "
                              "current key file here (it is re-read on demand and on SIGHUP)")
    return True


def enter(session: Session, patient: Patient) -> None:
    """Add the directory row of a patient :func:`fill` indexed, in the caller's transaction
    (provisioning: an INS that already has a space fails on the directory's primary key)."""
    if patient.ins_index is None or patient.ins_index_version is None:
        raise ValueError("the patient has no keyed index")
    session.add(InsDirectory(ins_index=patient.ins_index, ins_index_version=patient.ins_index_version,
                             mailbox_id=patient.mailbox_id, patient_id=patient.id))


_COMPLETE = RawStatement("SELECT id FROM ins_conversion_complete WHERE id = 1")


def conversion_complete(runner: Runner) -> bool:
    """Whether every patient row is in the directory (no row is found by its clear INS alone):
    recorded by migration 0021 or ``gateway db convert-ins`` (:func:`gateway.accounts.
    ins_conversion.record_complete`); a reference table, read on a directory miss only."""
    return _COMPLETE.first(runner) is not None


def _lookup(session: Session, keys: KeyService, ins: str) -> Patient | None:
    found = digests(keys.index_keys(session), ins)
    hit = session.execute(select(InsDirectory.mailbox_id, InsDirectory.patient_id)
                          .where(InsDirectory.ins_index.in_(found))).first()
    if hit is not None:
        return session.get(Patient, (hit[0], hit[1]))
    if conversion_complete(session):
        return None
    return session.execute(select(Patient).where(Patient.ins == ins)).scalar_one_or_none()  # not converted yet


def find(session: Session, keys: KeyService, ins: str) -> Patient | None:
    """The patient with this (normalised) INS, through the directory (or clear, unconverted)."""
    patient = _lookup(session, keys, ins)
    if patient is None and after_miss(keys, session):
        patient = _lookup(session, keys, ins)
    return patient


def find_ids(session: Session, index: IndexKeyring, ins: Sequence[str]) -> dict[str, int]:
    """Of ``ins`` (normalised), those that have a space, with their patient id (bulk import)."""
    by_digest: dict[bytes, str] = {}
    for one in ins:
        for d in digests(index, one):
            by_digest[d] = one
    found: dict[str, int] = {}
    chunk_size = 2000
    values = list(by_digest)
    for i in range(0, len(values), chunk_size):
        chunk = values[i:i + chunk_size]
        for digest, row_id in session.execute(select(InsDirectory.ins_index, InsDirectory.patient_id)
                                              .where(InsDirectory.ins_index.in_(chunk))).tuples():
            if digest is not None:
                found[by_digest[bytes(digest)]] = row_id
    clear = [] if conversion_complete(session) else list(ins)  # rows not converted yet, by their clear INS
    for i in range(0, len(clear), chunk_size):
        for value, row_id in session.execute(select(Patient.ins, Patient.id)
                                             .where(Patient.ins.in_(clear[i:i + chunk_size]))).tuples():
            found[value] = row_id
    return found


# ---------------------------------------------------------------------------- RCPT, driver level

RCPT_COLUMNS = ("SELECT p.id, p.state, p.mailbox_id, (SELECT max(k.id) FROM data_keys k"
                 " WHERE k.mailbox_id = p.mailbox_id), m.quota_storage_kib, m.quota_messages"
                 " FROM patients p LEFT JOIN mailboxes m ON m.id = p.mailbox_id WHERE ")
_P = Patient.__table__.c
_RCPT_PATIENT = RawStatement(f"{RCPT_COLUMNS}p.mailbox_id = ? AND p.id = ?", (_P.mailbox_id, _P.id))
_RCPT_CLEAR = RawStatement(f"{RCPT_COLUMNS}p.ins = ?", (_P.ins,))
_rcpt_statements: dict[int, RawStatement] = {}


def rcpt_statement(versions: int) -> RawStatement:
    """The directory half of the RCPT-time lookup with ``versions`` digests: ``(mailbox_id,
    patient_id)`` by primary-key equalities on the keyed index (one shard per digest)."""
    statement = _rcpt_statements.get(versions)
    if statement is None:
        marks = ", ".join("?" * versions)
        statement = RawStatement(f"SELECT mailbox_id, patient_id FROM ins_directory WHERE ins_index IN ({marks})",  # noqa: S608
                                 [InsDirectory.__table__.c.ins_index] * versions)
        _rcpt_statements[versions] = statement
    return statement


def rcpt_row(runner: Runner, index: IndexKeyring, ins: str) -> tuple[Any, ...] | None:
    """``(id, state, mailbox_id, newest data key id, quota_storage_kib, quota_messages)``: the
    directory, then the patient with its mailbox by ``(mailbox_id, id)``; a row not converted
    yet (no directory row) by its clear INS, until the conversion is recorded complete."""
    found = digests(index, ins)
    hit = rcpt_statement(len(found)).first(runner, *found)
    if hit is not None:
        return _RCPT_PATIENT.first(runner, hit[0], hit[1])
    if conversion_complete(runner):
        return None
    return _RCPT_CLEAR.first(runner, ins)


# ---------------------------------------------------------------------------- sealing and display

def seal_ins(mk: MailboxKey, ins: str) -> bytes:
    return mk.seal("ins", "patient", ins.encode("ascii"))


def fill(patient: Patient, index: IndexKeyring, version: int, mk: MailboxKey, ins: str) -> None:
    """Set the keyed index and the sealed INS of a row (its ``ins`` column is the caller's)."""
    patient.ins_index = index.digest(PURPOSE, ins, version)
    patient.ins_index_version = version
    patient.ins_sealed = seal_ins(mk, ins)


def open_ins(session: Session, keys: KeyService, patient: Patient) -> str | None:
    """The patient's INS in clear (None: shredded with a purged space's keys)."""
    if is_clear(patient.ins):
        return patient.ins
    if patient.ins_sealed is None or patient.mailbox_id is None:
        return None
    try:
        mk = keys.for_mailbox(session, patient.mailbox_id)
        return mk.open("ins", "patient", patient.ins_sealed).decode("ascii")
    except (KeyUnavailable, DecryptionError):
        return None


def shown(session: Session, keys: KeyService, patient: Patient, *, full: bool = True) -> str:
    """The INS for display: full or masked; :data:`UNKNOWN_INS` once it cannot be opened."""
    value = open_ins(session, keys, patient)
    if value is None:
        return UNKNOWN_INS
    return value if full else mask_ins(value)


def open_many(session: Session, keys: KeyService, rows: Iterable[tuple[int, str, bytes | None, int | None]]
              ) -> dict[int, str | None]:
    """INS of many rows ``(id, ins column, ins_sealed, mailbox_id)`` for a listing: the data keys
    are read in one query (keys of the same page unwrapped once each)."""
    rows = list(rows)
    mailbox_ids = sorted({m for _, value, sealed, m in rows if not is_clear(value) and sealed and m is not None})
    newest: dict[int, int] = {}
    if mailbox_ids:
        for owner, newer in session.execute(
                select(DataKey.mailbox_id, DataKey.id).join(Mailbox, Mailbox.id == DataKey.mailbox_id)
                .where(DataKey.mailbox_id.in_(mailbox_ids)).order_by(DataKey.id)).tuples():
            newest[int(owner)] = int(newer)
    out: dict[int, str | None] = {}
    for patient_id, value, sealed, mailbox_id in rows:
        if is_clear(value):
            out[patient_id] = value
            continue
        key_id = None if mailbox_id is None else newest.get(mailbox_id)
        if sealed is None or key_id is None or mailbox_id is None:
            out[patient_id] = None
            continue
        try:
            mk = keys.by_id(session, key_id, mailbox_id=mailbox_id)
            out[patient_id] = mk.open("ins", "patient", sealed).decode("ascii")
        except (KeyUnavailable, DecryptionError):
            out[patient_id] = None
    return out
