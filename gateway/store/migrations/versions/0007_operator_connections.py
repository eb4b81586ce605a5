"""A trusted operator's own connection allowance on the MX (issue 17)

``trusted_domains.max_connections``: how many connections each of the operator's sending
addresses may hold on the MX, instead of ``limits.mx_per_address``; ``trusted_domains.networks``:
those addresses (CIDR networks, space-separated). Both null on every existing entry: the
default applies, as before.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("trusted_domains", schema=None) as batch_op:
        batch_op.add_column(sa.Column("max_connections", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("networks", sa.Text(), nullable=True))


def downgrade() -> None:
    # ALTER TABLE ... DROP COLUMN in place (SQLite >= 3.35 too), no batch rebuild of the table.
    op.execute("ALTER TABLE trusted_domains DROP COLUMN networks")
    op.execute("ALTER TABLE trusted_domains DROP COLUMN max_connections")
