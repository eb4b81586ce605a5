"""Migration 0011 (mailbox quotas, issue 18) on SQLite and PostgreSQL: the usage counters
are filled from the messages already stored, then kept by the triggers whatever path writes
messages (insert, delete, move to another folder, a folder or a mailbox deleted, ORM or
driver level); downgrade removes columns and triggers, and upgrading again gives the
models' schema."""

from __future__ import annotations

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from gateway.store import migrate
from gateway.store.db import Database

NOW = "2027-01-01 00:00:00"


def _downgrade(db: Database, revision: str) -> None:
    migrate.downgrade(db.engine, revision)


def _messages(conn: Connection, folder: int, first: int, sizes: list[int], *, mailbox: int | None = None) -> None:
    """Rows of ``folder``; ``mailbox``: its mailbox, at a revision where messages carry it (0017)."""
    columns, values = ("mailbox_id, ", ":mb, ") if mailbox is not None else ("", "")
    for n, size in enumerate(sizes, start=first):
        sql = (f"INSERT INTO messages ({columns}folder_id, uid, uuid, flags, internal_date, size, modseq, sealed)"  # noqa: S608
               f" VALUES ({values}:f, :u, :uuid, '', :at, :size, 1, :b)")
        conn.execute(text(sql),
                     {"mb": mailbox, "f": folder, "u": n, "uuid": f"m{folder}-{n}", "at": NOW, "size": size,
                      "b": b"\0"})


def _counters(conn: Connection) -> dict[int, tuple[int, int]]:
    rows = conn.execute(text("SELECT id, used_octets, used_messages FROM folders ORDER BY id")).all()
    return {int(i): (int(o), int(m)) for i, o, m in rows}


def _triggers(db: Database) -> set[str]:
    with db.engine.connect() as conn:
        if db.engine.dialect.name == "postgresql":
            rows = conn.execute(text("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"
                                     " AND tgrelid = 'messages'::regclass")).scalars()
        else:
            rows = conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger'"
                                     " AND tbl_name = 'messages'")).scalars()
        return set(rows)


def test_0011_fills_then_keeps_the_counters_and_goes_down_and_up(db_url: str) -> None:
    db = Database(db_url)
    try:
        assert (migrate.head_revision() or "") >= "0011"  # later revisions go down through it
        migrate.upgrade(db.engine, "0010")
        with db.engine.begin() as conn:
            conn.execute(text("INSERT INTO mailboxes (id, uid, kind, created_at) VALUES (7, 'u7', 'pro', :at),"
                              " (8, 'u8', 'pro', :at)"), {"at": NOW})
            for folder, mailbox in ((70, 7), (71, 7), (80, 8)):
                conn.execute(text("INSERT INTO folders (id, mailbox_id, name, subscribed, uidvalidity, uidnext,"
                                  " highestmodseq, recent_uid, created_at) VALUES (:id, :mb, :name, true, 1, 1, 1, 0,"
                                  " :at)"), {"id": folder, "mb": mailbox, "name": f"F{folder}", "at": NOW})
            _messages(conn, 70, 1, [100, 200])
        migrate.upgrade(db.engine)
        assert _triggers(db) == {"messages_usage_insert", "messages_usage_delete", "messages_usage_update"}
        with db.engine.begin() as conn:
            row = conn.execute(text("SELECT quota_storage_kib, quota_messages FROM mailboxes WHERE id = 7")).one()
            assert tuple(row) == (None, None)  # the configured default
            assert _counters(conn) == {70: (300, 2), 71: (0, 0), 80: (0, 0)}  # filled at upgrade
            _messages(conn, 71, 1, [10, 20, 30], mailbox=7)  # one statement each
            conn.execute(text("INSERT INTO messages (mailbox_id, folder_id, uid, uuid, flags, internal_date, size,"
                              " modseq, sealed) SELECT 8, 80, uid, uuid || 'c', flags, internal_date, size, modseq,"
                              " sealed FROM messages WHERE folder_id = 71"))  # several rows in one statement
            assert _counters(conn) == {70: (300, 2), 71: (60, 3), 80: (60, 3)}
            conn.execute(text("DELETE FROM messages WHERE folder_id = 71 AND size >= 20"))
            conn.execute(text("UPDATE messages SET folder_id = 71, uid = 9 WHERE folder_id = 70 AND size = 100"))
            conn.execute(text("UPDATE messages SET flags = '\\Seen', modseq = 5 WHERE folder_id = 80"))
            assert _counters(conn) == {70: (200, 1), 71: (110, 2), 80: (60, 3)}
            conn.execute(text("DELETE FROM messages WHERE folder_id = 70"))
            conn.execute(text("DELETE FROM folders WHERE id = 70"))
            assert _counters(conn) == {71: (110, 2), 80: (60, 3)}
        _downgrade(db, "0010")
        assert migrate.current_revision(db.engine) == "0010"
        assert not _triggers(db)
        assert not {"used_octets", "used_messages"} & {c["name"] for c in inspect(db.engine).get_columns("folders")}
        assert not {"quota_storage_kib"} & {c["name"] for c in inspect(db.engine).get_columns("mailboxes")}
        migrate.upgrade(db.engine)
        with db.engine.connect() as conn:
            assert _counters(conn) == {71: (110, 2), 80: (60, 3)}  # filled again
            diff = migrate.schema_diff(conn)
        assert diff == []
    finally:
        db.dispose()


def _statement_level(db: Database) -> set[str]:
    """Triggers on ``messages`` that fire once per statement or read transition tables: Citus
    cannot run them on a distributed table's shards (issue 23)."""
    with db.engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgrelid = 'messages'::regclass"
            " AND (tgtype & 1 = 0 OR tgnewtable IS NOT NULL OR tgoldtable IS NOT NULL)")).scalars()
        return set(rows)


def test_0020_row_level_triggers_on_postgresql_down_and_up(db_url: str) -> None:
    db = Database(db_url)
    try:
        migrate.upgrade(db.engine)
        if db.engine.dialect.name != "postgresql":
            assert _triggers(db) == {"messages_usage_insert", "messages_usage_delete", "messages_usage_update"}
            return  # SQLite's were row-level from the start
        assert _triggers(db) == {"messages_usage_insert", "messages_usage_delete", "messages_usage_update"}
        assert _statement_level(db) == set()
        _downgrade(db, "0019")
        assert _statement_level(db) == {"messages_usage_insert", "messages_usage_delete"}
        migrate.upgrade(db.engine)
        assert _statement_level(db) == set()
        with db.engine.connect() as conn:
            assert migrate.schema_diff(conn) == []
    finally:
        db.dispose()
