"""The INS as a keyed index and sealed, never in clear (issue 20)

Revision ID: 0013_ins_keyed_index
Revises: 0012
Create Date: 2027-02-01 10:00:00

``patients.ins_index`` (unique index): ``HMAC-SHA256(index key, "ins", INS)``;
``patients.ins_index_version``: the index key version that made it; ``patients.ins_sealed``:
the INS sealed under the patient's data key. ``index_key_checks``: one key-check value per
index key version (``index-v<N>`` in the key file).

This migration only adds columns: it never sees the keys. Existing rows keep their clear INS
until the gateway converts them in batches while it serves (``gateway db convert-ins``, also
run by the ``ins-conversion`` job), replacing it with ``#<id>``; lookups find converted and
unconverted rows alike meanwhile. Columns are added and dropped in place.

Downgrade: refused while some row holds its INS only sealed (the migration cannot open it);
``gateway db restore-ins`` with this release's code and the key file puts the clear INS
back first.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_ins_keyed_index"
down_revision = "0012"
branch_labels = None
depends_on = None

_AT = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "index_key_checks",
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("check_value", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", _AT, nullable=False),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_index_key_checks")),
    )
    op.add_column("patients", sa.Column("ins_index", sa.LargeBinary(), nullable=True))
    op.add_column("patients", sa.Column("ins_index_version", sa.Integer(), nullable=True))
    op.add_column("patients", sa.Column("ins_sealed", sa.LargeBinary(), nullable=True))
    op.create_index(op.f("ix_patients_ins_index"), "patients", ["ins_index"], unique=True)


def downgrade() -> None:
    bind = op.get_bind()
    sealed_only = bind.execute(sa.text("SELECT count(*) FROM patients WHERE ins LIKE '#%'")).scalar_one()
    if sealed_only:
        raise RuntimeError(
            f"{sealed_only} patient row(s) hold their INS only sealed (keyed index, issue 20); run "
            "'gateway db restore-ins' with this release and its key file first, then downgrade; nothing was changed")
    op.drop_index(op.f("ix_patients_ins_index"), table_name="patients")
    op.drop_column("patients", "ins_sealed")
    op.drop_column("patients", "ins_index_version")
    op.drop_column("patients", "ins_index")
    op.drop_table("index_key_checks")
