"""IMAP OBJECTID (RFC 8474) and SAVEDATE (RFC 8514)

Revision ID: 0010
Revises: 0009
Create Date: 2027-01-20 10:00:00

``folders.object_id``: the folder's MAILBOXID, random; every existing folder gets one here.
``messages.email_id``: the EMAILID of a copy made by COPY / MOVE (the original's); null for
every other row, whose EMAILID comes from its own ``uuid``. ``messages.saved_at``: the save
date when it is not the internal date (APPEND, COPY, MOVE); null for delivered mail and for
every row stored before this revision, whose save date is taken to be its internal date.
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("folders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("object_id", sa.String(length=32), nullable=True))
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("email_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("saved_at", sa.DateTime(timezone=True), nullable=True))
    folders = sa.table("folders", sa.column("id", sa.Integer()), sa.column("object_id", sa.String()))
    conn = op.get_bind()
    ids = [row[0] for row in conn.execute(sa.select(folders.c.id))]
    for folder_id in ids:
        conn.execute(folders.update().where(folders.c.id == folder_id).values(object_id=secrets.token_hex(12)))


def downgrade() -> None:
    # ALTER TABLE ... DROP COLUMN in place (SQLite >= 3.35 too): a batch rebuild of
    # ``folders`` (copy, DROP TABLE, rename) with foreign keys on deleted, by cascade, every
    # message and expunged UID of the store.
    for table, column in (("messages", "saved_at"), ("messages", "email_id"), ("folders", "object_id")):
        op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
