"""Web sessions carry the patient's mailbox; the INS conversion's completion is recorded (issue 23)

Revision ID: 0021
Revises: 0020
Create Date: 2027-03-22 10:00:00

``patients`` is distributed by ``mailbox_id`` (primary key ``(mailbox_id, id)``): a statement
finding a patient by its id alone goes to every shard. A web request's patient comes from its
session, so ``web_sessions`` gets ``mailbox_id``, written with the session
(:func:`gateway.accounts.web_sessions.create`) and filled here from ``patients`` for the
sessions that exist: every request then reads its patient by ``(mailbox_id, id)``. A session
whose patient no longer exists keeps NULL (it was already refused and deleted at its next use).
The fill reads the patients of the sessions, then updates the sessions patient by patient: no
join between ``web_sessions`` (distributed by ``token_hash``) and ``patients``, which Citus
would refuse on a coordinator already distributed.

``ins_conversion_complete`` (a reference table, at most one row) records that no patient row is
found by its clear INS alone any more (every row is in ``ins_directory``): a lookup by INS that
misses the directory then skips the clear ``patients.ins`` query, which has no equality on the
distribution column. The row is written here when no row holds a clear INS (any database made
at 0013 or later, or converted with ``gateway db convert-ins`` before this upgrade), otherwise
by ``gateway db convert-ins`` when it leaves none.

Downgrade: the column and the table are dropped (nothing else refers to them).
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

CHUNK = 1000


def _fill_sessions() -> None:
    conn = op.get_bind()
    patient_ids = sorted({int(r[0]) for r in conn.execute(sa.text("SELECT DISTINCT patient_id FROM web_sessions"))})
    for i in range(0, len(patient_ids), CHUNK):
        chunk = patient_ids[i:i + CHUNK]
        rows = conn.execute(sa.text("SELECT id, mailbox_id FROM patients WHERE id IN :ids")
                            .bindparams(sa.bindparam("ids", expanding=True)), {"ids": chunk}).all()
        if rows:
            conn.execute(sa.text("UPDATE web_sessions SET mailbox_id = :mb WHERE patient_id = :pid"),
                         [{"mb": int(mailbox_id), "pid": int(pid)} for pid, mailbox_id in rows])


def upgrade() -> None:
    op.add_column("web_sessions", sa.Column("mailbox_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                                            nullable=True))
    _fill_sessions()
    op.create_table(
        "ins_conversion_complete",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ins_conversion_complete")),
    )
    conn = op.get_bind()
    clear = conn.execute(sa.text("SELECT count(*) FROM patients WHERE ins NOT LIKE '#%'")).scalar_one()
    if not clear:
        now = datetime.now(UTC)
        table = sa.table("ins_conversion_complete", sa.column("id", sa.Integer()),
                         sa.column("completed_at", sa.DateTime(timezone=True)))
        op.bulk_insert(table, [{"id": 1, "completed_at": now.replace(tzinfo=None)
                                if conn.dialect.name == "sqlite" else now}])


def downgrade() -> None:
    op.drop_table("ins_conversion_complete")
    op.drop_column("web_sessions", "mailbox_id")
