"""Migration 0021_sessions_carry_mailbox (issue 23), on SQLite and PostgreSQL: each existing web
session gets its patient's mailbox id (NULL when the patient is gone), the completion of the
INS conversion is recorded only when no row holds a clear INS, and the downgrade keeps every
session row."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import inspect, text

from gateway.accounts import ins_index, web_sessions
from gateway.store import migrate
from gateway.store.db import Database
from gateway.testing.store import open_store

AT = "2027-01-01 00:00:00"
NOW = datetime(2027, 3, 22, 10, 0, tzinfo=UTC)
LIFETIMES = web_sessions.Lifetimes(idle=timedelta(minutes=30), absolute=timedelta(hours=12))
SESSIONS = (("a" * 64, 5), ("b" * 64, 5), ("c" * 64, 6), ("d" * 64, 99))  # patient 99 is gone


def _seed(db: Database, *, clear: bool) -> None:
    """Patients 5 (mailbox 7, converted) and 6 (mailbox 8: a clear INS when ``clear``), and sessions."""
    with db.engine.begin() as conn:
        conn.execute(text("INSERT INTO mailboxes (id, uid, kind, created_at) VALUES (7, 'u7', 'patient', :at),"
                          " (8, 'u8', 'patient', :at)"), {"at": AT})
        for pid, mailbox, ins in ((5, 7, "#5"), (6, 8, "100000000000000" if clear else "#6")):
            conn.execute(text("INSERT INTO patients (id, ins, mailbox_id, state, provisioned_at, opposition_deadline,"
                              " notifications_enabled) VALUES (:id, :ins, :mb, 'open', :at, :at, false)"),
                         {"id": pid, "ins": ins, "mb": mailbox, "at": AT})
        for token, patient in SESSIONS:
            conn.execute(text("INSERT INTO web_sessions (token_hash, patient_id, stage, created_at, last_seen_at,"
                              " csrf_secret) VALUES (:t, :p, 'full', :at, :at, 'c')"),
                         {"t": token, "p": patient, "at": AT})


def _sessions(db: Database) -> list[tuple[object, ...]]:
    with db.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text("SELECT token_hash, patient_id, stage, csrf_secret"
                                                    " FROM web_sessions ORDER BY token_hash"))]


def _complete(db: Database) -> bool:
    with db.read() as session:
        return ins_index.conversion_complete(session)


def test_sessions_get_their_mailbox_and_a_clear_ins_leaves_the_conversion_open(db_url: str) -> None:
    db = Database(db_url, pool_size=2)
    try:
        migrate.upgrade(db.engine, "0020")
        _seed(db, clear=True)
        before = _sessions(db)
        migrate.upgrade(db.engine, "0021")
        with db.engine.connect() as conn:
            rows = conn.execute(text("SELECT token_hash, mailbox_id FROM web_sessions ORDER BY token_hash")).all()
        assert [tuple(r) for r in rows] == [("a" * 64, 7), ("b" * 64, 7), ("c" * 64, 8), ("d" * 64, None)]
        assert _sessions(db) == before
        assert not _complete(db)  # patient 6 is found by its clear INS only
        migrate.downgrade(db.engine, "0020")
        assert _sessions(db) == before
        assert "mailbox_id" not in {c["name"] for c in inspect(db.engine).get_columns("web_sessions")}
        assert "ins_conversion_complete" not in inspect(db.engine).get_table_names()
        migrate.upgrade(db.engine)
        assert _sessions(db) == before and not _complete(db)
    finally:
        db.dispose()


def test_no_clear_ins_records_the_conversion_complete_and_sessions_work(db_url: str) -> None:
    db = Database(db_url, pool_size=2)
    try:
        migrate.upgrade(db.engine, "0020")
        _seed(db, clear=False)
    finally:
        db.dispose()
    store = open_store(db_url)  # migrates to head
    try:
        assert _complete(store.db)
        with store.db.write() as s:
            token, row = web_sessions.create(s, 6, mailbox_id=8, stage="full", now=NOW)
            assert row.mailbox_id == 8
        with store.db.read() as s:
            found = web_sessions.by_key(s, web_sessions.token_hash(token))
            assert found is not None and (found.mailbox_id, found.patient_id) == (8, 6)
            old = web_sessions.by_key(s, "c" * 64)
            assert old is not None and (old.mailbox_id, old.patient_id) == (8, 6)
    finally:
        store.close()


def test_a_new_database_has_the_conversion_complete(db_url: str) -> None:
    store = open_store(db_url)
    try:
        assert _complete(store.db)
    finally:
        store.close()
