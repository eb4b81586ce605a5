"""The statement analysis of the Citus check (tests/dist_statements.py, issue 23) on known shapes."""

from __future__ import annotations

import pytest

from tests.dist_statements import analyse, shape

ROUTED = [
    "SELECT folders.id FROM folders WHERE folders.mailbox_id = %(mailbox_id_1)s AND folders.name = %(name_1)s",
    "UPDATE folders SET uidnext=(folders.uidnext + %s) WHERE folders.mailbox_id = %s AND folders.id = %s",
    "DELETE FROM login_counters WHERE login_counters.key = %(key_1)s",
    "UPDATE login_counters SET failures=%(failures)s WHERE login_counters.key = %(login_counters_key)s",
    "INSERT INTO conversations (uuid, mailbox_id) VALUES (%(uuid)s, %(mailbox_id)s) RETURNING conversations.id",
    "SELECT m.id FROM messages AS m JOIN folders AS f ON f.mailbox_id = m.mailbox_id AND f.id = m.folder_id "
    "WHERE f.mailbox_id = %s",
    "SELECT p.id FROM patients AS p JOIN pro_accounts AS a ON a.id = %s WHERE p.mailbox_id = %s",
    "SELECT id FROM outbound_queue WHERE bucket = %s AND status = 'pending' FOR UPDATE SKIP LOCKED",
    "SELECT f.id FROM folders AS f WHERE f.mailbox_id = %s AND EXISTS "
    "(SELECT 1 FROM messages AS m WHERE m.mailbox_id = f.mailbox_id AND m.folder_id = f.id)",
    "COPY patients (ins_index, mailbox_id, state) FROM STDIN",
    "INSERT INTO mailboxes (uid, kind) VALUES (%s, %s) RETURNING mailboxes.id",  # id: nextval, on the coordinator
    "SELECT hosted_domains.id FROM hosted_domains WHERE hosted_domains.name = %s",
    "SAVEPOINT sa_savepoint_1",
    # a read of a few values' shards: Citus prunes to them (a fan-out bounded by the list)
    "SELECT folders.id FROM folders WHERE folders.mailbox_id IN (%(m_1_1)s, %(m_1_2)s)",
    "SELECT login_counters.key FROM login_counters WHERE login_counters.key IN (%(k_1)s) FOR UPDATE",
]

UNROUTED = [
    ("SELECT patients.id FROM patients WHERE patients.ins_index = %s", "unrouted", "patients"),
    ("UPDATE folders SET uidnext = uidnext + 1 WHERE folders.id = %s", "unrouted", "folders"),
    ("SELECT id FROM outbound_queue WHERE status = 'pending' ORDER BY id LIMIT 10 FOR UPDATE SKIP LOCKED",
     "unrouted", "outbound_queue"),
    ("SELECT messages.id FROM messages JOIN folders ON folders.id = messages.folder_id "
     "WHERE folders.mailbox_id = %s", "join", "messages"),
    ("SELECT w.id FROM web_sessions AS w JOIN patients AS p ON p.id = w.patient_id "
     "WHERE w.token_hash = %s AND p.mailbox_id = %s", "join", "web_sessions"),
    ("SELECT folders.id FROM folders WHERE folders.mailbox_id = %s OR folders.mailbox_id = %s",
     "unrouted", "folders"),
    ("SELECT folders.id FROM folders WHERE folders.mailbox_id IN (%(m_1_1)s, %(m_1_2)s) FOR UPDATE",
     "unrouted", "folders"),  # Citus locks rows on one shard only
    ("SELECT folders.id FROM folders WHERE folders.mailbox_id IN (SELECT id FROM mailboxes)", "unrouted", "folders"),
    ("INSERT INTO messages (folder_id, uid) VALUES (%s, %s)", "unrouted", "messages"),
    ("COPY patients (ins_index, state) FROM STDIN", "unrouted", "patients"),
    ("UPDATE login_counters SET key=%(key)s WHERE login_counters.key = %(login_counters_key)s",
     "moved", "login_counters"),  # Citus never moves a row to another shard
    ("SELECT a.id FROM pro_accounts AS a WHERE a.address = %s AND EXISTS "
     "(SELECT 1 FROM mailboxes AS m WHERE m.id = a.mailbox_id)", "correlated", "mailboxes"),
]


@pytest.mark.parametrize("sql", ROUTED)
def test_routed_statements_pass(sql: str) -> None:
    assert analyse(sql) == ()


@pytest.mark.parametrize(("sql", "rule", "table"), UNROUTED)
def test_unrouted_statements_are_found(sql: str, rule: str, table: str) -> None:
    assert (rule, table) in {(p.rule, p.table) for p in analyse(sql)}, analyse(sql)


def test_the_shape_shows_no_value() -> None:
    sql = ("SELECT x FROM patients WHERE ins = '123456789012345' AND mailbox_id IN (%(m_1)s, %(m_2)s) "
           "AND id = 42")
    out = shape(sql)
    assert "123456789012345" not in out
    assert out == "SELECT x FROM patients WHERE ins = '…' AND mailbox_id IN (?, …) AND id = 42"


@pytest.mark.postgres
def test_the_capture_sees_orm_driver_and_copy_statements_with_their_origin(pg_admin: str) -> None:
    """Through SQLAlchemy (alembic), a :mod:`gateway.store.raw` statement on the driver's
    cursor and the bulk import's ``COPY``, each named by the gateway function that sent it;
    the test's own statements are not kept, and never a parameter."""
    import random
    from datetime import UTC, datetime

    from sqlalchemy import text

    from gateway.accounts import bulk
    from gateway.mailstore import folders
    from gateway.store import migrate
    from gateway.testing import pg
    from gateway.testing.store import open_store
    from routing.ins import synthetic_ins
    from tests.dist_plugin import Capture

    with pg.temporary_database() as url:
        store = open_store(url)
        capture = Capture()
        capture.start()
        try:
            migrate.current_revision(store.db.engine)
            ins = synthetic_ins(random.Random(7))
            batch = bulk.prepare_batch(store.ring, [(ins, None)])
            now = datetime.now(UTC)
            with store.db.write() as session:
                bulk.insert_batch(session, batch, now=now, opposition_deadline=now, code_expires_at=now,
                                  open_now=True)
                session.execute(text("SELECT 'from the test itself'"))
            with store.db.write() as session:
                assert folders.take_uid(session, 1, "INBOX") is not None
        finally:
            capture.stop()
            store.close()
    origins = {(where.split(":", 1)[0], where.rsplit(" ", 1)[1]): sql for (sql, (where, _names)) in capture.seen}
    assert ("gateway/store/migrate.py", "current_revision") in origins
    assert origins[("gateway/mailstore/folders.py", "take_uid")].startswith("UPDATE folders SET uidnext")
    copies = [sql for (sql, (where, _n)) in capture.seen if sql.startswith("COPY")]
    # mailboxes, data_keys, folders, patients and (since migration 0017) ins_directory
    assert len(copies) == 5 and all(w.startswith("gateway/accounts/bulk.py") for (s, (w, _n)) in capture.seen
                                    if s.startswith("COPY"))
    assert not any("from the test itself" in sql for (sql, _o) in capture.seen)
    assert not any(ins in sql for (sql, _o) in capture.seen)


def test_an_allowed_fanout_is_allowed_only_from_its_function_and_only_when_unrouted() -> None:
    from tests.dist_plugin import allowance

    assert allowance("unrouted", "patients", "gateway.mailstore.adoption:figures")
    assert allowance("unrouted", "patients", "gateway.accounts.patients:purge_patient") is None
    assert allowance("join", "patients", "gateway.mailstore.adoption:figures") is None
    assert allowance("unrouted", "messages", "gateway.mailstore.adoption:figures") is None


def test_the_professional_rcpt_lookup_routes_and_its_old_single_statement_did_not() -> None:
    """Citus refused the one-statement lookup (a reference table joined into the distributed
    ``mailboxes`` with a sub-query on ``data_keys`` correlated to it); the two statements the MX
    now runs each route to one shard (issue 23)."""
    from gateway.delivery import directory

    for statement in (directory._ACCOUNT, directory._PRO_MAILBOX):
        assert analyse(statement.sql.replace("?", "%s")) == (), statement.sql
    old = ("SELECT a.id, a.status, a.mailbox_id, a.accepts_patient_initiated,"
           " (SELECT max(k.id) FROM data_keys k WHERE k.mailbox_id = a.mailbox_id), m.quota_storage_kib,"
           " m.quota_messages FROM pro_accounts a JOIN mailboxes m ON m.id = a.mailbox_id WHERE a.address = %s")
    assert analyse(old) != ()
