"""An operator's bounce of a queued message is remembered until the worker closes it (issue 17)

``outbound_queue.bounced_by``: the audit actor who gave up on a pending entry
(``gateway queue bounce``, the console, the API). The worker then closes the entry as
``bounced`` and tells the sender the delivery was cancelled by the operator (status 5.0.0),
not that its delivery time expired (4.4.7). Null on every existing entry.

Revision ID: 0006
Revises: 0005 (the lead re-chains at merge)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbound_queue", schema=None) as batch_op:
        batch_op.add_column(sa.Column("bounced_by", sa.String(length=320), nullable=True))


def downgrade() -> None:
    # ALTER TABLE ... DROP COLUMN in place (SQLite >= 3.35 too), no batch rebuild of the table.
    op.execute("ALTER TABLE outbound_queue DROP COLUMN bounced_by")
