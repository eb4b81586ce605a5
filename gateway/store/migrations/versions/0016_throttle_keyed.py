"""Login counters keyed by keyed hashes; nothing identifying left in clear (issue 20)

Revision ID: 0016
Revises: 0015
Create Date: 2027-02-03 10:00:00

``login_counters`` keys were ``<scope>/p:<account as typed>|<network>`` and so on: an INS,
an address, or a password typed into the wrong field, and the client's address, in clear.
They are now keyed indexes (``gateway/accounts/throttle.py``). The old rows cannot be
converted without the index key (a migration never sees the keys) and are short-lived
throttle state (a window of minutes, a lockout of minutes, a known network for some days),
so they are deleted: after the upgrade every account starts with no failure counted, and a
network it logged in from before counts as unknown until its next successful login (the
account ceiling may space out attempts from it meanwhile; nothing locks it).

The same issue's other clear identifiers:

- ``outbound_queue.last_error_sealed`` (new): the text of an entry's last error, sealed under
  its data key; ``last_error`` keeps only the reply codes. Existing texts cannot be sealed
  here (no keys): they are cut down to their codes (``gateway/outbound/queue.py``,
  ``codes_only``); an entry still pending gets its full text again at its next attempt.
- ``web_sessions.ip`` is no longer written; existing values are cleared.

Downgrade: the new counter rows (keyed) mean nothing to the previous release and are deleted;
``last_error_sealed`` is dropped in place (``last_error`` keeps its codes).
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


_BATCH = 500


def _codes(text: str) -> str:
    """Copy of ``gateway.outbound.queue.codes_only`` (a migration never imports the app)."""
    found = re.findall(r"(?<![\w.])(?:[245]\d\d|[245]\.\d{1,3}\.\d{1,3})(?![\w.])", text)
    return " ".join(found)[:500] or "-"


def upgrade() -> None:
    op.execute("DELETE FROM login_counters")
    op.execute("UPDATE web_sessions SET ip = NULL")
    op.add_column("outbound_queue", sa.Column("last_error_sealed", sa.LargeBinary(), nullable=True))
    bind = op.get_bind()
    last = 0
    keep = ("cancelled by an administrator", "local; queue entry unreadable (data key unavailable)")
    while True:
        rows = bind.execute(sa.text("SELECT id, last_error FROM outbound_queue WHERE id > :last"
                                    " AND last_error IS NOT NULL ORDER BY id LIMIT :n"),
                            {"last": last, "n": _BATCH}).all()
        if not rows:
            return
        for entry_id, error in rows:
            if error not in keep:
                bind.execute(sa.text("UPDATE outbound_queue SET last_error = :e WHERE id = :id"),
                             {"e": _codes(str(error)), "id": entry_id})
        last = rows[-1][0]


def downgrade() -> None:
    op.execute("DELETE FROM login_counters")
    op.drop_column("outbound_queue", "last_error_sealed")  # in place: no table rebuild
