"""Migration 0015_audit_sealed_links: adds the columns in place, changes no existing entry; its
downgrade is refused while an entry is stored sealed, and keeps every row otherwise."""

from __future__ import annotations

import pytest
from sqlalchemy import func, inspect, select

from gateway.store import audit, migrate
from gateway.store.db import Database
from gateway.store.models import AuditEntry
from gateway.testing.store import Store

COLUMNS = {"hash_form", "patient_sealed", "patient_data_key_id", "patient_index", "patient_index_version"}


def _move(db: Database, revision: str, *, up: bool = False) -> None:
    (migrate.upgrade if up else migrate.downgrade)(db.engine, revision)


def _columns(db: Database) -> set[str]:
    return {c["name"] for c in inspect(db.engine).get_columns("audit_log")}


def test_down_and_up_keep_clear_entries_and_the_chain(store: Store) -> None:
    with store.db.write() as s:  # entries without subject: the one partition below migration 0018
        for i in range(3):
            audit.record(s, actor="admin:cli", action="test.event", details={"i": i})
    _move(store.db, "0014")
    assert not COLUMNS & _columns(store.db)
    _move(store.db, "head", up=True)
    assert COLUMNS <= _columns(store.db)
    with store.db.read() as s:
        assert audit.verify(s).ok and audit.verify(s).entries == 3


def test_downgrade_refused_while_an_entry_is_sealed(store: Store) -> None:
    with store.db.write() as s:
        audit.record(s, actor="admin:cli", action="admin.patient.lookup", subject_ref="patient:4", keys=store.keys)
    with pytest.raises(RuntimeError, match=r"stored sealed|outside partition 0"):  # 0018 may refuse first
        _move(store.db, "0014")
    assert COLUMNS <= _columns(store.db)
    with store.db.read() as s:
        assert s.execute(select(func.count()).select_from(AuditEntry)).scalar_one() == 1
        assert audit.verify(s).ok
