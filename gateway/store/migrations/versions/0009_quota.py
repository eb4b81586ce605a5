"""Per-mailbox quota limits (RFC 9208 STORAGE and MESSAGE) and an index for the usage

Revision ID: 0009
Revises: 0008
Create Date: 2027-01-20 10:00:00

``mailboxes.quota_storage_kib`` / ``mailboxes.quota_messages``: the limits an admin set for
the mailbox; NULL takes the configured default (``[quota]``), 0 means no limit. Usage is
not stored: it is summed from ``messages.size`` when a limit applies, read from
``ix_messages_folder_size`` alone (an index-only scan), so no counter can drift from the
rows it counts whatever path deletes them (expunge, folder deletion, purge, restore)
(issue 18).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("mailboxes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("quota_storage_kib", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("quota_messages", sa.BigInteger(), nullable=True))
    op.create_index("ix_messages_folder_size", "messages", ["folder_id", "size"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_messages_folder_size", table_name="messages")
    with op.batch_alter_table("mailboxes", schema=None) as batch_op:
        batch_op.drop_column("quota_messages")
        batch_op.drop_column("quota_storage_kib")
