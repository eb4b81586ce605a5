"""Bulk creation of patient spaces (SPEC §5, §11: millions of rows on one 2-core machine).

Two halves. :func:`prepare_batch` is pure CPU (data keys, wrapping under the master
key, sealed e-mails, activation codes and their hashes) and can run in worker
processes. :func:`insert_batch` writes one prepared batch with the driver's fast
path (SQLite ``executemany``, PostgreSQL ``COPY``) inside the caller's transaction.
The rows are exactly what :func:`gateway.accounts.patients.provision` creates one at a time.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from crypto.blind_index import IndexKeyring
from crypto.envelope import aad, seal
from crypto.keyring import MasterKeyring
from gateway.accounts import ins_index
from gateway.accounts.patients import CODE_ALPHABET, CODE_LENGTH, hash_activation_code
from gateway.mailstore.folders import PATIENT_FOLDERS
from gateway.store.keys import _dk_aad as dk_aad  # the one definition of the data-key AAD
from gateway.store.models import DataKey, Folder, InsDirectory, Mailbox, Patient

# Random bytes -> code letters: 256 is a multiple of the 32-letter alphabet, so no bias.
_CODE_TABLE = bytes(CODE_ALPHABET.encode()[b % len(CODE_ALPHABET)] for b in range(256))
assert 256 % len(CODE_ALPHABET) == 0


SQLITE_CACHE_KIB = 512 * 1024


@dataclass(frozen=True)
class PreparedBatch:
    """Everything secret for ``len(ins)`` new spaces, computed away from the database."""

    ins: list[str]
    mailbox_uids: list[str]
    master_version: int
    wrapped: list[bytes]
    email_sealed: list[bytes | None]
    codes: list[str]
    code_hashes: list[str]
    uidvalidities: list[int]
    index_version: int
    ins_index: list[bytes]
    """Keyed indexes of the INS (issue 20), under ``index_version``."""
    ins_sealed: list[bytes]
    """The INS sealed under each new data key."""

    def subset(self, keep: Sequence[int]) -> PreparedBatch:
        """The entries at positions ``keep`` (in that order)."""
        per = len(PATIENT_FOLDERS)
        return PreparedBatch([self.ins[i] for i in keep], [self.mailbox_uids[i] for i in keep], self.master_version,
                             [self.wrapped[i] for i in keep], [self.email_sealed[i] for i in keep],
                             [self.codes[i] for i in keep], [self.code_hashes[i] for i in keep],
                             [self.uidvalidities[i * per + j] for i in keep for j in range(per)],
                             self.index_version, [self.ins_index[i] for i in keep],
                             [self.ins_sealed[i] for i in keep])


def new_codes(n: int) -> list[str]:
    """``n`` activation codes, same alphabet and format as ``patients.new_activation_code``."""
    raw = os.urandom(CODE_LENGTH * n).translate(_CODE_TABLE).decode("ascii")
    out = []
    for i in range(0, CODE_LENGTH * n, CODE_LENGTH):
        c = raw[i:i + CODE_LENGTH]
        out.append("-".join(c[j:j + 4] for j in range(0, CODE_LENGTH, 4)))
    return out


def prepare_batch(ring: MasterKeyring, items: Sequence[tuple[str, str | None]]) -> PreparedBatch:
    """Data keys wrapped under the current master key, sealed e-mails, codes and hashes, and the
    INS keyed (under the ring's newest index key) and sealed."""
    index = ring.index
    if index is None:
        raise ValueError("the key file has no index key (index-v<N>): start the gateway once to add it")
    n = len(items)
    uid_hex = os.urandom(16 * n).hex()
    key_bytes = os.urandom(32 * n)
    uv_bytes = os.urandom(4 * n * len(PATIENT_FOLDERS))
    uids, wrapped, sealed, indexes, ins_sealed = [], [], [], [], []
    version = index.current_version
    for i, (ins, email) in enumerate(items):
        uid = uid_hex[32 * i:32 * i + 32]
        key = key_bytes[32 * i:32 * i + 32]
        uids.append(uid)
        wrapped.append(ring.wrap(key, dk_aad(uid)).blob)
        sealed.append(seal(key, email.encode(), aad("email", uid, "patient")) if email else None)
        indexes.append(index.digest(ins_index.PURPOSE, ins, version))
        ins_sealed.append(seal(key, ins.encode("ascii"), aad("ins", uid, "patient")))
    codes = new_codes(n)
    hashes = [hash_activation_code(ins, code) for (ins, _), code in zip(items, codes, strict=True)]
    # RFC 3501 §2.3.1.1: UIDVALIDITY is a non-zero 32-bit number (we keep 31 bits, like folders.py).
    uvs = [(int.from_bytes(uv_bytes[4 * j:4 * j + 4], "big") % (2**31 - 1)) + 1
           for j in range(n * len(PATIENT_FOLDERS))]
    return PreparedBatch([ins for ins, _ in items], uids, ring.current_version, wrapped, sealed, codes, hashes, uvs,
                         version, indexes, ins_sealed)


def _bind(column: ColumnElement[Any], value: Any, session: Session) -> Any:
    dialect = session.get_bind().dialect
    processor = column.type.dialect_impl(dialect).bind_processor(dialect)
    return processor(value) if processor else value


def insert_batch(session: Session, batch: PreparedBatch, *, now: datetime, opposition_deadline: datetime,
                 code_expires_at: datetime, open_now: bool) -> None:
    """Insert mailboxes, data keys, folders, patients and their INS directory rows for a prepared batch."""
    n = len(batch.ins)
    if n == 0:
        return
    ids = ins_index.reserve_ids(session, "mailboxes", n)
    patient_ids = ins_index.reserve_ids(session, "patients", n)
    ts = _bind(Mailbox.__table__.c.created_at, now, session)
    deadline = _bind(Patient.__table__.c.opposition_deadline, opposition_deadline, session)
    expires = _bind(Patient.__table__.c.activation_expires_at, code_expires_at, session)
    opened = ts if open_now else None
    state = "open" if open_now else "provisioned"
    is_pg = session.get_bind().dialect.name == "postgresql"
    true = True if is_pg else 1
    tables: list[tuple[str, list[str], list[tuple[Any, ...]]]] = [
        (Mailbox.__tablename__, ["id", "uid", "kind", "created_at"],
         [(mid, uid, "patient", ts) for mid, uid in zip(ids, batch.mailbox_uids, strict=True)]),
        (DataKey.__tablename__, ["mailbox_id", "master_version", "wrapped", "created_at"],
         [(mid, batch.master_version, w, ts) for mid, w in zip(ids, batch.wrapped, strict=True)]),
        (Folder.__tablename__,
         ["mailbox_id", "name", "special_use", "subscribed", "uidvalidity", "uidnext", "highestmodseq", "created_at"],
         [(mid, name, special, true, batch.uidvalidities[i * len(PATIENT_FOLDERS) + j], 1, 1, ts)
          for i, mid in enumerate(ids) for j, (name, special) in enumerate(PATIENT_FOLDERS)]),
        (Patient.__tablename__,
         ["id", "ins", "ins_index", "ins_index_version", "ins_sealed", "mailbox_id", "state", "provisioned_at",
          "opposition_deadline", "opened_at", "activation_code_hash", "activation_expires_at", "email_sealed",
          "notifications_enabled"],
         [(pid, ins_index.placeholder(pid), digest, batch.index_version, ins_s, mid, state, ts, deadline, opened, h,
           expires, e, e is not None if is_pg else int(e is not None))
          for pid, digest, ins_s, mid, h, e in zip(patient_ids, batch.ins_index, batch.ins_sealed, ids,
                                                   batch.code_hashes, batch.email_sealed, strict=True)]),
        (InsDirectory.__tablename__, ["ins_index", "ins_index_version", "mailbox_id", "patient_id"],
         [(digest, batch.index_version, mid, pid)
          for digest, mid, pid in zip(batch.ins_index, ids, patient_ids, strict=True)]),
    ]
    raw = session.connection().connection.driver_connection
    assert raw is not None
    cursor = raw.cursor()
    if not is_pg:  # random-key indexes (INS, mailbox uid) need a page cache sized for millions of rows
        cursor.execute(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}")
    try:
        for table, columns, rows in tables:
            names = ", ".join(columns)
            if is_pg:
                with cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
            else:
                marks = ", ".join("?" * len(columns))
                cursor.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", rows)  # noqa: S608
    finally:
        cursor.close()


def existing_ins(session: Session, index: IndexKeyring, ins: Sequence[str]) -> dict[str, int]:
    """INS of ``ins`` that already have a space, with their patient row id (by keyed index)."""
    return ins_index.find_ids(session, index, ins)


def max_patient_id(session: Session) -> int:
    return int(session.execute(select(func.coalesce(func.max(Patient.id), 0))).scalar_one())
