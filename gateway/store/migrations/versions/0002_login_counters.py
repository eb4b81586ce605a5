"""login counters: attempts counted before the secret is checked (issue 15)

Replaces auth_failures/auth_lockouts (failures recorded after the check, which concurrent
attempts could race). Their rows are short-lived throttle state and are not carried over.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "login_counters",
        sa.Column("key", sa.String(length=400), nullable=False),
        sa.Column("window_start", sa.Float(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.Float(), nullable=True),
        sa.Column("next_allowed", sa.Float(), nullable=True),
        sa.Column("succeeded_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_login_counters")),
    )
    op.drop_table("auth_lockouts")
    with op.batch_alter_table("auth_failures", schema=None) as batch_op:
        batch_op.drop_index("ix_auth_failures_key_at")
    op.drop_table("auth_failures")


def downgrade() -> None:
    op.create_table(
        "auth_failures",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("key", sa.String(length=400), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auth_failures")),
    )
    with op.batch_alter_table("auth_failures", schema=None) as batch_op:
        batch_op.create_index("ix_auth_failures_key_at", ["key", "at"], unique=False)
    op.create_table(
        "auth_lockouts",
        sa.Column("key", sa.String(length=400), nullable=False),
        sa.Column("until", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_auth_lockouts")),
    )
    op.drop_table("login_counters")
