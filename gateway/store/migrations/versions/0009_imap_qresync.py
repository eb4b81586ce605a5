"""IMAP QRESYNC: the UIDs expunged from each folder, with the mod-sequence of their expunge

Revision ID: 0009
Revises: 0008
Create Date: 2027-01-20 10:00:00

``expunged_uids`` (RFC 7162 §3.2.5, §3.2.6): one row per message removed from a folder by
EXPUNGE, MOVE or a RENAME of INBOX, so ``SELECT ... (QRESYNC ...)`` and
``UID FETCH ... (CHANGEDSINCE m VANISHED)`` can answer ``* VANISHED (EARLIER)`` exactly.
Rows go with their folder (ON DELETE CASCADE). Nothing was remembered before: the table
starts empty.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "expunged_uids",
        sa.Column("folder_id", ID, nullable=False),
        sa.Column("uid", sa.BigInteger(), nullable=False),
        sa.Column("modseq", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["folder_id"], ["folders.id"], name=op.f("fk_expunged_uids_folder_id_folders"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("folder_id", "uid", name=op.f("pk_expunged_uids")),
    )
    op.create_index("ix_expunged_uids_folder_modseq", "expunged_uids", ["folder_id", "modseq"])


def downgrade() -> None:
    op.drop_index("ix_expunged_uids_folder_modseq", table_name="expunged_uids")
    op.drop_table("expunged_uids")
