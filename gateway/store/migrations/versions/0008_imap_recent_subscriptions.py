"""IMAP \\Recent mark per folder; subscriptions that outlive their folder

Revision ID: 0008
Revises: 0007
Create Date: 2027-01-10 10:00:00

``folders.recent_uid`` (RFC 3501 §2.3.2): the highest UID an IMAP session has taken as
\\Recent; set to the last UID of every existing folder, so mail already there is not recent
to the first session after the upgrade. ``subscriptions``: a subscription kept for a name
whose folder was deleted (§6.3.6), taken back by a folder later made under that name
(issue 18).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("folders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("recent_uid", sa.BigInteger(), server_default="0", nullable=False))
    op.execute("UPDATE folders SET recent_uid = uidnext - 1")
    op.create_table(
        "subscriptions",
        sa.Column("id", ID, nullable=False),
        sa.Column("mailbox_id", ID, nullable=False),
        sa.Column("name", sa.String(length=512), nullable=False),
        sa.ForeignKeyConstraint(
            ["mailbox_id"], ["mailboxes.id"], name=op.f("fk_subscriptions_mailbox_id_mailboxes"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscriptions")),
        sa.UniqueConstraint("mailbox_id", "name", name="uq_subscriptions_mailbox_name"),
    )


def downgrade() -> None:
    op.drop_table("subscriptions")
    # ALTER TABLE ... DROP COLUMN in place (SQLite >= 3.35 too): a batch rebuild of
    # ``folders`` with foreign keys on would delete every message by cascade.
    op.execute("ALTER TABLE folders DROP COLUMN recent_uid")
