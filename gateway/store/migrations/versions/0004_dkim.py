"""DKIM: trust entries that require a signature on top of the certificate; keys of the patient
domain and of the host name (issue 17)

``trusted_domains.dkim_required``: a passing author signature is needed even when the
operator's certificate authenticates the connection (false for every existing entry: the
certificate suffices, as in the MSSanté trust space). ``dkim_keys``: the signing keys of the
domains the gateway writes mail from without hosting them, sealed under the system data key.

Revision ID: 0004
Revises: 0003 (the lead re-chains at merge)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("trusted_domains", schema=None) as batch_op:
        batch_op.add_column(sa.Column("dkim_required", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.create_table(
        "dkim_keys",
        sa.Column("id", ID, nullable=False),
        sa.Column("domain", sa.String(length=255), nullable=False),
        sa.Column("selector", sa.String(length=63), nullable=False),
        sa.Column("data_key_id", ID, nullable=True),
        sa.Column("key_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["data_key_id"], ["data_keys.id"], name=op.f("fk_dkim_keys_data_key_id_data_keys"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dkim_keys")),
        sa.UniqueConstraint("domain", name=op.f("uq_dkim_keys_domain")),
    )


def downgrade() -> None:
    op.drop_table("dkim_keys")
    # ALTER TABLE ... DROP COLUMN in place (SQLite >= 3.35 too), no batch rebuild of the table.
    op.execute("ALTER TABLE trusted_domains DROP COLUMN dkim_required")
