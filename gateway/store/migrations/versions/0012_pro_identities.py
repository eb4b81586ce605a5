"""Mailbox types, professional identities, grants, application certificates, password choice

Revision ID: 0012
Revises: 0011
Create Date: 2027-01-25 10:00:00

``pro_accounts.mailbox_type``: personal | organisational | application, as in the national
directory; every existing mailbox is personal. ``pro_accounts.password_login``: false
refuses password logins (IMAP LOGIN, AUTHENTICATE PLAIN, SMTP AUTH PLAIN/LOGIN) for the
account whatever ``[auth] password_login`` says; true (every existing account) follows it.

``pro_identities``: the subject an identity provider asserts (Pro Santé Connect
``SubjectNameID``) bound to one personal mailbox. ``pro_grants``: organisational mailboxes
granted to a personal mailbox's professional. ``pro_certificates``: client certificates
(SHA-256 of the DER form, issuer and subject DN) bound to application mailboxes (issue 19).

Columns are added and dropped in place (no batch rebuild of ``pro_accounts``).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_AT = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("pro_accounts", sa.Column("mailbox_type", sa.String(length=16), server_default="personal",
                                            nullable=False))
    op.add_column("pro_accounts", sa.Column("password_login", sa.Boolean(), server_default=sa.true(),
                                            nullable=False))
    op.create_table(
        "pro_identities",
        sa.Column("id", _ID, nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("account_id", _ID, nullable=False),
        sa.Column("created_at", _AT, nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["pro_accounts.id"], ondelete="CASCADE",
                                name=op.f("fk_pro_identities_account_id_pro_accounts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pro_identities")),
        sa.UniqueConstraint("subject", name=op.f("uq_pro_identities_subject")),
        sa.UniqueConstraint("account_id", name=op.f("uq_pro_identities_account_id")),
    )
    op.create_table(
        "pro_grants",
        sa.Column("id", _ID, nullable=False),
        sa.Column("org_account_id", _ID, nullable=False),
        sa.Column("pro_account_id", _ID, nullable=False),
        sa.Column("created_at", _AT, nullable=False),
        sa.ForeignKeyConstraint(["org_account_id"], ["pro_accounts.id"], ondelete="CASCADE",
                                name=op.f("fk_pro_grants_org_account_id_pro_accounts")),
        sa.ForeignKeyConstraint(["pro_account_id"], ["pro_accounts.id"], ondelete="CASCADE",
                                name=op.f("fk_pro_grants_pro_account_id_pro_accounts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pro_grants")),
        sa.UniqueConstraint("org_account_id", "pro_account_id", name="uq_pro_grants_org_pro"),
    )
    op.create_index(op.f("ix_pro_grants_pro_account_id"), "pro_grants", ["pro_account_id"])
    op.create_table(
        "pro_certificates",
        sa.Column("id", _ID, nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("account_id", _ID, nullable=False),
        sa.Column("issuer", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("not_after", _AT, nullable=True),
        sa.Column("created_at", _AT, nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["pro_accounts.id"], ondelete="CASCADE",
                                name=op.f("fk_pro_certificates_account_id_pro_accounts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pro_certificates")),
        sa.UniqueConstraint("fingerprint", "account_id", name="uq_pro_certificates_fingerprint_account"),
    )
    op.create_index(op.f("ix_pro_certificates_fingerprint"), "pro_certificates", ["fingerprint"])
    op.create_index(op.f("ix_pro_certificates_account_id"), "pro_certificates", ["account_id"])


def downgrade() -> None:
    op.drop_table("pro_certificates")
    op.drop_table("pro_grants")
    op.drop_table("pro_identities")
    # ALTER TABLE ... DROP COLUMN in place (SQLite >= 3.35 too): no rebuild of pro_accounts.
    op.execute("ALTER TABLE pro_accounts DROP COLUMN password_login")
    op.execute("ALTER TABLE pro_accounts DROP COLUMN mailbox_type")
