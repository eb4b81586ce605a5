"""Nothing is lost going down and up the migration chain, on SQLite and PostgreSQL.

A downgrade that rebuilds a table in SQLite batch mode (copy, DROP TABLE, rename) with
foreign keys on would delete, by cascade, every row of the tables referencing it (the
messages of a rebuilt ``folders``, the web sessions of a rebuilt ``patients``). Here a store
at head holds a mailbox, folders, messages, a patient with a web session, a trusted domain
and a queued message; each downgrade step, down to the oldest revision whose downgrade
keeps the schema (0001's drops every table), must keep every row of every table that exists
on both sides of the step; upgrading back to head keeps them too, with the quota triggers
and counters of 0011 back on ``messages``.
"""

from __future__ import annotations

import re
from typing import Any

from alembic.script import ScriptDirectory
from sqlalchemy import event, func, inspect, select, table, text
from sqlalchemy.engine import Connection

from gateway.store import migrate
from gateway.store.db import Database
from gateway.store.partitions import queue_bucket

NOW = "2027-01-01 00:00:00"
OLDEST = "0001"  # its downgrade drops the whole schema: the walk stops there
REBUILD = re.compile(r"CREATE TABLE _alembic_tmp_(\w+)")
TRIGGERS = {"messages_usage_insert", "messages_usage_delete", "messages_usage_update"}


def _downgrade(db: Database, revision: str) -> None:
    migrate.downgrade(db.engine, revision)


def _chain_down_from_head() -> list[str]:
    """Revision ids from head down to OLDEST, head first."""
    script = ScriptDirectory.from_config(migrate._config())
    return [rev.revision for rev in script.walk_revisions()]


def _counts(db: Database) -> dict[str, int]:
    tables = set(inspect(db.engine).get_table_names()) - {"alembic_version"}
    with db.engine.connect() as conn:
        return {t: int(conn.execute(select(func.count()).select_from(table(t))).scalar_one()) for t in sorted(tables)}


def _referenced(db: Database) -> set[str]:
    """Tables some foreign key points at (a rebuild of one cascades into its referrers)."""
    inspector = inspect(db.engine)
    return {fk["referred_table"] for t in inspector.get_table_names() for fk in inspector.get_foreign_keys(t)}


def _triggers(db: Database) -> set[str]:
    with db.engine.connect() as conn:
        if db.engine.dialect.name == "postgresql":
            rows = conn.execute(text("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"
                                     " AND tgrelid = 'messages'::regclass")).scalars()
        else:
            rows = conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger'"
                                     " AND tbl_name = 'messages'")).scalars()
        return set(rows)


def _seed(conn: Connection) -> None:
    conn.execute(text("INSERT INTO mailboxes (id, uid, kind, created_at) VALUES (7, 'u7', 'patient', :at),"
                      " (8, 'u8', 'pro', :at)"), {"at": NOW})
    for folder, mailbox in ((70, 7), (71, 7), (80, 8)):
        conn.execute(text("INSERT INTO folders (id, mailbox_id, name, subscribed, uidvalidity, uidnext,"
                          " highestmodseq, recent_uid, created_at) VALUES (:id, :mb, :name, true, 1, 4, 3, 0, :at)"),
                     {"id": folder, "mb": mailbox, "name": f"F{folder}", "at": NOW})
        for uid in (1, 2, 3):
            conn.execute(text("INSERT INTO messages (mailbox_id, folder_id, uid, uuid, flags, internal_date, size,"
                              " modseq, sealed) VALUES (:mb, :f, :u, :uuid, '', :at, :size, :u, :b)"),
                         {"mb": mailbox, "f": folder, "u": uid, "uuid": f"m{folder}-{uid}", "at": NOW,
                          "size": 100 * uid, "b": b"\0"})
    conn.execute(text("INSERT INTO subscriptions (mailbox_id, name) VALUES (7, 'F70'), (7, 'Gone')"))
    conn.execute(text("INSERT INTO expunged_uids (mailbox_id, folder_id, uid, modseq) VALUES (7, 70, 9, 2)"))
    conn.execute(text("INSERT INTO patients (id, ins, mailbox_id, state, provisioned_at, opposition_deadline,"
                      " notifications_enabled) VALUES (5, '100000000000000', 7, 'open', :at, :at, true)"),
                 {"at": NOW})
    conn.execute(text("INSERT INTO web_sessions (token_hash, patient_id, mailbox_id, stage, created_at,"
                      " last_seen_at, csrf_secret) VALUES ('t1', 5, 7, 'full', :at, :at, 'c1')"), {"at": NOW})
    conn.execute(text("INSERT INTO trusted_domains (name, dkim_policy, tls_required, status, origin, created_at,"
                      " modified_at, dkim_required) VALUES ('op.test', 'none', true, 'active', 'manual', :at, :at,"
                      " false)"), {"at": NOW})
    conn.execute(text("INSERT INTO outbound_queue (bucket, uuid, domain, kind, envelope_sealed, message_sealed,"
                      " size, status, attempts, created_at, next_attempt_at, expires_at) VALUES (:q, 'q1',"
                      " 'op.test', 'relay', :b, :b, 1, 'queued', 0, :at, :at, :at)"),
                 {"at": NOW, "b": b"\0", "q": queue_bucket("q1")})


def test_downgrades_step_by_step_then_upgrade_keep_every_row(db_url: str) -> None:
    db = Database(db_url)
    statements: list[str] = []
    rebuilt_with_keys_on: set[str] = set()

    def record(_conn: Any, cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)
        rebuild = REBUILD.search(statement)
        if rebuild and cursor.connection.execute("PRAGMA foreign_keys").fetchone()[0]:
            rebuilt_with_keys_on.add(rebuild.group(1))

    try:
        migrate.upgrade(db.engine)
        with db.engine.begin() as conn:
            _seed(conn)
        event.listen(db.engine, "before_cursor_execute", record)
        before = _counts(db)
        assert before["messages"] == 9 and before["folders"] == 3 and before["web_sessions"] == 1
        chain = _chain_down_from_head()
        assert chain[-1] == OLDEST and "0008" in chain and "0021" in chain
        for target in chain[1:]:
            _downgrade(db, target)
            assert migrate.current_revision(db.engine) == target
            after = _counts(db)
            kept = {t: n for t, n in after.items() if t in before}
            assert kept == {t: before[t] for t in kept}, f"rows lost going down to {target}"
            assert after["messages"] == 9, f"messages lost going down to {target}"
            before = after
        assert not _triggers(db)
        migrate.upgrade(db.engine)
        assert migrate.is_up_to_date(db.engine)
        after = _counts(db)
        assert {t: n for t, n in after.items() if t in before} == {t: before[t] for t in after if t in before}
        assert after["messages"] == 9 and after["folders"] == 3
        assert _triggers(db) == TRIGGERS
        # no batch rebuild (copy to _alembic_tmp_<table>, DROP TABLE, rename), down or up, of a
        # table another references while foreign keys are enforced (0004's upgrade rebuilds
        # trusted_domains: nothing points at it; 0017 rebuilds with them off, gateway.store.migrate)
        rebuilt = {m.group(1) for m in map(REBUILD.search, statements) if m}
        assert statements and not rebuilt_with_keys_on & _referenced(db)
        assert db.engine.dialect.name != "sqlite" or rebuilt & _referenced(db)  # 0017 did rebuild some
        with db.engine.begin() as conn:
            rows = conn.execute(text("SELECT id, used_octets, used_messages FROM folders ORDER BY id")).all()
            assert [tuple(r) for r in rows] == [(70, 600, 3), (71, 600, 3), (80, 600, 3)]  # refilled
            # 0021 dropped the session's mailbox going down and filled it again from its patient
            assert conn.execute(text("SELECT mailbox_id FROM web_sessions WHERE token_hash = 't1'")).scalar_one() == 7
            conn.execute(text("DELETE FROM messages WHERE folder_id = 71 AND uid = 3"))  # the triggers work
            assert tuple(conn.execute(text("SELECT used_octets, used_messages FROM folders WHERE id = 71")).one()) \
                == (300, 2)
    finally:
        db.dispose()
