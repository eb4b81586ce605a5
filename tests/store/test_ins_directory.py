"""The INS directory (issue 23, migration 0017), on SQLite and PostgreSQL: written in the
transaction that provisions a space (one at a time, and the bulk import's executemany / COPY),
the one way the lookups by INS find a patient, kept by a purge (which deletes the patient's
web sessions itself: no foreign key does it any more)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from gateway.accounts import ins_index, web_sessions
from gateway.accounts.bulk import insert_batch, prepare_batch
from gateway.accounts.patients import PatientExists, by_ins, provision
from gateway.accounts.purge import purge_patient
from gateway.store.models import InsDirectory, Patient, WebSession
from gateway.testing.store import Store
from routing.ins import synthetic_ins

NOW = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
WEEK = timedelta(days=7)


def _provision(store: Store, ins: str) -> Patient:
    with store.db.write() as s:
        return provision(s, store.keys, ins, email=None, now=NOW, opposition_window=WEEK, code_validity=WEEK).patient


def _entries(store: Store) -> list[tuple[bytes, int, int, int]]:
    with store.db.read() as s:
        return [(bytes(i), v, m, p) for i, v, m, p in s.execute(
            select(InsDirectory.ins_index, InsDirectory.ins_index_version, InsDirectory.mailbox_id,
                   InsDirectory.patient_id).order_by(InsDirectory.patient_id)).tuples()]


def test_provisioning_enters_the_space_and_lookups_go_through_the_directory(store: Store) -> None:
    rng = random.Random(2301)
    first, second = synthetic_ins(rng), synthetic_ins(rng)
    a, b = _provision(store, first), _provision(store, second)
    assert _entries(store) == [(a.ins_index, a.ins_index_version, a.mailbox_id, a.id),
                               (b.ins_index, b.ins_index_version, b.mailbox_id, b.id)]
    with store.db.read() as s:
        assert ins_index.rcpt_row(s, store.ring.index, first)[:3] == (a.id, "provisioned", a.mailbox_id)  # type: ignore[arg-type,index]
        found = by_ins(s, store.keys, second)
        assert found is not None and found.id == b.id
    with pytest.raises(PatientExists):
        _provision(store, first)
    with store.db.write() as s:  # without its directory row, a space is not found by INS
        s.execute(delete(InsDirectory).where(InsDirectory.patient_id == a.id))
    with store.db.read() as s:
        assert ins_index.rcpt_row(s, store.ring.index, first) is None  # type: ignore[arg-type]
        assert by_ins(s, store.keys, first) is None


def test_the_directory_keeps_an_ins_to_one_space(store: Store) -> None:
    patient = _provision(store, synthetic_ins(random.Random(2302)))
    with pytest.raises(IntegrityError), store.db.write() as s:
        s.add(InsDirectory(ins_index=patient.ins_index, ins_index_version=1, mailbox_id=patient.mailbox_id + 1,
                           patient_id=patient.id + 1))


def test_bulk_import_enters_every_space(store: Store) -> None:
    rng = random.Random(2303)
    ins = sorted({synthetic_ins(rng) for _ in range(40)})
    batch = prepare_batch(store.ring, [(one, None) for one in ins])
    with store.db.write() as s:
        insert_batch(s, batch, now=NOW, opposition_deadline=NOW + WEEK, code_expires_at=NOW + WEEK, open_now=True)
    entries = _entries(store)
    assert len(entries) == len(ins) and {e[0] for e in entries} == set(batch.ins_index)
    with store.db.read() as s:
        ids = ins_index.find_ids(s, store.ring.index, ins)  # type: ignore[arg-type]
        assert sorted(ids.values()) == sorted(e[3] for e in entries)
        for one in ins:
            row = ins_index.rcpt_row(s, store.ring.index, one)  # type: ignore[arg-type]
            assert row is not None and row[1] == "open" and ids[one] == row[0]


def test_a_purge_keeps_the_entry_and_deletes_the_web_sessions(store: Store) -> None:
    rng = random.Random(2304)
    one, other = synthetic_ins(rng), synthetic_ins(rng)
    patient, kept = _provision(store, one), _provision(store, other)
    with store.db.write() as s:
        web_sessions.create(s, patient.id, mailbox_id=patient.mailbox_id, stage="full", now=NOW)
        web_sessions.create(s, kept.id, mailbox_id=kept.mailbox_id, stage="full", now=NOW)
    with store.db.write() as s:
        found = by_ins(s, store.keys, one)
        assert found is not None
        purge_patient(s, store.keys, found, NOW)
    with store.db.read() as s:
        assert s.execute(select(WebSession.patient_id)).scalars().all() == [kept.id]
        purged = by_ins(s, store.keys, one)
        assert purged is not None and purged.state == "purged"  # the state still answers by INS
        assert s.execute(select(func.count()).select_from(InsDirectory)).scalar_one() == 2
