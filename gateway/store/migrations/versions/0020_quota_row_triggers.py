"""Quota bookkeeping by row-level triggers on PostgreSQL too (issue 23)

Revision ID: 0020
Revises: 0019
Create Date: 2027-03-15 10:00:00

Migration 0011 keeps each folder's ``used_octets``/``used_messages`` by triggers on
``messages``: on SQLite one per row, on PostgreSQL one per statement reading the transition
tables (``REFERENCING NEW TABLE AS new_rows``). Citus runs a distributed table's triggers on its
shards, and there a statement-level trigger's transition tables are not found ("executor could
not find named tuplestore "new_rows"", seen on Citus 12.1 at the first delivery), so on
PostgreSQL the insert and delete triggers become row-level, like SQLite's and like the update
trigger already is. Each one updates the one folder of the row, by its full key
``(mailbox_id, id)``: on Citus the co-located shard of the same worker.

A statement inserting or deleting many messages of one folder (an IMAP COPY, an expunge) now
updates the folder row once per message instead of once per statement; measured in the issue
note, and the same as SQLite has always done.

On a Citus coordinator where ``messages`` is already distributed, changing its triggers needs
``citus.enable_unsafe_triggers`` (set for this transaction only): these triggers only touch the
co-located ``folders`` row, which is what makes them safe here. The transaction's multi-shard
commands also go sequential there (Citus runs no function command after a parallel one).

SQLite: nothing changes. Downgrade: the statement-level triggers of 0017 come back.
"""

from __future__ import annotations

from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

_ADD = ("UPDATE folders SET used_octets = used_octets + NEW.size, used_messages = used_messages + 1"
        " WHERE mailbox_id = NEW.mailbox_id AND id = NEW.folder_id")
_SUB = ("UPDATE folders SET used_octets = used_octets - OLD.size, used_messages = used_messages - 1"
        " WHERE mailbox_id = OLD.mailbox_id AND id = OLD.folder_id")

ROW_FUNCTION = f"""CREATE OR REPLACE FUNCTION messages_usage_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        {_ADD};
    ELSE
        {_SUB};
    END IF;
    RETURN NULL;
END $$"""

ROW_TRIGGERS = (
    "CREATE TRIGGER messages_usage_insert AFTER INSERT ON messages FOR EACH ROW EXECUTE FUNCTION messages_usage_rows()",
    "CREATE TRIGGER messages_usage_delete AFTER DELETE ON messages FOR EACH ROW EXECUTE FUNCTION messages_usage_rows()",
)

# 0017's statement-level function and triggers (the downgrade)
STATEMENT_FUNCTION = """CREATE OR REPLACE FUNCTION messages_usage_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE folders f SET used_octets = f.used_octets + n.octets, used_messages = f.used_messages + n.count
        FROM (SELECT mailbox_id, folder_id, sum(size) AS octets, count(*) AS count FROM new_rows
              GROUP BY mailbox_id, folder_id) n
        WHERE f.mailbox_id = n.mailbox_id AND f.id = n.folder_id;
    ELSE
        UPDATE folders f SET used_octets = f.used_octets - o.octets, used_messages = f.used_messages - o.count
        FROM (SELECT mailbox_id, folder_id, sum(size) AS octets, count(*) AS count FROM old_rows
              GROUP BY mailbox_id, folder_id) o
        WHERE f.mailbox_id = o.mailbox_id AND f.id = o.folder_id;
    END IF;
    RETURN NULL;
END $$"""
STATEMENT_TRIGGERS = (
    "CREATE TRIGGER messages_usage_insert AFTER INSERT ON messages REFERENCING NEW TABLE AS new_rows"
    " FOR EACH STATEMENT EXECUTE FUNCTION messages_usage_rows()",
    "CREATE TRIGGER messages_usage_delete AFTER DELETE ON messages REFERENCING OLD TABLE AS old_rows"
    " FOR EACH STATEMENT EXECUTE FUNCTION messages_usage_rows()",
)


def _replace(function: str, triggers: tuple[str, ...]) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    if bind.exec_driver_sql("SELECT 1 FROM pg_extension WHERE extname = 'citus'").scalar():
        op.execute("SET LOCAL citus.enable_unsafe_triggers = on")
        # a function command after DDL on a distributed table needs one connection per worker
        op.execute("SET LOCAL citus.multi_shard_modify_mode = 'sequential'")
    for name in ("messages_usage_insert", "messages_usage_delete"):
        op.execute(f"DROP TRIGGER IF EXISTS {name} ON messages")
    op.execute(function)
    for statement in triggers:
        op.execute(statement)


def upgrade() -> None:
    _replace(ROW_FUNCTION, ROW_TRIGGERS)


def downgrade() -> None:
    _replace(STATEMENT_FUNCTION, STATEMENT_TRIGGERS)
