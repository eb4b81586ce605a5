"""Alembic environment: run with a connection handed in by ``gateway.store.migrate``."""

from __future__ import annotations

from alembic import context

from gateway.store.models import SQLITE_ONLY, Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - only used via gateway.store.migrate
    raise RuntimeError("run migrations through 'gateway db upgrade'")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
    include_name=lambda name, type_, _parent: not (type_ == "index" and name in SQLITE_ONLY),
)
with context.begin_transaction():
    context.run_migrations()
