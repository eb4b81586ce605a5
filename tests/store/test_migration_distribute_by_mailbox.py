"""Migration 0017_distribute_by_mailbox (issue 23) converts a populated store in place and back,
on SQLite and PostgreSQL: messages and expunged UIDs take their folder's mailbox, the INS
directory is filled from the patients' keyed indexes, the keys include ``mailbox_id``, and no
``ON DELETE SET NULL`` foreign key is left."""

from __future__ import annotations

import sqlite3

import pytest
from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from gateway.store import migrate
from gateway.store.db import Database

AT = "2027-01-01 00:00:00"
GROUP = ("data_keys", "patients", "folders", "subscriptions", "messages", "conversations")


def _seed(db: Database) -> None:
    with db.engine.begin() as conn:
        conn.execute(text("INSERT INTO mailboxes (id, uid, kind, created_at) VALUES (7, 'u7', 'patient', :at),"
                          " (8, 'u8', 'patient', :at), (9, 'u9', 'pro', :at)"), {"at": AT})
        conn.execute(text("INSERT INTO data_keys (id, mailbox_id, master_version, wrapped, created_at) VALUES"
                          " (1, 7, 1, :b, :at), (2, 8, 1, :b, :at), (3, 9, 1, :b, :at)"), {"at": AT, "b": b"k"})
        for folder, mailbox in ((70, 7), (80, 8), (90, 9)):
            conn.execute(text("INSERT INTO folders (id, mailbox_id, name, subscribed, uidvalidity, uidnext,"
                              " highestmodseq, recent_uid, created_at) VALUES (:id, :mb, 'INBOX', true, 1, 3, 2, 0,"
                              " :at)"), {"id": folder, "mb": mailbox, "at": AT})
            for uid in (1, 2):
                conn.execute(text("INSERT INTO messages (folder_id, uid, uuid, data_key_id, flags, internal_date,"
                                  " size, modseq, sealed) VALUES (:f, :u, :uuid, :k, '', :at, 10, 1, :b)"),
                             {"f": folder, "u": uid, "uuid": f"m{folder}{uid}", "k": mailbox - 6, "at": AT,
                              "b": b"\0"})
            conn.execute(text("INSERT INTO expunged_uids (folder_id, uid, modseq) VALUES (:f, 9, 2)"), {"f": folder})
        conn.execute(text("INSERT INTO patients (id, ins, ins_index, ins_index_version, mailbox_id, state,"
                          " provisioned_at, opposition_deadline, notifications_enabled) VALUES"
                          " (5, '#5', :i5, 1, 7, 'open', :at, :at, false),"
                          " (6, '100000000000000', NULL, NULL, 8, 'provisioned', :at, :at, false)"),
                     {"at": AT, "i5": b"\x05" * 32})
        conn.execute(text("INSERT INTO web_sessions (token_hash, patient_id, stage, created_at, last_seen_at,"
                          " csrf_secret) VALUES ('t5', 5, 'full', :at, :at, 'c')"), {"at": AT})


def _foreign_keys(db: Database) -> list[tuple[str, tuple[str, ...], str, str | None]]:
    inspector = inspect(db.engine)
    return [(t, tuple(fk["constrained_columns"]), fk["referred_table"], (fk.get("options") or {}).get("ondelete"))
            for t in inspector.get_table_names() for fk in inspector.get_foreign_keys(t)]


def test_upgrade_in_place_then_downgrade(db_url: str) -> None:
    db = Database(db_url, pool_size=2)
    try:
        migrate.upgrade(db.engine, "0016")
        _seed(db)
        migrate.upgrade(db.engine, "0017")
        with db.engine.begin() as conn:
            rows = conn.execute(text("SELECT folder_id, mailbox_id FROM messages ORDER BY folder_id, uid")).all()
            assert [tuple(r) for r in rows] == [(70, 7), (70, 7), (80, 8), (80, 8), (90, 9), (90, 9)]
            expunged = conn.execute(text("SELECT folder_id, mailbox_id FROM expunged_uids ORDER BY folder_id")).all()
            assert [tuple(r) for r in expunged] == [(70, 7), (80, 8), (90, 9)]
            directory = conn.execute(text("SELECT ins_index, ins_index_version, mailbox_id, patient_id"
                                          " FROM ins_directory")).all()
            assert [tuple(r) for r in directory] == [(b"\x05" * 32, 1, 7, 5)]  # the unconverted row has none
            # the same uuid and UID in another mailbox: unique per mailbox only
            conn.execute(text("INSERT INTO messages (mailbox_id, folder_id, uid, uuid, flags, internal_date, size,"
                              " modseq, sealed) VALUES (9, 90, 3, 'm701', '', :at, 1, 1, :b)"), {"at": AT, "b": b""})
        with pytest.raises(IntegrityError), db.engine.begin() as conn:  # a folder of another mailbox
            conn.execute(text("INSERT INTO messages (mailbox_id, folder_id, uid, uuid, flags, internal_date, size,"
                              " modseq, sealed) VALUES (7, 90, 4, 'x', '', :at, 1, 1, :b)"), {"at": AT, "b": b""})
        fks = _foreign_keys(db)
        assert not [fk for fk in fks if fk[3] and fk[3].upper() == "SET NULL"]
        assert ("messages", ("mailbox_id", "folder_id"), "folders", "CASCADE") in fks
        assert not [fk for fk in fks if fk[0] in ("pro_accounts", "web_sessions", "hosted_domains", "dkim_keys",
                                                  "admins", "mediators") and fk[2] in (*GROUP, "mailboxes")]
        if db.engine.dialect.name == "postgresql":
            inspector = inspect(db.engine)
            for table in GROUP:
                assert inspector.get_pk_constraint(table)["constrained_columns"] == ["mailbox_id", "id"], table
        with db.engine.begin() as conn:  # the composite foreign key cascades, the quota triggers follow
            conn.execute(text("DELETE FROM messages WHERE mailbox_id = 8 AND folder_id = 80 AND uid = 1"))
            assert tuple(conn.execute(text("SELECT used_octets, used_messages FROM folders WHERE id = 80")).one()) \
                == (10, 1)
            conn.execute(text("DELETE FROM folders WHERE mailbox_id = 8 AND id = 80"))
            assert conn.execute(text("SELECT count(*) FROM messages WHERE mailbox_id = 8")).scalar_one() == 0
            assert conn.execute(text("SELECT count(*) FROM expunged_uids WHERE mailbox_id = 8")).scalar_one() == 0
            conn.execute(text("DELETE FROM messages WHERE uuid = 'm701' AND mailbox_id = 9"))
        migrate.downgrade(db.engine, "0016")
        assert migrate.current_revision(db.engine) == "0016"
        with db.engine.begin() as conn:
            assert conn.execute(text("SELECT count(*) FROM messages")).scalar_one() == 4
            assert conn.execute(text("SELECT count(*) FROM web_sessions")).scalar_one() == 1
        assert ("messages", ("data_key_id",), "data_keys", "SET NULL") in _foreign_keys(db)
        assert "ins_directory" not in inspect(db.engine).get_table_names()
        migrate.upgrade(db.engine)
        assert migrate.is_up_to_date(db.engine)
    finally:
        db.dispose()


def test_sqlite_refuses_to_rebuild_with_foreign_keys_on(tmp_path: object) -> None:
    """Run outside gateway.store.migrate (foreign keys on), 0017's rebuilds would delete every
    message by cascade: it refuses instead, and nothing changes."""
    db = Database(f"sqlite:///{tmp_path}/store.db")
    try:
        migrate.upgrade(db.engine, "0016")
        _seed(db)
        cfg = migrate._config()
        with pytest.raises(RuntimeError, match="foreign keys off"), db.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0017")
        assert migrate.current_revision(db.engine) == "0016"
        with db.engine.begin() as conn:
            assert conn.execute(text("SELECT count(*) FROM messages")).scalar_one() == 6
    finally:
        db.dispose()


def test_sqlite_rows_pointing_at_nothing_roll_the_migration_back(tmp_path: object) -> None:
    """Foreign keys are off while SQLite rebuilds the tables; ``PRAGMA foreign_key_check``
    before the commit still refuses a store whose rows point at nothing."""
    path = f"{tmp_path}/store.db"
    db = Database(f"sqlite:///{path}")
    try:
        migrate.upgrade(db.engine, "0016")
        _seed(db)
        raw = sqlite3.connect(path)  # foreign keys off by default: an orphan gets in
        raw.execute("INSERT INTO data_keys (id, mailbox_id, master_version, wrapped, created_at)"
                    " VALUES (99, 12345, 1, x'00', '2027-01-01 00:00:00')")
        raw.commit()
        raw.close()
        with pytest.raises(migrate.ForeignKeyViolation, match="data_keys"):
            migrate.upgrade(db.engine)
        assert migrate.current_revision(db.engine) == "0016"
        assert "ins_directory" not in inspect(db.engine).get_table_names()
    finally:
        db.dispose()
