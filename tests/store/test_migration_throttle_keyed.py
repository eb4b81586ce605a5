"""Migration 0016_throttle_keyed: login counters kept in clear by the previous release are
deleted (short-lived throttle state; issue 20), on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic import command
from sqlalchemy import text

from gateway.store import migrate
from gateway.store.db import Database


def test_clear_counters_are_deleted_and_the_downgrade_keeps_the_schema(db_url: str) -> None:
    db = Database(db_url, pool_size=2)
    try:
        migrate.upgrade(db.engine, "0013_ins_keyed_index")
        with db.engine.begin() as conn:
            conn.execute(text("INSERT INTO login_counters (key, window_start, failures) VALUES "
                              "('patient/p:login:253072A07300443|192.0.2.1', 1.0, 3), "
                              "('patient/a:login:invalid:mysecretpass!99', 1.0, 1)"))
        migrate.upgrade(db.engine)
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM login_counters")).scalar_one() == 0
        cfg = migrate._config()
        with db.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0013_ins_keyed_index")
        assert migrate.current_revision(db.engine) == "0013_ins_keyed_index"
    finally:
        db.dispose()
