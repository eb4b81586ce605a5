"""Login counters keyed by keyed hashes; nothing identifying left in clear (issue 20)

Revision ID: 0016_throttle_keyed
Revises: 0013_ins_keyed_index
Create Date: 2027-02-03 10:00:00

``login_counters`` keys were ``<scope>/p:<account as typed>|<network>`` and so on: an INS,
an address, or a password typed into the wrong field, and the client's address, in clear.
They are now keyed indexes (``gateway/accounts/throttle.py``). The old rows cannot be
converted without the index key (a migration never sees the keys) and are short-lived
throttle state (a window of minutes, a lockout of minutes, a known network for some days),
so they are deleted: after the upgrade every account starts with no failure counted, and a
network it logged in from before counts as unknown until its next successful login (the
account ceiling may space out attempts from it meanwhile; nothing locks it).

Downgrade: the new rows (keyed) mean nothing to the previous release; they are deleted too.
"""

from __future__ import annotations

from alembic import op

revision = "0016_throttle_keyed"
down_revision = "0013_ins_keyed_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DELETE FROM login_counters")


def downgrade() -> None:
    op.execute("DELETE FROM login_counters")
