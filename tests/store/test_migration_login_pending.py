"""Migration 0022_login_pending: counters gain the attempts in flight; down and up keep the rows
(SQLite and PostgreSQL)."""

from __future__ import annotations

from sqlalchemy import text

from gateway.store import migrate
from gateway.store.db import Database


def test_counters_keep_their_judged_failures_down_and_up(db_url: str) -> None:
    db = Database(db_url, pool_size=2)
    try:
        migrate.upgrade(db.engine, "0021")
        with db.engine.begin() as conn:
            conn.execute(text("INSERT INTO login_counters (key, window_start, failures, locked_until) VALUES "
                              "('pro/p:ab|cd', 1.0, 3, NULL), ('pro/i:cd', 2.0, 30, 900.0)"))
        migrate.upgrade(db.engine, "0022")
        with db.engine.begin() as conn:
            rows = conn.execute(text("SELECT key, failures, locked_until, pending, pending_prev, pending_epoch "
                                     "FROM login_counters ORDER BY key")).all()
            assert [tuple(r) for r in rows] == [("pro/i:cd", 30, 900.0, 0, 0, None),
                                                ("pro/p:ab|cd", 3, None, 0, 0, None)]
            conn.execute(text("UPDATE login_counters SET pending = 2, pending_prev = 1, pending_epoch = 7"
                              " WHERE key = 'pro/p:ab|cd'"))
        migrate.downgrade(db.engine, "0021")
        with db.engine.connect() as conn:
            rows = conn.execute(text("SELECT key, failures FROM login_counters ORDER BY key")).all()
        assert [tuple(r) for r in rows] == [("pro/i:cd", 30), ("pro/p:ab|cd", 3)]
        migrate.upgrade(db.engine)
        assert migrate.current_revision(db.engine) == migrate.head_revision()
    finally:
        db.dispose()
