"""Migration 0009 (mailbox quotas, issue 18): upgrade keeps every row and starts every
mailbox on the configured default; downgrade removes the columns and the index, and
upgrading again gives the models' schema; SQLite and PostgreSQL (GATEWAY_TEST_STORE)."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from gateway.store import migrate
from gateway.store.db import Database
from gateway.store.models import Base


def _downgrade(db: Database, revision: str) -> None:
    cfg = migrate._config()
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def test_0009_up_down_up(db_url: str) -> None:
    db = Database(db_url)
    try:
        assert migrate.head_revision() == "0009"
        migrate.upgrade(db.engine, "0008")
        with db.engine.begin() as conn:
            conn.execute(text("INSERT INTO mailboxes (id, uid, kind, created_at)"
                              " VALUES (7, 'u7', 'pro', '2027-01-01 00:00:00')"))
        migrate.upgrade(db.engine)
        with db.engine.connect() as conn:
            row = conn.execute(text("SELECT quota_storage_kib, quota_messages FROM mailboxes WHERE id = 7")).one()
        assert tuple(row) == (None, None)  # the configured default
        with db.engine.begin() as conn:
            conn.execute(text("UPDATE mailboxes SET quota_storage_kib = 100, quota_messages = 0 WHERE id = 7"))
        assert "ix_messages_folder_size" in {i["name"] for i in inspect(db.engine).get_indexes("messages")}
        _downgrade(db, "0008")
        assert migrate.current_revision(db.engine) == "0008"
        columns = {c["name"] for c in inspect(db.engine).get_columns("mailboxes")}
        assert not {"quota_storage_kib", "quota_messages"} & columns and "uid" in columns
        assert "ix_messages_folder_size" not in {i["name"] for i in inspect(db.engine).get_indexes("messages")}
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM mailboxes WHERE id = 7")).scalar_one() == 1
        migrate.upgrade(db.engine)
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
        assert diff == []
    finally:
        db.dispose()
