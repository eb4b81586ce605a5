"""Migration 0010 (IMAP OBJECTID / SAVEDATE) up and down on SQLite and PostgreSQL: existing
folders get a MAILBOXID each, existing messages keep their uuid as EMAILID and their internal
date as save date (both columns null), and the downgrade removes the columns again."""

from __future__ import annotations

import sqlalchemy as sa

from gateway.store import migrate
from gateway.store.db import Database

BEFORE = "0009"
REVISION = "0010"


def _downgrade(engine: sa.Engine, revision: str) -> None:
    migrate.downgrade(engine, revision)


def _columns(engine: sa.Engine, table: str) -> set[str]:
    return {c["name"] for c in sa.inspect(engine).get_columns(table)}


def test_upgrade_fills_mailbox_ids_and_downgrade_removes_the_columns(db_url: str) -> None:
    db = Database(db_url)
    engine = db.engine
    try:
        migrate.upgrade(engine, BEFORE)
        now = "2026-03-02 09:00:00"
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO mailboxes (id, uid, kind, created_at) VALUES (1, 'mb1', 'pro', :t)"),
                         {"t": now})
            for fid, name in ((1, "INBOX"), (2, "Sent")):
                conn.execute(sa.text(
                    "INSERT INTO folders (id, mailbox_id, name, subscribed, uidvalidity, uidnext, highestmodseq,"
                    " recent_uid, created_at) VALUES (:id, 1, :name, true, 7, 2, 2, 0, :t)"),
                    {"id": fid, "name": name, "t": now})
            conn.execute(sa.text(
                "INSERT INTO messages (id, folder_id, uid, uuid, flags, internal_date, size, modseq, sealed)"
                " VALUES (1, 1, 1, 'u1', '', :t, 10, 2, :blob)"), {"t": now, "blob": b"x"})
        migrate.upgrade(engine, REVISION)
        assert migrate.current_revision(engine) == REVISION
        with engine.connect() as conn:
            ids = [row[0] for row in conn.execute(sa.text("SELECT object_id FROM folders ORDER BY id"))]
            message = conn.execute(sa.text("SELECT email_id, saved_at FROM messages")).one()
        assert len(set(ids)) == 2 and all(isinstance(i, str) and len(i) == 24 for i in ids)
        assert tuple(message) == (None, None)
        _downgrade(engine, BEFORE)
        assert "object_id" not in _columns(engine, "folders")
        assert not {"email_id", "saved_at"} & _columns(engine, "messages")
        migrate.upgrade(engine)  # and up again, to the head
        assert migrate.is_up_to_date(engine)
    finally:
        db.dispose()
