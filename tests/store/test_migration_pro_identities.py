"""Migration 0012 (mailbox types, identities, grants, certificates, password choice; issue 19)
on SQLite and PostgreSQL: existing accounts become personal mailboxes that follow
``[auth] password_login``; the tables take bindings, cascade with their account, and refuse
a subject bound twice; downgrade removes them in place, keeping the quota triggers and the
accounts' rows; upgrading again gives the models' schema."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from gateway.store import migrate
from gateway.store.db import Database

NOW = "2027-01-01 00:00:00"


def _triggers(db: Database) -> set[str]:
    with db.engine.connect() as conn:
        if db.engine.dialect.name == "postgresql":
            rows = conn.execute(text("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"
                                     " AND tgrelid = 'messages'::regclass")).scalars()
        else:
            rows = conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger'"
                                     " AND tbl_name = 'messages'")).scalars()
        return set(rows)


def test_0012_types_bindings_and_down_and_up(db_url: str) -> None:
    db = Database(db_url)
    try:
        migrate.upgrade(db.engine, "0011")
        with db.engine.begin() as conn:
            conn.execute(text("INSERT INTO mailboxes (id, uid, kind, created_at) VALUES (7, 'u7', 'pro', :at),"
                              " (8, 'u8', 'pro', :at)"), {"at": NOW})
            conn.execute(text("INSERT INTO hosted_domains (id, name, created_at) VALUES (1, 'h.test', :at)"),
                         {"at": NOW})
            conn.execute(text("INSERT INTO pro_accounts (id, address, domain_id, mailbox_id, accepts_patient_initiated,"
                              " status, created_at) VALUES (1, 'a@h.test', 1, 7, false, 'active', :at),"
                              " (2, 'org@h.test', 1, 8, false, 'active', :at)"), {"at": NOW})
        migrate.upgrade(db.engine, "0012")
        with db.engine.begin() as conn:
            rows = conn.execute(text("SELECT id, mailbox_type, password_login FROM pro_accounts ORDER BY id")).all()
            assert [(r[0], r[1], bool(r[2])) for r in rows] == [(1, "personal", True), (2, "personal", True)]
            conn.execute(text("UPDATE pro_accounts SET mailbox_type = 'organisational' WHERE id = 2"))
            conn.execute(text("INSERT INTO pro_identities (subject, account_id, created_at) VALUES ('899', 1, :at)"),
                         {"at": NOW})
            conn.execute(text("INSERT INTO pro_grants (org_account_id, pro_account_id, created_at)"
                              " VALUES (2, 1, :at)"), {"at": NOW})
            conn.execute(text("INSERT INTO pro_certificates (fingerprint, account_id, issuer, subject, created_at)"
                              " VALUES (:f, 2, 'CN=CA', 'CN=app', :at)"), {"f": "ab" * 32, "at": NOW})
        with pytest.raises(IntegrityError), db.engine.begin() as conn:
            conn.execute(text("INSERT INTO pro_identities (subject, account_id, created_at)"
                              " VALUES ('899', 2, :at)"), {"at": NOW})  # one mailbox per subject
        with db.engine.begin() as conn:
            if db.engine.dialect.name == "sqlite":
                conn.execute(text("PRAGMA foreign_keys = ON"))
            conn.execute(text("DELETE FROM pro_accounts WHERE id = 1"))
            counts = [conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()  # noqa: S608
                      for t in ("pro_identities", "pro_grants", "pro_certificates")]
            assert counts == [0, 0, 1]  # the account's bindings went with it
        migrate.downgrade(db.engine, "0011")
        names = set(inspect(db.engine).get_table_names())
        assert not {"pro_identities", "pro_grants", "pro_certificates"} & names
        assert not {"mailbox_type", "password_login"} & {c["name"] for c in inspect(db.engine).get_columns(
            "pro_accounts")}
        assert _triggers(db) == {"messages_usage_insert", "messages_usage_delete", "messages_usage_update"}
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT address FROM pro_accounts")).scalars().all() == ["org@h.test"]
        migrate.upgrade(db.engine)
        with db.engine.connect() as conn:
            diff = migrate.schema_diff(conn)
        assert diff == []
    finally:
        db.dispose()
