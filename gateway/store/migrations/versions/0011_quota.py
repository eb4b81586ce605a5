"""Per-mailbox quota limits (RFC 9208 STORAGE and MESSAGE) and per-folder usage counters

Revision ID: 0011
Revises: 0010
Create Date: 2027-01-20 10:00:00

``mailboxes.quota_storage_kib`` / ``mailboxes.quota_messages``: the limits an admin set for
the mailbox; NULL takes the configured default (``[quota]``), 0 means no limit.

``folders.used_octets`` / ``folders.used_messages``: the folder's messages' sizes and count,
kept by triggers on ``messages`` in the very statement that inserts, deletes or moves a row,
so whatever path writes messages (delivery, APPEND, COPY/MOVE, EXPUNGE, a folder or a
mailbox deleted, a purge) the counters move in the same transaction, and a mailbox's usage
is a sum over its few folders. A folder deleted takes its counters with it (the cascade's
updates find no row). SQLite: row triggers. PostgreSQL: statement triggers with transition
tables for INSERT and DELETE (one UPDATE per folder per statement, not per row), a row
trigger for a message that changes folder (INBOX renamed). Filled from the messages at
upgrade (issue 18).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_FILL = ("UPDATE folders"
         " SET used_octets = (SELECT coalesce(sum(m.size), 0) FROM messages m WHERE m.folder_id = folders.id),"
         " used_messages = (SELECT count(*) FROM messages m WHERE m.folder_id = folders.id)")
_ADD = ("UPDATE folders SET used_octets = used_octets + {r}.size, used_messages = used_messages + 1"
        " WHERE id = {r}.folder_id")
_SUB = ("UPDATE folders SET used_octets = used_octets - {r}.size, used_messages = used_messages - 1"
        " WHERE id = {r}.folder_id")

SQLITE = (
    f"CREATE TRIGGER messages_usage_insert AFTER INSERT ON messages BEGIN {_ADD.format(r='NEW')}; END",
    f"CREATE TRIGGER messages_usage_delete AFTER DELETE ON messages BEGIN {_SUB.format(r='OLD')}; END",
    "CREATE TRIGGER messages_usage_update AFTER UPDATE OF folder_id, size ON messages"
    f" BEGIN {_SUB.format(r='OLD')}; {_ADD.format(r='NEW')}; END",
)
POSTGRESQL = (
    """CREATE FUNCTION messages_usage_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE folders f SET used_octets = f.used_octets + n.octets, used_messages = f.used_messages + n.count
        FROM (SELECT folder_id, sum(size) AS octets, count(*) AS count FROM new_rows GROUP BY folder_id) n
        WHERE f.id = n.folder_id;
    ELSE
        UPDATE folders f SET used_octets = f.used_octets - o.octets, used_messages = f.used_messages - o.count
        FROM (SELECT folder_id, sum(size) AS octets, count(*) AS count FROM old_rows GROUP BY folder_id) o
        WHERE f.id = o.folder_id;
    END IF;
    RETURN NULL;
END $$""",
    """CREATE FUNCTION messages_usage_move() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    """ + _SUB.format(r="OLD") + """;
    """ + _ADD.format(r="NEW") + """;
    RETURN NULL;
END $$""",
    "CREATE TRIGGER messages_usage_insert AFTER INSERT ON messages REFERENCING NEW TABLE AS new_rows"
    " FOR EACH STATEMENT EXECUTE FUNCTION messages_usage_rows()",
    "CREATE TRIGGER messages_usage_delete AFTER DELETE ON messages REFERENCING OLD TABLE AS old_rows"
    " FOR EACH STATEMENT EXECUTE FUNCTION messages_usage_rows()",
    "CREATE TRIGGER messages_usage_update AFTER UPDATE OF folder_id, size ON messages FOR EACH ROW"
    " WHEN (OLD.folder_id IS DISTINCT FROM NEW.folder_id OR OLD.size IS DISTINCT FROM NEW.size)"
    " EXECUTE FUNCTION messages_usage_move()",
)
TRIGGERS = ("messages_usage_insert", "messages_usage_delete", "messages_usage_update")


def upgrade() -> None:
    # ADD COLUMN in place on both stores (no table rebuild: the rows and their references stay).
    op.add_column("mailboxes", sa.Column("quota_storage_kib", sa.BigInteger(), nullable=True))
    op.add_column("mailboxes", sa.Column("quota_messages", sa.BigInteger(), nullable=True))
    op.add_column("folders", sa.Column("used_octets", sa.BigInteger(), server_default="0", nullable=False))
    op.add_column("folders", sa.Column("used_messages", sa.BigInteger(), server_default="0", nullable=False))
    op.execute(_FILL)
    for statement in POSTGRESQL if op.get_bind().dialect.name == "postgresql" else SQLITE:
        op.execute(statement)


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for name in TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name}" + (" ON messages" if postgresql else ""))
    if postgresql:
        op.execute("DROP FUNCTION IF EXISTS messages_usage_rows()")
        op.execute("DROP FUNCTION IF EXISTS messages_usage_move()")
    # ALTER TABLE ... DROP COLUMN in place (SQLite >= 3.35 too): a batch rebuild would drop
    # ``folders`` and ``mailboxes``, and with foreign keys on, their messages by cascade.
    for table, column in (("folders", "used_messages"), ("folders", "used_octets"),
                          ("mailboxes", "quota_messages"), ("mailboxes", "quota_storage_kib")):
        op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
