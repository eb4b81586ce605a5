"""Audit trail partitioned by subject, anchored; outbound queue claimed by bucket (issue 23)

Revision ID: 0018
Revises: 0016
Create Date: 2027-03-01 10:00:00

Both tables get a small distribution column of their own (``gateway/store/partitions.py``),
in every key, so that a distributed PostgreSQL (Citus) can place them by it:

- ``audit_log.partition`` (SMALLINT, 0..31): one hash chain per partition. The existing
  single chain becomes partition 0's history **as it is**: every existing entry is put in
  partition 0 and keeps its id, ``prev_hash`` and ``hash`` (nothing is re-hashed, export
  files and checkpoints stay valid). New entries spread over the 32 partitions by subject;
  entries without a subject keep going to partition 0, after the old ones. ``prev_hash`` and
  ``hash`` are unique per partition; on PostgreSQL the primary key becomes
  (partition, id). On SQLite ``id`` stays ``INTEGER PRIMARY KEY`` (the rowid, globally
  unique: stronger than (partition, id), and the way SQLite hands out ids); an index on
  ``partition`` (ordered by rowid) serves the tail lookup there.
- ``audit_checkpoints.partition``: the partition a checkpoint prunes (existing: 0);
  ``last_hash`` / ``prev_hash`` / ``hash`` unique per partition.
- ``audit_anchors`` (new): the global chain that records every partition's head
  (``gateway/store/audit_anchors.py``). The upgrade writes none; the first
  ``gateway audit anchor`` (or the ``audit-anchor`` job) does.
- ``outbound_queue.bucket`` (SMALLINT, 0..31) = the first byte of SHA-256(uuid) mod 32,
  computed here for existing rows; primary key (bucket, id) on PostgreSQL (SQLite: as for the
  audit); ``uuid`` unique per bucket; the due index leads with the bucket. (Migration 0017 already dropped the
  foreign key ``data_key_id`` -> ``data_keys``: shredding a key nulls the queue rows'
  reference first, ``KeyService.shred``.)

Downgrade: refused while an audit entry or checkpoint lies outside partition 0 (the previous
release knows one chain only; several chains cannot be merged without re-hashing them):
restore a backup taken before the upgrade instead. Otherwise every column and constraint
goes back as it was, and ``audit_anchors`` is dropped (over partition 0 alone an anchor adds
nothing to the chain itself).
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_BATCH = 500
_BUCKETS = 32  # gateway.store.partitions.QUEUE_BUCKETS (a migration never imports the app)


def _bucket(uuid: str) -> int:
    """Copy of ``gateway.store.partitions.queue_bucket``."""
    return hashlib.sha256(uuid.encode()).digest()[0] % _BUCKETS


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def _add_key_column(table: str, column: str) -> None:
    """NOT NULL, filled with 0 in place, no default left (writers always give it)."""
    op.execute(f"ALTER TABLE {table} ADD COLUMN {column} SMALLINT NOT NULL DEFAULT 0")
    if not _sqlite():  # SQLite: the table rebuild below drops the default
        op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} DROP DEFAULT")


def _fill_buckets() -> None:
    bind = op.get_bind()
    last = 0
    while True:
        rows = bind.execute(sa.text("SELECT id, uuid FROM outbound_queue WHERE id > :last ORDER BY id LIMIT :n"),
                            {"last": last, "n": _BATCH}).all()
        if not rows:
            return
        for entry_id, uuid in rows:
            bind.execute(sa.text("UPDATE outbound_queue SET bucket = :b WHERE id = :id"),
                         {"b": _bucket(str(uuid)), "id": entry_id})
        last = rows[-1][0]


def _audit_up() -> None:
    _add_key_column("audit_log", "partition")
    with op.batch_alter_table("audit_log", recreate="always" if _sqlite() else "never") as b:
        if _sqlite():
            b.alter_column("partition", existing_type=sa.SmallInteger(), server_default=None, existing_nullable=False)
        else:
            b.drop_constraint("pk_audit_log", type_="primary")
            b.create_primary_key("pk_audit_log", ["partition", "id"])
        b.drop_constraint("uq_audit_log_prev_hash", type_="unique")
        b.drop_constraint("uq_audit_log_hash", type_="unique")
        b.create_unique_constraint("uq_audit_log_partition_prev_hash", ["partition", "prev_hash"])
        b.create_unique_constraint("uq_audit_log_partition_hash", ["partition", "hash"])
        b.create_index("ix_audit_log_partition", ["partition"], unique=False)
    _add_key_column("audit_checkpoints", "partition")
    with op.batch_alter_table("audit_checkpoints", recreate="always" if _sqlite() else "never") as b:
        if _sqlite():
            b.alter_column("partition", existing_type=sa.SmallInteger(), server_default=None, existing_nullable=False)
        for name in ("last_hash", "prev_hash", "hash"):
            b.drop_constraint(f"uq_audit_checkpoints_{name}", type_="unique")
            b.create_unique_constraint(f"uq_audit_checkpoints_partition_{name}", ["partition", name])
    op.create_table(
        "audit_anchors",
        sa.Column("id", _ID, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heads", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_anchors"),
        sa.UniqueConstraint("prev_hash", name="uq_audit_anchors_prev_hash"),
        sa.UniqueConstraint("hash", name="uq_audit_anchors_hash"),
    )


def _queue_up() -> None:
    _add_key_column("outbound_queue", "bucket")
    _fill_buckets()
    with op.batch_alter_table("outbound_queue", recreate="always" if _sqlite() else "never") as b:
        if _sqlite():
            b.alter_column("bucket", existing_type=sa.SmallInteger(), server_default=None, existing_nullable=False)
        else:
            b.drop_constraint("pk_outbound_queue", type_="primary")
            b.create_primary_key("pk_outbound_queue", ["bucket", "id"])
        b.drop_constraint("uq_outbound_queue_uuid", type_="unique")
        b.create_unique_constraint("uq_outbound_queue_bucket_uuid", ["bucket", "uuid"])
        b.drop_index("ix_outbound_queue_due")
        b.create_index("ix_outbound_queue_due", ["bucket", "status", "next_attempt_at"], unique=False)


def upgrade() -> None:
    _audit_up()
    _queue_up()


def _refuse_if_partitioned() -> None:
    bind = op.get_bind()
    outside = bind.execute(sa.text("SELECT count(*) FROM audit_log WHERE partition <> 0")).scalar_one()
    checkpoints = bind.execute(sa.text("SELECT count(*) FROM audit_checkpoints WHERE partition <> 0")).scalar_one()
    if outside or checkpoints:
        raise RuntimeError(
            f"{outside} audit entr(y/ies) and {checkpoints} checkpoint(s) lie outside partition 0 (issue 23): the "
            "previous release verifies one chain only and several cannot be merged without re-hashing them; keep "
            "this release (restore a backup taken before the upgrade to go back); nothing was changed")


def downgrade() -> None:
    _refuse_if_partitioned()
    with op.batch_alter_table("outbound_queue", recreate="always" if _sqlite() else "never") as b:
        b.drop_index("ix_outbound_queue_due")
        b.create_index("ix_outbound_queue_due", ["status", "next_attempt_at"], unique=False)
        b.drop_constraint("uq_outbound_queue_bucket_uuid", type_="unique")
        b.create_unique_constraint("uq_outbound_queue_uuid", ["uuid"])
        if not _sqlite():
            b.drop_constraint("pk_outbound_queue", type_="primary")
            b.create_primary_key("pk_outbound_queue", ["id"])
        b.drop_column("bucket")
    op.drop_table("audit_anchors")
    with op.batch_alter_table("audit_checkpoints", recreate="always" if _sqlite() else "never") as b:
        for name in ("last_hash", "prev_hash", "hash"):
            b.drop_constraint(f"uq_audit_checkpoints_partition_{name}", type_="unique")
            b.create_unique_constraint(f"uq_audit_checkpoints_{name}", [name])
        b.drop_column("partition")
    with op.batch_alter_table("audit_log", recreate="always" if _sqlite() else "never") as b:
        b.drop_index("ix_audit_log_partition")
        b.drop_constraint("uq_audit_log_partition_prev_hash", type_="unique")
        b.drop_constraint("uq_audit_log_partition_hash", type_="unique")
        b.create_unique_constraint("uq_audit_log_prev_hash", ["prev_hash"])
        b.create_unique_constraint("uq_audit_log_hash", ["hash"])
        if not _sqlite():
            b.drop_constraint("pk_audit_log", type_="primary")
            b.create_primary_key("pk_audit_log", ["id"])
        b.drop_column("partition")
