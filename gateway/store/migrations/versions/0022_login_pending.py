"""Login attempts in flight are counted apart from judged failures (issue 22's throttle defect)

Revision ID: 0022
Revises: 0021
Create Date: 2027-04-02 10:00:00

``login_counters.pending`` and ``pending_prev`` count the reservations not judged yet
(:mod:`gateway.accounts.throttle`), in the current lease period ``pending_epoch`` and the one
before: a reservation neither judged nor given back within one to two periods (a node stopped
between reserving and checking) is counted as a failure. Before, a reservation counted as a
failure at once, so concurrent right logins of one account from one network reached the lockout
before any of them was judged (bench/run: 20 of 50 IMAP clients refused).

The rows that exist keep their judged counts: ``failures`` already included the reservations in
flight at the upgrade (the old code counted them), which are then given back as before.

Downgrade: the columns are dropped (the old code counts every reservation in ``failures``; the
attempts in flight at that moment are forgotten, at most a lockout's worth per pair).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("login_counters") as batch:
        batch.add_column(sa.Column("pending", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("pending_prev", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("pending_epoch", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("login_counters") as batch:
        batch.drop_column("pending_epoch")
        batch.drop_column("pending_prev")
        batch.drop_column("pending")
