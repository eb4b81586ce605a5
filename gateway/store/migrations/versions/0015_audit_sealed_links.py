"""Audit entries about a patient without the link in clear (issue 20)

Revision ID: 0015
Revises: 0014
Create Date: 2027-02-08 10:00:00

``audit_log`` gains ``hash_form`` (NULL: an entry in clear, hashed as before; 2: the hash
covers the stored, sealed form), ``patient_sealed`` and ``patient_data_key_id`` (the patient
reference, correspondent, peer and details sealed under the patient's data key),
``patient_index`` (indexed; ``HMAC-SHA256(index key, "audit-patient", id)``) and
``patient_index_version``. See ``gateway/store/audit_links.py``.

This migration only adds columns: it never sees the keys, and it changes no existing row
(their hashes stay as they were). Existing entries about a patient are sealed while the
gateway serves by ``gateway audit seal-links`` (docs/deploy.md). Columns are added and
dropped in place.

Downgrade: refused while some entry is stored sealed (form 2): without the columns these
entries could neither be read nor verified; nothing is changed then.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("audit_log", sa.Column("hash_form", sa.Integer(), nullable=True))
    op.add_column("audit_log", sa.Column("patient_sealed", sa.LargeBinary(), nullable=True))
    op.add_column("audit_log", sa.Column("patient_data_key_id", sa.BigInteger(), nullable=True))
    op.add_column("audit_log", sa.Column("patient_index", sa.LargeBinary(), nullable=True))
    op.add_column("audit_log", sa.Column("patient_index_version", sa.Integer(), nullable=True))
    op.create_index(op.f("ix_audit_log_patient_index"), "audit_log", ["patient_index"], unique=False)


def downgrade() -> None:
    bind = op.get_bind()
    sealed = bind.execute(sa.text("SELECT count(*) FROM audit_log WHERE hash_form IS NOT NULL")).scalar_one()
    if sealed:
        raise RuntimeError(
            f"{sealed} audit entr(y/ies) are stored sealed (issue 20): below this migration they could neither "
            "be read nor verified; keep this release (restore a backup taken before the upgrade to go back); "
            "nothing was changed")
    op.drop_index(op.f("ix_audit_log_patient_index"), table_name="audit_log")
    op.drop_column("audit_log", "patient_index_version")
    op.drop_column("audit_log", "patient_index")
    op.drop_column("audit_log", "patient_data_key_id")
    op.drop_column("audit_log", "patient_sealed")
    op.drop_column("audit_log", "hash_form")
