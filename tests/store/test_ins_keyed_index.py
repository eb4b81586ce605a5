"""The INS as a keyed index (issue 20, migration 0013_ins_keyed_index), on SQLite and PostgreSQL.

A database made by the previous release (schema 0012, clear INS) is upgraded; lookups find
every patient before, during and after the batch conversion; afterwards no table holds an INS
(every row of every table as SQL text); an index key rotation re-indexes in batches while
lookups go on; the downgrade is refused until the clear INS is restored, then keeps the rows.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import inspect, select, text

from crypto.blind_index import IndexKeyring
from crypto.keyring import MasterKeyring
from gateway.accounts import ins_conversion as conv
from gateway.accounts import ins_index
from gateway.accounts.patients import by_ins, patient_ins, provision
from gateway.accounts.purge import purge_patient
from gateway.store import migrate
from gateway.store.db import Database
from gateway.store.index_keys import record_index_checks
from gateway.store.keys import KeyService, _dk_aad
from gateway.store.models import Patient
from gateway.testing.store import by_id
from routing.ins import synthetic_ins

NOW = datetime(2027, 2, 1, 9, 0, tzinfo=UTC)
OLD = "2027-01-01 00:00:00"


def _old_database(db: Database, ring: MasterKeyring, count: int) -> list[str]:
    """Schema 0012 with ``count`` patients as the previous release stored them (clear INS)."""
    migrate.upgrade(db.engine, "0012")
    rng = random.Random(1300 + count)
    ins = sorted({synthetic_ins(rng) for _ in range(count)})
    with db.engine.begin() as conn:
        for one in ins:
            uid = os.urandom(16).hex()
            wrapped = ring.wrap(os.urandom(32), _dk_aad(uid))
            i = conn.execute(text("INSERT INTO mailboxes (uid, kind, created_at) VALUES (:uid, 'patient', :at)"
                                  " RETURNING id"), {"uid": uid, "at": OLD}).scalar_one()
            conn.execute(text("INSERT INTO data_keys (mailbox_id, master_version, wrapped, created_at)"
                              " VALUES (:id, :v, :w, :at)"), {"id": i, "v": wrapped.version, "w": wrapped.blob,
                                                                "at": OLD})
            conn.execute(text("INSERT INTO patients (ins, mailbox_id, state, provisioned_at, opposition_deadline,"
                              " notifications_enabled) VALUES (:ins, :id, 'open', :at, :at, false)"),
                         {"id": i, "ins": one, "at": OLD})
    migrate.upgrade(db.engine)
    return ins


def _dump(db: Database) -> str:
    """Every row of every table, as SQL text."""
    out = []
    with db.engine.connect() as conn:
        for table in sorted(inspect(db.engine).get_table_names()):
            columns = [c["name"] for c in inspect(db.engine).get_columns(table)]
            for row in conn.execute(text(f'SELECT * FROM "{table}"')):  # noqa: S608 (table names from the schema)
                values = []
                for value in row:
                    if isinstance(value, (bytes, memoryview)):
                        values.append(bytes(value).hex() + "|" + bytes(value).decode("latin-1"))
                    else:
                        values.append(repr(value))
                out.append(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(values)});")  # noqa: S608
    return "\n".join(out)


def _contains_ins(dump: str, ins: list[str]) -> list[str]:
    return [one for one in ins if one in dump or one[:13] in dump]


@pytest.fixture
def ring() -> MasterKeyring:
    return MasterKeyring({1: os.urandom(32)}, IndexKeyring.generate())


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url, pool_size=5)
    try:
        yield database
    finally:
        database.dispose()


def _found(db: Database, keys: KeyService, ins: list[str]) -> list[int]:
    with db.read() as session:
        found = []
        for one in ins:
            patient = by_ins(session, keys, one)
            assert patient is not None, "a patient was not found by INS"
            assert ins_index.rcpt_row(session, keys.ring.index, one) is not None  # type: ignore[arg-type]
            found.append(patient.id)
        return found


def test_conversion_while_serving_then_no_ins_in_any_table(db: Database, ring: MasterKeyring) -> None:
    ins = _old_database(db, ring, 7)
    keys = KeyService(ring)
    assert ring.index is not None
    with db.write() as session:
        record_index_checks(session, ring.index, [1])
    ids = _found(db, keys, ins)  # before: every row has its INS in clear
    assert _contains_ins(_dump(db), ins) == ins
    with db.read() as session:
        assert conv.pending_conversion(session) == 7
        assert not ins_index.conversion_complete(session)  # misses of the directory look for a clear INS
    first = conv.convert_batch(db, ring, ring.index, 1, after_id=0, limit=3)
    assert first.done == 3 and first.last_id == ids[2] and not first.unopened
    assert _found(db, keys, ins) == ids  # during: converted and unconverted rows alike
    with db.write() as session:
        assert conv.record_complete(session, NOW) == 4 and not ins_index.conversion_complete(session)
    with db.read() as session:
        assert conv.pending_conversion(session) == 4
        provisioned = provision(session, keys, synthetic_ins(random.Random(5)), email=None, now=NOW,
                                opposition_window=timedelta(days=42), code_validity=timedelta(days=42))
        assert provisioned.patient.ins == ins_index.placeholder(provisioned.patient.id)
        session.rollback()
    rest = conv.run(lambda after: conv.convert_batch(db, ring, ring.index, 1, after_id=after, limit=3))  # type: ignore[arg-type]
    assert rest.done == 4
    with db.write() as session:
        assert conv.record_complete(session, NOW) == 0  # what `gateway db convert-ins` records at the end
    with db.read() as session:
        assert ins_index.conversion_complete(session)  # a miss of the directory is now the answer
        assert by_ins(session, keys, synthetic_ins(random.Random(6))) is None
    assert _found(db, keys, ins) == ids  # after
    with db.read() as session:
        assert conv.pending_conversion(session) == 0
        for one, patient_id in zip(ins, ids, strict=True):
            patient = by_id(session, Patient, patient_id)
            assert patient is not None and patient.ins == f"#{patient_id}" and patient.ins_index_version == 1
            assert patient_ins(session, keys, patient) == one  # the sealed copy opens
    assert _contains_ins(_dump(db), ins) == []
    assert conv.run(lambda after: conv.convert_batch(db, ring, ring.index, 1, after_id=after)).done == 0  # type: ignore[arg-type]


def test_a_purged_space_keeps_only_its_index(db: Database, ring: MasterKeyring) -> None:
    ins = _old_database(db, ring, 3)
    keys = KeyService(ring)
    assert ring.index is not None
    with db.write() as session:
        patient = by_ins(session, keys, ins[1])
        assert patient is not None
        purge_patient(session, keys, patient, NOW)
    total = conv.run(lambda after: conv.convert_batch(db, ring, ring.index, 1, after_id=after))  # type: ignore[arg-type]
    assert total.done == 3 and len(total.unopened) == 1
    with db.read() as session:
        purged = by_ins(session, keys, ins[1])
        assert purged is not None and purged.state == "purged" and purged.ins_sealed is None
        assert patient_ins(session, keys, purged) is None
        assert ins_index.shown(session, keys, purged) == ins_index.UNKNOWN_INS
    assert _contains_ins(_dump(db), ins) == []


def test_index_key_rotation_reindexes_in_batches(db: Database, ring: MasterKeyring) -> None:
    ins = _old_database(db, ring, 6)
    keys = KeyService(ring)
    assert ring.index is not None
    with db.write() as session:
        record_index_checks(session, ring.index, [1])
    conv.run(lambda after: conv.convert_batch(db, ring, ring.index, 1, after_id=after))  # type: ignore[arg-type]
    with db.write() as session:
        purge_patient(session, keys, by_ins(session, keys, ins[5]), NOW)  # type: ignore[arg-type]
    ids = _found(db, keys, ins)
    rotated = ring.with_index(ring.index.with_new_version())
    keys.ring = rotated
    assert rotated.index is not None
    with db.write() as session:
        record_index_checks(session, rotated.index, [2])
    batch = conv.reindex_batch(db, rotated, rotated.index, source=1, target=2, after_id=0, limit=2)
    assert batch.done == 2
    assert _found(db, keys, ins) == ids  # both versions are tried meanwhile
    with db.read() as session:
        assert conv.pending_reindex(session, 2) == {1: 3}
        assert conv.stale_purged(session, 1) == 1
    conv.run(lambda after: conv.reindex_batch(db, rotated, rotated.index, source=1, target=2,  # type: ignore[arg-type]
                                              after_id=after, limit=2))
    with db.read() as session:
        assert conv.pending_reindex(session, 2) == {}
    only_new = KeyService(rotated.with_index(IndexKeyring({2: rotated.index.key_bytes(2)})))
    _found(db, only_new, ins[:5])  # the live rows no longer need index-v1
    with db.write() as session:
        assert conv.forget_stale(session, 1) == 1
        assert by_ins(session, keys, ins[5]) is None  # the purged space identifies nobody any more


def test_downgrade_refused_until_restored_then_keeps_rows(db: Database, ring: MasterKeyring) -> None:
    ins = _old_database(db, ring, 4)
    assert ring.index is not None
    conv.run(lambda after: conv.convert_batch(db, ring, ring.index, 1, after_id=after))  # type: ignore[arg-type]

    def downgrade() -> None:
        migrate.downgrade(db.engine, "0012")

    with pytest.raises(RuntimeError, match="restore-ins"):
        downgrade()
    assert migrate.is_up_to_date(db.engine)
    restored = conv.run(lambda after: conv.restore_batch(db, ring, after_id=after, limit=3))
    assert restored.done == 4 and not restored.unopened
    downgrade()
    assert migrate.current_revision(db.engine) == "0012"
    with db.engine.connect() as conn:
        assert sorted(conn.execute(text("SELECT ins FROM patients")).scalars()) == ins
        assert "ins_index" not in {c["name"] for c in inspect(db.engine).get_columns("patients")}
    migrate.upgrade(db.engine)
    with db.read() as session:
        assert session.execute(select(Patient.id)).all() and conv.pending_conversion(session) == 4


def test_downgrade_leaves_a_purged_space_unidentified(db: Database, ring: MasterKeyring) -> None:
    ins = _old_database(db, ring, 2)
    keys = KeyService(ring)
    assert ring.index is not None
    conv.run(lambda after: conv.convert_batch(db, ring, ring.index, 1, after_id=after))  # type: ignore[arg-type]
    with db.write() as session:
        purged = by_ins(session, keys, ins[0])
        assert purged is not None
        purge_patient(session, keys, purged, NOW)
        purged_id = purged.id
    assert conv.run(lambda after: conv.restore_batch(db, ring, after_id=after)).done == 1
    migrate.downgrade(db.engine, "0012")
    with db.engine.connect() as conn:
        rows = dict(conn.execute(text("SELECT id, ins FROM patients")).tuples().all())
    assert rows[purged_id] == f"#{purged_id}" and sorted(rows.values()) == sorted([f"#{purged_id}", ins[1]])
