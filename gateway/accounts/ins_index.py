"""Patients by INS without the INS in the database (issue 20).

A patient row holds ``ins_index`` = ``HMAC-SHA256(index key, "ins", INS)``
(:mod:`crypto.blind_index`, purpose :data:`PURPOSE`) for lookups, ``ins_index_version``, and
``ins_sealed``: the INS sealed under the patient's own data key, for display to whoever may see
it (the admin, a mediator, the patient). Purging a space shreds its data keys, and with them
the sealed INS; the keyed index stays, so the purged state still answers a lookup by INS.

Every lookup by INS goes through :func:`match`: the digests under every index key version the
key file holds (a rotation re-indexes in batches meanwhile), or the clear ``ins`` column of a
row a database from an older release has not converted yet (:mod:`gateway.accounts.ins_conversion`).
A converted or new row's ``ins`` column holds :func:`placeholder` (``#<id>``), which is never
a valid INS.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select, text
from sqlalchemy.orm import Session

from crypto.blind_index import IndexKeyring
from crypto.envelope import DecryptionError
from gateway.store.keys import KeyService, KeyUnavailable, MailboxKey
from gateway.store.models import DataKey, Mailbox, Patient
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


def lookup_versions_missing(keys: KeyService, session: Session) -> bool:
    """After a miss: re-read the key file if the database records an index version it lacks.
    True when the keys changed (the caller looks again)."""
    from gateway.store.index_keys import recorded_index_checks

    before = keys.ring.index
    recorded = recorded_index_checks(session)
    lacking = [v for v in recorded if before is None or not before.has(v)]
    if not lacking:
        return False
    keys.index_keys(session, max(lacking))
    return keys.ring.index is not before


def find(session: Session, keys: KeyService, ins: str) -> Patient | None:
    """The patient with this (normalised) INS, by its keyed index (or clear, unconverted)."""
    query = select(Patient).where(match(keys, session, ins))
    patient = session.execute(query).scalar_one_or_none()
    if patient is None and lookup_versions_missing(keys, session):
        patient = session.execute(select(Patient).where(match(keys, session, ins))).scalar_one_or_none()
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
        for digest, row_id in session.execute(select(Patient.ins_index, Patient.id)
                                              .where(Patient.ins_index.in_(chunk))).tuples():
            if digest is not None:
                found[by_digest[bytes(digest)]] = row_id
    clear = list(ins)
    for i in range(0, len(clear), chunk_size):
        for value, row_id in session.execute(select(Patient.ins, Patient.id)
                                             .where(Patient.ins.in_(clear[i:i + chunk_size]))).tuples():
            found[value] = row_id
    return found


# ---------------------------------------------------------------------------- RCPT, driver level

_RCPT_COLUMNS = ("SELECT p.id, p.state, p.mailbox_id, (SELECT max(k.id) FROM data_keys k"
                 " WHERE k.mailbox_id = p.mailbox_id), m.quota_storage_kib, m.quota_messages"
                 " FROM patients p LEFT JOIN mailboxes m ON m.id = p.mailbox_id WHERE ")
_rcpt_statements: dict[int, RawStatement] = {}


def rcpt_statement(versions: int) -> RawStatement:
    """The RCPT-time lookup with ``versions`` digests: two unique-index equalities (the keyed
    index, and the clear column of a row not converted yet)."""
    statement = _rcpt_statements.get(versions)
    if statement is None:
        marks = ", ".join("?" * versions)
        columns = [Patient.__table__.c.ins_index] * versions + [Patient.__table__.c.ins]
        statement = RawStatement(f"{_RCPT_COLUMNS}p.ins_index IN ({marks}) OR p.ins = ?", columns)
        _rcpt_statements[versions] = statement
    return statement


def rcpt_row(runner: Runner, index: IndexKeyring, ins: str) -> tuple[Any, ...] | None:
    """``(id, state, mailbox_id, newest data key id, quota_storage_kib, quota_messages)``."""
    found = digests(index, ins)
    return rcpt_statement(len(found)).first(runner, *found, ins)


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
        if sealed is None or key_id is None:
            out[patient_id] = None
            continue
        try:
            out[patient_id] = keys.by_id(session, key_id).open("ins", "patient", sealed).decode("ascii")
        except (KeyUnavailable, DecryptionError):
            out[patient_id] = None
    return out
