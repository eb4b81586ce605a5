"""Migrations create exactly the models' schema, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from gateway.store import migrate
from gateway.store.db import Database
from gateway.store.models import SQLITE_ONLY, Base


def test_upgrade_reaches_head_and_matches_models(db_url: str) -> None:
    db = Database(db_url)
    try:
        assert migrate.current_revision(db.engine) is None
        assert not migrate.is_up_to_date(db.engine)
        migrate.upgrade(db.engine)
        assert migrate.is_up_to_date(db.engine)
        with db.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={
                "compare_type": True,
                "include_name": lambda name, type_, _parent: not (type_ == "index" and name in SQLITE_ONLY)})
            diff = compare_metadata(context, Base.metadata)
        assert diff == [], f"models and migrations differ: {diff}"
        migrate.upgrade(db.engine)  # idempotent
        assert migrate.current_revision(db.engine) == migrate.head_revision()
    finally:
        db.dispose()
