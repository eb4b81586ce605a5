"""Distribute by mailbox: the mailbox group's keys include mailbox_id; the INS directory

Revision ID: 0017
Revises: 0016
Create Date: 2027-02-10 10:00:00

Issue 23 (Citus, ``docs/deploy.md`` "Distribution plan"). The tables of a mailbox (``mailboxes``,
``data_keys``, ``patients``, ``folders``, ``subscriptions``, ``expunged_uids``, ``messages``,
``message_chunks``, ``conversations``) are distributed by the mailbox id, so:

- ``messages`` and ``expunged_uids`` get ``mailbox_id`` (their folder's, filled here);
- every primary key and unique constraint includes ``mailbox_id``: ``(mailbox_id, id)``,
  ``messages (mailbox_id, folder_id, uid)`` and ``(mailbox_id, uuid)``, ``conversations
  (mailbox_id, uuid)``, ``expunged_uids (mailbox_id, folder_id, uid)``, ``message_chunks
  (mailbox_id, message_uuid, seq)``; ``mailboxes.uid`` (random, 128 bits) is no longer unique;
- the foreign keys from ``messages`` and ``expunged_uids`` to ``folders`` are composite
  ``(mailbox_id, folder_id) -> folders (mailbox_id, id)``;
- no ``ON DELETE SET NULL`` foreign key is left (``messages.data_key_id`` and
  ``conversation_id``, ``conversations.data_key_id``, ``outbound_queue.data_key_id``, the
  system key ids of ``hosted_domains``, ``dkim_keys``, ``admins``, ``mediators``): a purge deletes
  the rows itself before shredding the keys; the reference tables point at nothing distributed
  (``pro_accounts.mailbox_id``, ``web_sessions.patient_id``: dropped, columns kept);
- the INS's global uniqueness moves to ``ins_directory`` (keyed index -> mailbox, patient),
  filled from the patients' keyed indexes.

SQLite keeps ``id INTEGER PRIMARY KEY`` on the tables with an ``id`` (the rowid: globally
unique, strictly stronger than ``(mailbox_id, id)``, and what gives the ORM its new ids);
``folders`` also gets ``UNIQUE (mailbox_id, id)``, the parent key of the composite foreign keys
(``gateway.store.models.SQLITE_ONLY``). PostgreSQL gets the composite primary keys (the id
sequences stay). Tables are rebuilt on SQLite with foreign keys off (``gateway.store.migrate``),
the quota triggers of 0011 recreated, now matching the folder on the mailbox too.
"""

from __future__ import annotations

import warnings

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

ID_TABLES = ("data_keys", "patients", "folders", "subscriptions", "messages", "conversations")
# Foreign keys dropped: (table, column, referred table, ON DELETE before).
DROPPED = (
    ("messages", "data_key_id", "data_keys", "SET NULL"),
    ("messages", "conversation_id", "conversations", "SET NULL"),
    ("conversations", "data_key_id", "data_keys", "SET NULL"),
    ("outbound_queue", "data_key_id", "data_keys", "SET NULL"),
    ("hosted_domains", "dkim_data_key_id", "data_keys", "SET NULL"),
    ("dkim_keys", "data_key_id", "data_keys", "SET NULL"),
    ("admins", "totp_data_key_id", "data_keys", "SET NULL"),
    ("mediators", "totp_data_key_id", "data_keys", "SET NULL"),
    ("pro_accounts", "mailbox_id", "mailboxes", None),
    ("web_sessions", "patient_id", "patients", "CASCADE"),
)
GROUPED = ("messages", "expunged_uids")  # the foreign key to folders becomes (mailbox_id, folder_id)
FILL = {"sqlite": "UPDATE {t} SET mailbox_id = (SELECT f.mailbox_id FROM folders f WHERE f.id = {t}.folder_id)",
        "postgresql": "UPDATE {t} SET mailbox_id = f.mailbox_id FROM folders f WHERE f.id = {t}.folder_id"}
DIRECTORY_FILL = ("INSERT INTO ins_directory (ins_index, ins_index_version, mailbox_id, patient_id)"
                  " SELECT ins_index, ins_index_version, mailbox_id, id FROM patients"
                  " WHERE ins_index IS NOT NULL AND ins_index_version IS NOT NULL")

_ADD = ("UPDATE folders SET used_octets = used_octets + {r}.size, used_messages = used_messages + 1"
        " WHERE id = {r}.folder_id{mb}")
_SUB = ("UPDATE folders SET used_octets = used_octets - {r}.size, used_messages = used_messages - 1"
        " WHERE id = {r}.folder_id{mb}")
TRIGGERS = ("messages_usage_insert", "messages_usage_delete", "messages_usage_update")


def _sqlite_triggers(grouped: bool) -> tuple[str, ...]:
    new, old = (" AND mailbox_id = NEW.mailbox_id", " AND mailbox_id = OLD.mailbox_id") if grouped else ("", "")
    return (
        f"CREATE TRIGGER messages_usage_insert AFTER INSERT ON messages BEGIN {_ADD.format(r='NEW', mb=new)}; END",
        f"CREATE TRIGGER messages_usage_delete AFTER DELETE ON messages BEGIN {_SUB.format(r='OLD', mb=old)}; END",
        "CREATE TRIGGER messages_usage_update AFTER UPDATE OF folder_id, size ON messages"
        f" BEGIN {_SUB.format(r='OLD', mb=old)}; {_ADD.format(r='NEW', mb=new)}; END",
    )


def _pg_functions(grouped: bool) -> tuple[str, ...]:
    """0011's trigger functions; grouped: the folder matched on (mailbox_id, id)."""
    key = "mailbox_id, folder_id" if grouped else "folder_id"
    on = "f.mailbox_id = {a}.mailbox_id AND f.id = {a}.folder_id" if grouped else "f.id = {a}.folder_id"
    new, old = (" AND mailbox_id = NEW.mailbox_id", " AND mailbox_id = OLD.mailbox_id") if grouped else ("", "")
    return (
        f"""CREATE OR REPLACE FUNCTION messages_usage_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE folders f SET used_octets = f.used_octets + n.octets, used_messages = f.used_messages + n.count
        FROM (SELECT {key}, sum(size) AS octets, count(*) AS count FROM new_rows GROUP BY {key}) n
        WHERE {on.format(a='n')};
    ELSE
        UPDATE folders f SET used_octets = f.used_octets - o.octets, used_messages = f.used_messages - o.count
        FROM (SELECT {key}, sum(size) AS octets, count(*) AS count FROM old_rows GROUP BY {key}) o
        WHERE {on.format(a='o')};
    END IF;
    RETURN NULL;
END $$""",  # noqa: S608 (constants only)
        """CREATE OR REPLACE FUNCTION messages_usage_move() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    """ + _SUB.format(r="OLD", mb=old) + """;
    """ + _ADD.format(r="NEW", mb=new) + """;
    RETURN NULL;
END $$""",
    )


def _fk_name(table: str, column: str, referred: str) -> str | None:
    for fk in sa.inspect(op.get_bind()).get_foreign_keys(table):
        if fk["referred_table"] == referred and column in fk["constrained_columns"]:
            return str(fk["name"])
    return None


def _check_foreign_keys_off() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite" and bind.exec_driver_sql("PRAGMA foreign_keys").scalar():
        raise RuntimeError("0017 rebuilds tables others reference: run it through gateway.store.migrate "
                           "(foreign keys off), or the rebuild deletes their rows by cascade")


def _directory() -> None:
    op.create_table(
        "ins_directory",
        sa.Column("ins_index", sa.LargeBinary(), nullable=False),
        sa.Column("ins_index_version", sa.Integer(), nullable=False),
        sa.Column("mailbox_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("patient_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.PrimaryKeyConstraint("ins_index", name=op.f("pk_ins_directory")),
    )
    op.execute(DIRECTORY_FILL)


def upgrade() -> None:
    _check_foreign_keys_off()
    postgresql = op.get_bind().dialect.name == "postgresql"
    for table in GROUPED:
        op.add_column(table, sa.Column("mailbox_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                                       nullable=True))
        op.execute(FILL["postgresql" if postgresql else "sqlite"].format(t=table))
    if postgresql:
        _upgrade_postgresql()
    else:
        _upgrade_sqlite()
    op.drop_index("ix_patients_ins_index", table_name="patients")
    op.create_index(op.f("ix_patients_ins"), "patients", ["ins"], unique=False)
    op.drop_index("ix_message_chunks_mailbox_id", table_name="message_chunks")
    op.drop_index("ix_conversations_mailbox_id", table_name="conversations")
    for name, table, columns in (("ix_messages_folder_modseq", "messages", ["mailbox_id", "folder_id", "modseq"]),
                                 ("ix_messages_conversation_id", "messages", ["mailbox_id", "conversation_id"]),
                                 ("ix_expunged_uids_folder_modseq", "expunged_uids",
                                  ["mailbox_id", "folder_id", "modseq"])):
        op.drop_index(name, table_name=table)
        op.create_index(name, table, columns, unique=False)
    _directory()


def _upgrade_postgresql() -> None:
    for table, column, referred, _ in DROPPED:
        name = _fk_name(table, column, referred)
        if name is not None:
            op.drop_constraint(name, table, type_="foreignkey")
    for table in GROUPED:
        op.drop_constraint(f"fk_{table}_folder_id_folders", table, type_="foreignkey")
        op.alter_column(table, "mailbox_id", nullable=False)
    op.alter_column("patients", "mailbox_id", nullable=False)
    for table in ID_TABLES:
        op.drop_constraint(f"pk_{table}", table, type_="primary")
        op.create_primary_key(f"pk_{table}", table, ["mailbox_id", "id"])
    op.drop_constraint("pk_expunged_uids", "expunged_uids", type_="primary")
    op.create_primary_key("pk_expunged_uids", "expunged_uids", ["mailbox_id", "folder_id", "uid"])
    op.drop_constraint("pk_message_chunks", "message_chunks", type_="primary")
    op.create_primary_key("pk_message_chunks", "message_chunks", ["mailbox_id", "message_uuid", "seq"])
    op.drop_constraint("uq_mailboxes_uid", "mailboxes", type_="unique")
    op.drop_constraint("uq_patients_ins", "patients", type_="unique")
    _grouped_uniques()
    for table in GROUPED:
        op.create_foreign_key(f"fk_{table}_folder_folders", table, "folders", ["mailbox_id", "folder_id"],
                              ["mailbox_id", "id"], ondelete="CASCADE")
    for statement in _pg_functions(grouped=True):
        op.execute(statement)


def _grouped_uniques() -> None:
    """messages (mailbox_id, folder_id, uid) and (mailbox_id, uuid), conversations (mailbox_id, uuid)."""
    op.drop_constraint("uq_messages_folder_uid", "messages", type_="unique")
    op.drop_constraint("uq_messages_uuid", "messages", type_="unique")
    op.drop_constraint("uq_conversations_uuid", "conversations", type_="unique")
    op.create_unique_constraint("uq_messages_folder_uid", "messages", ["mailbox_id", "folder_id", "uid"])
    op.create_unique_constraint("uq_messages_uuid", "messages", ["mailbox_id", "uuid"])
    op.create_unique_constraint("uq_conversations_uuid", "conversations", ["mailbox_id", "uuid"])


def _upgrade_sqlite() -> None:
    op.create_index("uq_folders_mailbox_id_id", "folders", ["mailbox_id", "id"], unique=True)
    for table, column, referred, _ in DROPPED:
        name = _fk_name(table, column, referred)
        if name is None or table in ("messages", "conversations"):
            continue
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(name, type_="foreignkey")
    with op.batch_alter_table("messages") as batch:
        batch.alter_column("mailbox_id", nullable=False)
        for _, column, referred, _ in DROPPED[:2]:
            batch.drop_constraint(f"fk_messages_{column}_{referred}", type_="foreignkey")
        batch.drop_constraint("fk_messages_folder_id_folders", type_="foreignkey")
        batch.drop_constraint("uq_messages_folder_uid", type_="unique")
        batch.drop_constraint("uq_messages_uuid", type_="unique")
        batch.create_unique_constraint("uq_messages_folder_uid", ["mailbox_id", "folder_id", "uid"])
        batch.create_unique_constraint("uq_messages_uuid", ["mailbox_id", "uuid"])
        batch.create_foreign_key("fk_messages_folder_folders", "folders", ["mailbox_id", "folder_id"],
                                 ["mailbox_id", "id"], ondelete="CASCADE")
    for statement in _sqlite_triggers(grouped=True):
        op.execute(statement)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Table '_alembic_tmp_", sa.exc.SAWarning)
        with op.batch_alter_table("expunged_uids") as batch:
            batch.alter_column("mailbox_id", nullable=False)
            batch.drop_constraint("fk_expunged_uids_folder_id_folders", type_="foreignkey")
            batch.create_primary_key("pk_expunged_uids", ["mailbox_id", "folder_id", "uid"])
            batch.create_foreign_key("fk_expunged_uids_folder_folders", "folders", ["mailbox_id", "folder_id"],
                                     ["mailbox_id", "id"], ondelete="CASCADE")
    with op.batch_alter_table("conversations") as batch:
        batch.drop_constraint("fk_conversations_data_key_id_data_keys", type_="foreignkey")
        batch.drop_constraint("uq_conversations_uuid", type_="unique")
        batch.create_unique_constraint("uq_conversations_uuid", ["mailbox_id", "uuid"])
    with warnings.catch_warnings():  # SQLAlchemy notes the reflected key differs: that is the change
        warnings.filterwarnings("ignore", "Table '_alembic_tmp_", sa.exc.SAWarning)
        with op.batch_alter_table("message_chunks") as batch:
            batch.create_primary_key("pk_message_chunks", ["mailbox_id", "message_uuid", "seq"])
    with op.batch_alter_table("mailboxes") as batch:
        batch.drop_constraint("uq_mailboxes_uid", type_="unique")
    with op.batch_alter_table("patients") as batch:
        batch.alter_column("mailbox_id", existing_type=sa.Integer(), nullable=False)
        batch.drop_constraint("uq_patients_ins", type_="unique")


# ---------------------------------------------------------------------------- downgrade

def downgrade() -> None:
    _check_foreign_keys_off()
    postgresql = op.get_bind().dialect.name == "postgresql"
    op.drop_table("ins_directory")
    for name, table, columns in (("ix_messages_folder_modseq", "messages", ["folder_id", "modseq"]),
                                 ("ix_messages_conversation_id", "messages", ["conversation_id"]),
                                 ("ix_expunged_uids_folder_modseq", "expunged_uids", ["folder_id", "modseq"])):
        op.drop_index(name, table_name=table)
        op.create_index(name, table, columns, unique=False)
    op.create_index("ix_conversations_mailbox_id", "conversations", ["mailbox_id"], unique=False)
    op.create_index("ix_message_chunks_mailbox_id", "message_chunks", ["mailbox_id"], unique=False)
    op.drop_index(op.f("ix_patients_ins"), table_name="patients")
    op.create_index("ix_patients_ins_index", "patients", ["ins_index"], unique=True)
    if postgresql:
        _downgrade_postgresql()
    else:
        _downgrade_sqlite()


def _restore_dropped() -> None:
    for table, column, referred, ondelete in DROPPED:
        op.create_foreign_key(f"fk_{table}_{column}_{referred}", table, referred, [column], ["id"], ondelete=ondelete)


def _downgrade_postgresql() -> None:
    for statement in _pg_functions(grouped=False):
        op.execute(statement)
    for table in GROUPED:
        op.drop_constraint(f"fk_{table}_folder_folders", table, type_="foreignkey")
    op.drop_constraint("uq_messages_folder_uid", "messages", type_="unique")
    op.drop_constraint("uq_messages_uuid", "messages", type_="unique")
    op.drop_constraint("uq_conversations_uuid", "conversations", type_="unique")
    op.create_unique_constraint("uq_messages_folder_uid", "messages", ["folder_id", "uid"])
    op.create_unique_constraint("uq_messages_uuid", "messages", ["uuid"])
    op.create_unique_constraint("uq_conversations_uuid", "conversations", ["uuid"])
    op.create_unique_constraint("uq_patients_ins", "patients", ["ins"])
    op.create_unique_constraint("uq_mailboxes_uid", "mailboxes", ["uid"])
    op.drop_constraint("pk_message_chunks", "message_chunks", type_="primary")
    op.create_primary_key("pk_message_chunks", "message_chunks", ["message_uuid", "seq"])
    op.drop_constraint("pk_expunged_uids", "expunged_uids", type_="primary")
    op.create_primary_key("pk_expunged_uids", "expunged_uids", ["folder_id", "uid"])
    for table in ID_TABLES:
        op.drop_constraint(f"pk_{table}", table, type_="primary")
        op.create_primary_key(f"pk_{table}", table, ["id"])
    op.alter_column("patients", "mailbox_id", nullable=True)
    for table in GROUPED:
        op.drop_column(table, "mailbox_id")
        op.create_foreign_key(f"fk_{table}_folder_id_folders", table, "folders", ["folder_id"], ["id"],
                              ondelete="CASCADE")
    _restore_dropped()


def _downgrade_sqlite() -> None:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Table '_alembic_tmp_", sa.exc.SAWarning)
        _downgrade_sqlite_tables()
    for statement in _sqlite_triggers(grouped=False):
        op.execute(statement)
    for table, column, referred, ondelete in DROPPED:
        with op.batch_alter_table(table) as batch:
            batch.create_foreign_key(f"fk_{table}_{column}_{referred}", referred, [column], ["id"],
                                     ondelete=ondelete)
    op.drop_index("uq_folders_mailbox_id_id", table_name="folders")


def _downgrade_sqlite_tables() -> None:
    with op.batch_alter_table("patients") as batch:
        batch.alter_column("mailbox_id", existing_type=sa.Integer(), nullable=True)
        batch.create_unique_constraint("uq_patients_ins", ["ins"])
    with op.batch_alter_table("mailboxes") as batch:
        batch.create_unique_constraint("uq_mailboxes_uid", ["uid"])
    with op.batch_alter_table("message_chunks") as batch:
        batch.create_primary_key("pk_message_chunks", ["message_uuid", "seq"])
    with op.batch_alter_table("conversations") as batch:
        batch.drop_constraint("uq_conversations_uuid", type_="unique")
        batch.create_unique_constraint("uq_conversations_uuid", ["uuid"])
    with op.batch_alter_table("expunged_uids") as batch:
        batch.drop_constraint("fk_expunged_uids_folder_folders", type_="foreignkey")
        batch.create_primary_key("pk_expunged_uids", ["folder_id", "uid"])
        batch.drop_column("mailbox_id")
        batch.create_foreign_key("fk_expunged_uids_folder_id_folders", "folders", ["folder_id"], ["id"],
                                 ondelete="CASCADE")
    with op.batch_alter_table("messages") as batch:
        batch.drop_constraint("fk_messages_folder_folders", type_="foreignkey")
        batch.drop_constraint("uq_messages_folder_uid", type_="unique")
        batch.drop_constraint("uq_messages_uuid", type_="unique")
        batch.create_unique_constraint("uq_messages_folder_uid", ["folder_id", "uid"])
        batch.create_unique_constraint("uq_messages_uuid", ["uuid"])
        batch.drop_column("mailbox_id")
        batch.create_foreign_key("fk_messages_folder_id_folders", "folders", ["folder_id"], ["id"],
                                 ondelete="CASCADE")
