"""mediators and account recovery (issue 14)

Mediators (France Services desks, "médiateurs numériques") get their own accounts, console
sessions and API tokens; ``patients.code_mailed_at`` rate-limits the activation codes mailed
to a patient's personal address.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("patients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("code_mailed_at", sa.DateTime(timezone=True), nullable=True))

    op.create_table(
        "mediators",
        sa.Column("id", ID, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("organisation", sa.String(length=200), nullable=True),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("totp_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("totp_data_key_id", ID, nullable=True),
        sa.Column("last_totp_step", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["totp_data_key_id"], ["data_keys.id"],
                                name=op.f("fk_mediators_totp_data_key_id_data_keys"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mediators")),
        sa.UniqueConstraint("name", name=op.f("uq_mediators_name")),
    )
    for table in ("mediator_sessions", "mediator_api_tokens"):
        session = table == "mediator_sessions"
        columns: list[sa.schema.SchemaItem] = [
            sa.Column("id", ID, nullable=False),
            sa.Column("token_hash", sa.String(length=64), nullable=False),
            sa.Column("mediator_id", ID, nullable=False),
        ]
        if session:
            columns += [
                sa.Column("csrf_token", sa.String(length=64), nullable=False),
                sa.Column("peer", sa.String(length=64), nullable=True),
                sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
                sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
                sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
            ]
        else:
            columns += [
                sa.Column("label", sa.String(length=100), nullable=True),
                sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
                sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
                sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
            ]
        op.create_table(
            table,
            *columns,
            sa.ForeignKeyConstraint(["mediator_id"], ["mediators.id"],
                                    name=op.f(f"fk_{table}_mediator_id_mediators"), ondelete="CASCADE"),
            sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}")),
            sa.UniqueConstraint("token_hash", name=op.f(f"uq_{table}_token_hash")),
        )
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(batch_op.f(f"ix_{table}_mediator_id"), ["mediator_id"], unique=False)
            if session:
                batch_op.create_index(batch_op.f(f"ix_{table}_expires_at"), ["expires_at"], unique=False)


def downgrade() -> None:
    for table in ("mediator_api_tokens", "mediator_sessions"):
        op.drop_table(table)
    op.drop_table("mediators")
    # ALTER TABLE ... DROP COLUMN in place (SQLite >= 3.35 too): a batch rebuild of
    # ``patients`` with foreign keys on would delete their web sessions by cascade.
    op.execute("ALTER TABLE patients DROP COLUMN code_mailed_at")
