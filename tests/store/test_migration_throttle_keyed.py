"""Migration 0016_throttle_keyed: login counters kept in clear by the previous release are
deleted (short-lived throttle state; issue 20), on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import text

from gateway.store import migrate
from gateway.store.db import Database


def test_clear_counters_are_deleted_and_the_downgrade_keeps_the_schema(db_url: str) -> None:
    db = Database(db_url, pool_size=2)
    try:
        migrate.upgrade(db.engine, "0015")
        with db.engine.begin() as conn:
            conn.execute(text("INSERT INTO login_counters (key, window_start, failures) VALUES "
                              "('patient/p:login:253072A07300443|192.0.2.1', 1.0, 3), "
                              "('patient/a:login:invalid:mysecretpass!99', 1.0, 1)"))
        migrate.upgrade(db.engine)
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM login_counters")).scalar_one() == 0
        migrate.downgrade(db.engine, "0015")
        assert migrate.current_revision(db.engine) == "0015"
    finally:
        db.dispose()


def test_queue_errors_are_cut_to_their_codes(db_url: str) -> None:
    db = Database(db_url, pool_size=2)
    try:
        migrate.upgrade(db.engine, "0015")
        with db.engine.begin() as conn:
            for i, error in enumerate(("550 5.1.1 <253072A07300443@patients.test>: user unknown",
                                       "cancelled by an administrator")):
                conn.execute(text("INSERT INTO outbound_queue (uuid, domain, kind, envelope_sealed, message_sealed,"
                                  " size, status, attempts, created_at, next_attempt_at, expires_at, last_error)"
                                  " VALUES (:u, 'remote.test', 'message', :b, :b, 1, 'bounced', 1, :at, :at, :at,"
                                  " :e)"), {"u": f"q{i}", "b": b"x", "at": "2027-01-01 00:00:00", "e": error})
            conn.execute(text("INSERT INTO mailboxes (id, uid, kind, created_at) VALUES (7, 'u7', 'patient', :at)"),
                         {"at": "2027-01-01 00:00:00"})
            conn.execute(text("INSERT INTO patients (id, ins, mailbox_id, state, provisioned_at, opposition_deadline,"
                              " notifications_enabled) VALUES (7, '#7', 7, 'open', :at, :at, false)"),
                         {"at": "2027-01-01 00:00:00"})
            conn.execute(text("INSERT INTO web_sessions (token_hash, patient_id, stage, created_at, last_seen_at,"
                              " ip, csrf_secret) VALUES ('t', 7, 'full', :at, :at, '192.0.2.9',"
                              " 'c')"), {"at": "2027-01-01 00:00:00"})
        migrate.upgrade(db.engine)
        with db.engine.connect() as conn:
            errors = conn.execute(text("SELECT last_error FROM outbound_queue ORDER BY uuid")).scalars().all()
            ips = conn.execute(text("SELECT ip FROM web_sessions")).scalars().all()
        assert errors == ["550 5.1.1", "cancelled by an administrator"] and ips == [None]
    finally:
        db.dispose()
