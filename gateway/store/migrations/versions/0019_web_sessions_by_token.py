"""Web sessions keyed by their token hash, the distribution column (issue 23)

Revision ID: 0019
Revises: 0018
Create Date: 2027-03-08 10:00:00

``web_sessions`` is distributed by ``token_hash`` (``gateway/store/distribution.py``: every
request finds its session by the cookie's hash), so the distribution column must be in every
key. On PostgreSQL the primary key becomes (token_hash, id): ``id`` keeps its sequence and its
values, because it is the associated data of ``pending_sealed`` (an enrolment under way at the
upgrade still opens); ``token_hash`` stays unique on its own (one session per token).

On SQLite nothing changes: ``id`` stays ``INTEGER PRIMARY KEY`` (the rowid, globally unique:
stronger than (token_hash, id), and the column SQLite hands ids out from), beside the existing
``UNIQUE (token_hash)``, as for ``outbound_queue`` and ``audit_log`` (migration 0018).

Downgrade: the primary key goes back to (id); no row changes either way.
"""

from __future__ import annotations

from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def _primary_key(columns: list[str]) -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    with op.batch_alter_table("web_sessions", recreate="never") as b:
        b.drop_constraint("pk_web_sessions", type_="primary")
        b.create_primary_key("pk_web_sessions", columns)


def upgrade() -> None:
    _primary_key(["token_hash", "id"])


def downgrade() -> None:
    _primary_key(["id"])
