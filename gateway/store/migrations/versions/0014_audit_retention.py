"""Audit retention: checkpoints of the exported and pruned ranges of the audit trail

Revision ID: 0014
Revises: 0013
Create Date: 2027-02-10 10:00:00

``audit_checkpoints``: one row per range of audit entries exported to a JSON Lines file and
pruned (``gateway/store/audit_retention.py``). The first remaining entry's ``prev_hash`` is
the last checkpoint's ``last_hash``, so ``gateway audit verify`` proves the remaining trail.

The downgrade keeps the table when it holds a checkpoint (the anchor of a pruned trail is
data: without it nobody can prove where the trail starts); the upgrade creates it only
where it is missing, so going down and up again keeps every checkpoint.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_AT = sa.DateTime(timezone=True)
_TABLE = "audit_checkpoints"


def upgrade() -> None:
    if sa.inspect(op.get_bind()).has_table(_TABLE):
        return  # kept by a downgrade because it held checkpoints
    op.create_table(
        _TABLE,
        sa.Column("id", _ID, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("first_id", sa.BigInteger(), nullable=False),
        sa.Column("last_id", sa.BigInteger(), nullable=False),
        sa.Column("export_name", sa.String(length=255), nullable=False),
        sa.Column("created_at", _AT, nullable=False),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_until", _AT, nullable=True),
        sa.Column("entries", sa.BigInteger(), nullable=True),
        sa.Column("first_prev_hash", sa.String(length=64), nullable=True),
        sa.Column("last_hash", sa.String(length=64), nullable=True),
        sa.Column("last_at", _AT, nullable=True),
        sa.Column("export_sha256", sa.String(length=64), nullable=True),
        sa.Column("pruned_at", _AT, nullable=True),
        sa.Column("prev_hash", sa.String(length=64), nullable=True),
        sa.Column("hash", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_checkpoints")),
        sa.UniqueConstraint("last_hash", name=op.f("uq_audit_checkpoints_last_hash")),
        sa.UniqueConstraint("prev_hash", name=op.f("uq_audit_checkpoints_prev_hash")),
        sa.UniqueConstraint("hash", name=op.f("uq_audit_checkpoints_hash")),
    )


def downgrade() -> None:
    held = op.get_bind().execute(sa.text("SELECT count(*) FROM audit_checkpoints")).scalar_one()
    if not held:
        op.drop_table(_TABLE)
