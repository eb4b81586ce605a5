"""Migrations create exactly the models' schema, on SQLite and PostgreSQL."""

from __future__ import annotations

from gateway.store import migrate
from gateway.store.db import Database


def test_upgrade_reaches_head_and_matches_models(db_url: str) -> None:
    db = Database(db_url)
    try:
        assert migrate.current_revision(db.engine) is None
        assert not migrate.is_up_to_date(db.engine)
        migrate.upgrade(db.engine)
        assert migrate.is_up_to_date(db.engine)
        with db.engine.connect() as conn:
            diff = migrate.schema_diff(conn)
        assert diff == [], f"models and migrations differ: {diff}"
        migrate.upgrade(db.engine)  # idempotent
        assert migrate.current_revision(db.engine) == migrate.head_revision()
    finally:
        db.dispose()
