"""Expunged UIDs kept for a bounded time: each folder counts its rows and records the highest
mod-sequence forgotten (RFC 7162 §3.2.5.2)

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-04 22:30:00

``expunged_uids`` (migration 0009) kept one row per expunged message forever. The
``expunged-uids`` job (:mod:`gateway.mailstore.expunged`) now deletes each folder's oldest rows
beyond ``imap.expunged_uids_kept``, in bounded batches, and raises ``folders.expunged_floor``
to the highest mod-sequence it deleted in the same transaction: a client whose mod-sequence is
below the floor gets every UID below UIDNEXT that no longer exists as ``VANISHED (EARLIER)``.
``folders.expunged_count`` (the folder's rows, kept by the application with each expunge and
each prune) lets the job find the folders over the bound through an index, without counting
the table.

The counts of the rows that exist are filled here (one grouped read, then one UPDATE per
folder by its key ``(mailbox_id, id)``). Downgrade: both columns and the index are dropped;
the rows of ``expunged_uids`` are kept (a pruned folder then answers exactly what it still
has, as before this release).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("folders", sa.Column("expunged_count", sa.BigInteger(), nullable=False, server_default="0"))
    op.add_column("folders", sa.Column("expunged_floor", sa.BigInteger(), nullable=False, server_default="0"))
    conn = op.get_bind()
    counts = conn.execute(sa.text("SELECT mailbox_id, folder_id, count(*) FROM expunged_uids"
                                  " GROUP BY mailbox_id, folder_id")).all()
    if counts:
        conn.execute(sa.text("UPDATE folders SET expunged_count = :n WHERE mailbox_id = :mb AND id = :f"),
                     [{"n": int(n), "mb": int(mb), "f": int(f)} for mb, f, n in counts])
    op.create_index("ix_folders_expunged_count", "folders", ["expunged_count"])


def downgrade() -> None:
    op.drop_index("ix_folders_expunged_count", table_name="folders")
    op.drop_column("folders", "expunged_floor")
    op.drop_column("folders", "expunged_count")
