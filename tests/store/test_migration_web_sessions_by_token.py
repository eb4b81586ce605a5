"""Migration 0019_web_sessions_by_token (issue 23) converts populated web sessions in place and
back, on SQLite and PostgreSQL: every row keeps its id and token hash (the id is the associated
data of an enrolment under way), the key includes ``token_hash`` on PostgreSQL (SQLite keeps its
rowid key), a token stays unique, and sessions keep working through the ORM afterwards."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from gateway.accounts import web_sessions
from gateway.store import migrate
from gateway.store.db import Database
from gateway.testing.store import open_store

AT = "2027-01-01 00:00:00"
NOW = datetime(2027, 3, 8, 10, 0, tzinfo=UTC)
LIFETIMES = web_sessions.Lifetimes(idle=timedelta(minutes=30), absolute=timedelta(hours=12))
ROWS = "SELECT id, token_hash, patient_id, stage, csrf_secret, pending_sealed FROM web_sessions ORDER BY id"


def _seed(db: Database) -> list[tuple[Any, ...]]:
    with db.engine.begin() as conn:
        for token, patient, pending in (("a" * 64, 5, None), ("b" * 64, 5, b"sealed"), ("c" * 64, 6, None)):
            conn.execute(text("INSERT INTO web_sessions (token_hash, patient_id, stage, created_at, last_seen_at,"
                              " csrf_secret, pending_sealed) VALUES (:t, :p, 'full', :at, :at, 'c', :pending)"),
                         {"t": token, "p": patient, "at": AT, "pending": pending})
        return [tuple(r) for r in conn.execute(text(ROWS))]


def _primary_key(db: Database) -> list[str]:
    return list(inspect(db.engine).get_pk_constraint("web_sessions")["constrained_columns"])


def _insert(db: Database, token: str) -> int:
    with db.engine.begin() as conn:
        return int(conn.execute(text("INSERT INTO web_sessions (token_hash, patient_id, stage, created_at,"
                                     " last_seen_at, csrf_secret) VALUES (:t, 7, 'full', :at, :at, 'c') RETURNING id"),
                                {"t": token, "at": AT}).scalar_one())


def test_upgrade_in_place_then_downgrade(db_url: str) -> None:
    db = Database(db_url, pool_size=2)
    try:
        migrate.upgrade(db.engine, "0018")
        assert _primary_key(db) == ["id"]
        before = _seed(db)
        migrate.upgrade(db.engine, "0019")
        with db.engine.connect() as conn:
            assert [tuple(r) for r in conn.execute(text(ROWS))] == before
        pg = db.engine.dialect.name == "postgresql"
        assert _primary_key(db) == (["token_hash", "id"] if pg else ["id"])  # SQLite: the rowid
        assert [u["column_names"] for u in inspect(db.engine).get_unique_constraints("web_sessions")] \
            == [["token_hash"]]
        with pytest.raises(IntegrityError):  # one session per token, on both stores
            _insert(db, "a" * 64)
        assert _insert(db, "d" * 64) > max(r[0] for r in before)  # ids still handed out
        migrate.downgrade(db.engine, "0018")
        assert _primary_key(db) == ["id"]
        with db.engine.connect() as conn:
            rows = [tuple(r) for r in conn.execute(text(ROWS))]
        assert rows[:3] == before and len(rows) == 4
        migrate.upgrade(db.engine)
        assert migrate.is_up_to_date(db.engine)
    finally:
        db.dispose()


def test_sessions_work_through_the_orm_after_the_upgrade(db_url: str) -> None:
    """A session made before the upgrade is still found by its token; a new one gets an id;
    logging the other devices out keeps the current one."""
    db = Database(db_url, pool_size=2)
    try:
        migrate.upgrade(db.engine, "0018")
        with db.engine.begin() as conn:
            conn.execute(text("INSERT INTO web_sessions (token_hash, patient_id, stage, created_at, last_seen_at,"
                              " csrf_secret) VALUES (:t, 5, 'full', :at, :at, 'old')"),
                         {"t": web_sessions.token_hash("old-token"), "at": NOW.replace(tzinfo=None) if db.is_sqlite
                          else NOW})
    finally:
        db.dispose()
    store = open_store(db_url)  # migrates to head
    try:
        with store.db.write() as s:
            old = web_sessions.lookup(s, "old-token", now=NOW, lifetimes=LIFETIMES)
            assert old is not None and old.csrf_secret == "old"
            token, new = web_sessions.create(s, 5, mailbox_id=7, stage="full", now=NOW)
            assert new.id > old.id
            found = web_sessions.by_key(s, new.token_hash, for_update=True)
            assert found is not None and found.id == new.id
            assert web_sessions.count_for(s, 5, except_key=new.token_hash) == 1
            web_sessions.destroy_all(s, 5, keep_key=new.token_hash)
        with store.db.write() as s:
            assert web_sessions.lookup(s, "old-token", now=NOW, lifetimes=LIFETIMES) is None
            kept = web_sessions.lookup(s, token, now=NOW + timedelta(minutes=1), lifetimes=LIFETIMES)
            assert kept is not None and kept.last_seen_at == NOW + timedelta(minutes=1)
        with store.db.read() as s:
            again = web_sessions.by_key(s, web_sessions.token_hash(token))
            assert again is not None and again.last_seen_at == NOW + timedelta(minutes=1)  # the touch was written
    finally:
        store.close()
